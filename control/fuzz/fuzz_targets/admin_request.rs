//! The admin API's request handling (`control::admin::handle_line_audited`, with an audit
//! log in a scratch directory of this process) on arbitrary bytes, cut into lines as the
//! admin server cuts a connection's input (`\n`, an optional `\r`, whitespace-only lines
//! skipped), against a backend that answers every verb.
//!
//! Properties: nothing panics; every answer encodes as one line of JSON (the protocol is
//! line-delimited) that decodes back to the same answer; `ok` answers carry what their verb
//! asks for, failures an error text; `leases` never answers more than the limit asked for or
//! `MAX_LEASES`, and a cut page names its last address as the next cursor; `audit` never
//! more than asked for or `MAX_ENTRIES`; each change asked is the newest audit entry after.
#![no_main]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use std::sync::OnceLock;

use control::admin::{self, AdminBackend, Caller, CommandError, Request, Response};
use control::audit::{self, AuditLog};
use control::status::{LeaseFilter, LeaseInfo, LeaseState, RelationshipDetail, Status};
use libfuzzer_sys::fuzz_target;

struct Backend;

impl AdminBackend for Backend {
    fn status(&self) -> Status {
        Status {
            version: "fuzz".into(),
            uptime: 1,
            datapath: "packet".into(),
            relationships: Vec::new(),
            workers: Vec::new(),
            leases: BTreeMap::new(),
            scope_failover: BTreeMap::new(),
            xdp: Vec::new(),
            leasequery: Default::default(),
        }
    }

    fn leases(&self, filter: &LeaseFilter) -> Vec<LeaseInfo> {
        // More than asked for: the server must cut the answer down.
        let n = filter.limit.unwrap_or(0).min(64) + 3;
        (0..n)
            .map(|i| LeaseInfo {
                address: Ipv4Addr::from(0x0a00_0000 + i),
                state: filter.state.unwrap_or(LeaseState::Active),
                chaddr: "02:00:00:00:00:01".into(),
                client_id: None,
                circuit_id: None,
                remote_id: None,
                hostname: None,
                ends: u64::from(i),
            })
            .collect()
    }

    fn partner_down(&self, name: &str, since: u64) -> Result<u64, CommandError> {
        if name == "edge" {
            // Floored at a last-heard time, as the state machine does.
            Ok(since.max(1_763_785_800))
        } else {
            Err(CommandError::NoSuchRelationship(name.to_owned()))
        }
    }

    fn reload(&self) -> Result<Vec<String>, String> {
        Ok(vec!["subnet 10.0.0.0/24: dns".to_owned()])
    }

    fn replicate(
        &self,
        relationship: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Vec<String>, String> {
        match (relationship, scope) {
            (None | Some("edge"), None | Some("10.0.0.0/24")) => Ok(vec!["subnet 10.0.0.0/24: dns".into()]),
            _ => Err("no such scope".into()),
        }
    }

    fn resync(&self, name: &str) -> Result<(), CommandError> {
        if name == "edge" {
            Ok(())
        } else {
            Err(CommandError::NoSuchRelationship(name.to_owned()))
        }
    }

    fn relationships(&self) -> Vec<RelationshipDetail> {
        static CONFIG: OnceLock<control::config::Config> = OnceLock::new();
        let config = CONFIG.get_or_init(|| {
            control::config::parse(
                "[server]\ninterfaces = [\"eth0\"]\n[[subnet]]\nprefix = \"10.0.0.0/24\"\n\
                 failover = \"edge\"\n[[failover]]\nname = \"edge\"\nrole = \"primary\"\n\
                 address = \"192.0.2.1\"\npeer_address = \"192.0.2.2\"\nmclt = \"1h\"\n\
                 shared_secret_file = \"/s\"\n",
            )
            .expect("the fuzz backend's configuration is valid")
        });
        control::status::relationship_details(config, &self.status())
    }
}

/// The audit log, in a scratch directory removed by a later run once this process is gone.
fn audit_log() -> &'static AuditLog {
    static LOG: OnceLock<AuditLog> = OnceLock::new();
    LOG.get_or_init(|| AuditLog::new(&control_fuzz::scratch_dir("admin")))
}

fn check(line: &[u8]) {
    let caller = Caller {
        who: "fuzz".into(),
        from: "unix".into(),
    };
    let response = admin::handle_line_audited(line, &Backend, &caller, audit_log());
    if let Ok(
        Request::PartnerDown { .. }
        | Request::Reload
        | Request::Resync { .. }
        | Request::Replicate { .. },
    ) =
        serde_json::from_slice::<Request>(line)
    {
        let last = audit_log().recent(1).expect("the audit log reads");
        assert_eq!(last.len(), 1, "a change is audited");
        assert_eq!(last[0].ok, response.ok);
    }
    let json = serde_json::to_vec(&response).expect("an answer encodes");
    assert!(!json.contains(&b'\n'), "an answer is one line");
    let back: Response = serde_json::from_slice(&json).expect("an answer decodes");
    assert_eq!(back, response);
    if !response.ok {
        assert!(response.error.as_deref().is_some_and(|e| !e.is_empty()));
        return;
    }
    assert!(response.error.is_none());
    match serde_json::from_slice::<Request>(line).expect("an ok answer had a request") {
        Request::Status => assert!(response.status.is_some()),
        Request::Leases(filter) => {
            let limit = filter
                .limit
                .unwrap_or(admin::MAX_LEASES)
                .clamp(1, admin::MAX_LEASES);
            let leases = response.leases.as_ref().expect("leases answered");
            let got = leases.len();
            assert!(
                got as u64 <= u64::from(limit),
                "{got} leases for a limit of {limit}"
            );
            if let Some(next) = response.next {
                assert_eq!(got as u64, u64::from(limit), "only a full page is cut");
                assert_eq!(leases.last().map(|l| l.address), Some(next));
            }
        }
        Request::PartnerDown { name, .. } => {
            assert_eq!(name, "edge");
            assert!(response.message.is_some());
        }
        Request::Reload => {
            assert_eq!(response.changes.as_ref().map(Vec::len), Some(1));
            assert!(response.message.is_some());
        }
        Request::Replicate { .. } => {
            assert_eq!(response.changes.as_ref().map(Vec::len), Some(1));
            assert!(response.message.is_some());
        }
        Request::Resync { name } => {
            assert_eq!(name, "edge");
            assert!(response.message.is_some());
        }
        Request::Relationships { name } => {
            let all = response.relationships.as_ref().expect("relationships answered");
            assert_eq!(all.len(), 1);
            if let Some(name) = name {
                assert_eq!(all[0].name, name);
            }
        }
        Request::Audit { limit } => {
            let got = response.audit.as_ref().expect("audit answered").len();
            let limit = limit
                .unwrap_or(admin::DEFAULT_AUDIT_ENTRIES)
                .min(audit::MAX_ENTRIES);
            assert!(got <= limit, "{got} entries for a limit of {limit}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) || line.len() > admin::MAX_REQUEST {
            continue;
        }
        check(line);
    }
});
