//! The admin API's request handling (`control::admin::handle_line`) on arbitrary bytes, cut
//! into lines as the admin server cuts a connection's input (`\n`, an optional `\r`,
//! whitespace-only lines skipped), against a backend that answers every verb.
//!
//! Properties: nothing panics; every answer encodes as one line of JSON (the protocol is
//! line-delimited) that decodes back to the same answer; `ok` answers carry what their verb
//! asks for, failures an error text; `leases` never answers more than the limit asked for or
//! `MAX_LEASES`.
#![no_main]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use control::admin::{self, AdminBackend, PartnerDownError, Request, Response};
use control::status::{LeaseFilter, LeaseInfo, LeaseState, Status};
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
            xdp: Vec::new(),
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
                ends: u64::from(i),
            })
            .collect()
    }

    fn partner_down(&self, name: &str, since: u64) -> Result<u64, PartnerDownError> {
        if name == "edge" {
            // Floored at a last-heard time, as the state machine does.
            Ok(since.max(1_763_785_800))
        } else {
            Err(PartnerDownError::NoSuchRelationship(name.to_owned()))
        }
    }
}

fn check(line: &[u8]) {
    let response = admin::handle_line(line, &Backend);
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
                .min(admin::MAX_LEASES);
            let got = response.leases.as_ref().expect("leases answered").len();
            assert!(
                got as u64 <= u64::from(limit),
                "{got} leases for a limit of {limit}"
            );
        }
        Request::PartnerDown { name, .. } => {
            assert_eq!(name, "edge");
            assert!(response.message.is_some());
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
