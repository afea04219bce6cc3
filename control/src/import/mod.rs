//! Migration off ISC dhcpd and Kea: `tandemctl import isc|kea` reads the other server's
//! configuration (and lease file), writes a tandem configuration file, loads the leases into
//! the lease tables with their states and times, and reports every statement it met with its
//! line: translated, approximated, or unsupported.
//!
//! The readers ([`isc`], [`kea`]) turn their input into an [`Imported`]: a [`Draft`] of the
//! configuration (only what the source said; tandem's defaults fill the rest), the leases as
//! lease records, the failover state each relationship was in, and the [`Report`]. The
//! [`Draft`] is written as TOML ([`Draft::to_toml`]) and must pass the same validation as any
//! configuration file before anything is written; the leases are then stored by [`store`] into
//! an empty data directory, with the relationships' states (so a server imported from an ISC
//! failover partner resumes the relationship where dhcpd left it, rather than starting over).

pub mod isc;
pub mod kea;

use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use lease_mmap::{BindingState, Lease, Store};

use crate::failover::UnixTime;
use crate::failover::fsm::{PersistedState, StateKind};
use crate::failover::hash::Hba;

use crate::config::{self, AddrRange, Config, Ipv4Prefix, ReservationKey};

/// What became of one statement of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Carried over with the same meaning.
    Translated,
    /// Carried over, but not exactly: the note says how it differs.
    Approximated,
    /// Left out: tandem has no equivalent (the note says what to do instead, if anything).
    Unsupported,
}

impl Outcome {
    /// The report's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Translated => "translated",
            Outcome::Approximated => "approximated",
            Outcome::Unsupported => "unsupported",
        }
    }
}

/// One statement of the source and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The source file.
    pub file: PathBuf,
    /// Its line (1-based).
    pub line: u32,
    /// What became of it.
    pub outcome: Outcome,
    /// The statement, shortened to one line (`range 10.0.1.10 10.0.1.200`).
    pub statement: String,
    /// Where it went, or why not.
    pub note: String,
}

/// Every statement met, in source order (file by file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The findings.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Records a finding.
    pub fn add(
        &mut self,
        file: &Path,
        line: u32,
        outcome: Outcome,
        statement: impl Into<String>,
        note: impl Into<String>,
    ) {
        let mut statement: String = statement
            .into()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if statement.chars().count() > 72 {
            statement = statement.chars().take(69).collect::<String>() + "...";
        }
        self.findings.push(Finding {
            file: file.to_owned(),
            line,
            outcome,
            statement,
            note: note.into(),
        });
    }

    /// Puts the findings in file and line order (readers may find some late).
    pub fn sort(&mut self) {
        self.findings
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    }

    /// How many findings have `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.findings
            .iter()
            .filter(|f| f.outcome == outcome)
            .count()
    }
}

impl fmt::Display for Report {
    /// `FILE:LINE: OUTCOME  STATEMENT: NOTE`, a line each, then the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in &self.findings {
            write!(
                f,
                "{}:{}: {:<12} {}",
                x.file.display(),
                x.line,
                x.outcome.as_str(),
                x.statement
            )?;
            if !x.note.is_empty() {
                write!(f, "  -> {}", x.note)?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "{} statements: {} translated, {} approximated, {} unsupported",
            self.findings.len(),
            self.count(Outcome::Translated),
            self.count(Outcome::Approximated),
            self.count(Outcome::Unsupported)
        )
    }
}

/// The configuration an import makes: only what the source said. `None` and empty lists
/// leave tandem's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    /// `server.interfaces` (the source's, where it names them; `--interface` overrides).
    pub interfaces: Vec<String>,
    /// `server.server_id`.
    pub server_id: Option<Ipv4Addr>,
    /// `server.trusted_relays`.
    pub trusted_relays: Vec<Ipv4Prefix>,
    /// `[[subnet]]`, in source order.
    pub subnets: Vec<DraftSubnet>,
    /// `[[failover]]`, in source order.
    pub failover: Vec<DraftFailover>,
}

/// One `[[subnet]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftSubnet {
    /// A comment written above it (where it came from: `subnet 10.0.0.0 netmask ... (line 12)`).
    pub origin: String,
    pub prefix: Ipv4Prefix,
    pub pools: Vec<AddrRange>,
    /// Addresses of the pools never handed out.
    pub exclude: Vec<AddrRange>,
    pub router: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    /// Seconds.
    pub lease_time: Option<u32>,
    pub renewal_time: Option<u32>,
    pub rebinding_time: Option<u32>,
    pub decline_probation: Option<u32>,
    /// The relationship's name.
    pub failover: Option<String>,
    pub reservations: Vec<DraftReservation>,
}

impl DraftSubnet {
    /// A subnet with nothing but its prefix.
    pub fn new(prefix: Ipv4Prefix, origin: impl Into<String>) -> Self {
        DraftSubnet {
            origin: origin.into(),
            prefix,
            pools: Vec::new(),
            exclude: Vec::new(),
            router: Vec::new(),
            dns: Vec::new(),
            domain_name: None,
            lease_time: None,
            renewal_time: None,
            rebinding_time: None,
            decline_probation: None,
            failover: None,
            reservations: Vec::new(),
        }
    }
}

/// What a subnet inherits from the scopes around it (ISC: global → shared network or group
/// → subnet → pool; Kea: global → shared network → subnet), the innermost winning. Either
/// reader fills one per scope and [`Inherited::apply`]s it to the subnets it holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Inherited {
    pub(crate) lease_time: Option<u32>,
    pub(crate) renewal_time: Option<u32>,
    pub(crate) rebinding_time: Option<u32>,
    pub(crate) decline_probation: Option<u32>,
    pub(crate) router: Option<Vec<Ipv4Addr>>,
    pub(crate) dns: Option<Vec<Ipv4Addr>>,
    pub(crate) domain_name: Option<String>,
}

impl Inherited {
    /// Sets in `sub` what these parameters set, over what it had.
    pub(crate) fn apply(&self, sub: &mut DraftSubnet) {
        sub.lease_time = self.lease_time.or(sub.lease_time);
        sub.renewal_time = self.renewal_time.or(sub.renewal_time);
        sub.rebinding_time = self.rebinding_time.or(sub.rebinding_time);
        sub.decline_probation = self.decline_probation.or(sub.decline_probation);
        if let Some(r) = &self.router {
            sub.router.clone_from(r);
        }
        if let Some(d) = &self.dns {
            sub.dns.clone_from(d);
        }
        if self.domain_name.is_some() {
            sub.domain_name.clone_from(&self.domain_name);
        }
    }
}

/// One `[[subnet.reservation]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftReservation {
    pub key: ReservationKey,
    pub address: Ipv4Addr,
    pub hostname: Option<String>,
}

/// One `[[failover]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftFailover {
    pub name: String,
    pub primary: bool,
    pub hot_standby: bool,
    pub address: Ipv4Addr,
    pub peer_address: Ipv4Addr,
    pub port: Option<u16>,
    pub peer_port: Option<u16>,
    /// Seconds.
    pub mclt: Option<u32>,
    /// Buckets of 256 the primary owns.
    pub split: Option<u16>,
    /// Hot standby: the standby's share of free addresses.
    pub reserve_percent: Option<u8>,
    pub load_balance_max_seconds: Option<u16>,
    pub max_response_delay: Option<u32>,
    pub max_unacked_updates: Option<u32>,
    pub auto_partner_down: Option<u32>,
}

/// What runs at the other end of the imported relationships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partner {
    /// ISC dhcpd (the first step of a migration: the other box still runs it).
    Isc,
    /// tandem, with this shared secret file.
    Tandem { shared_secret_file: PathBuf },
}

/// Choices the source cannot make: where the new server keeps its data, and so on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `server.data_dir`.
    pub data_dir: PathBuf,
    /// Overrides the source's interfaces when not empty.
    pub interfaces: Vec<String>,
    /// The partner of every relationship.
    pub partner: Partner,
}

/// A lease read from the source, as a lease record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedLease {
    /// The source file and line it was read from (its last entry, where several).
    pub file: PathBuf,
    pub line: u32,
    pub addr: Ipv4Addr,
    pub lease: Lease,
}

/// The failover state a relationship was left in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedState {
    pub name: String,
    pub my_state: StateKind,
    /// Unix seconds.
    pub my_stos: u32,
    pub partner_state: Option<StateKind>,
    pub partner_stos: u32,
    /// The MCLT in force, if the source keeps it.
    pub mclt: Option<u32>,
}

/// What a reader made of its source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub draft: Draft,
    /// Every lease, one per address (the source's last word on it).
    pub leases: Vec<ImportedLease>,
    pub states: Vec<ImportedState>,
    pub report: Report,
}

/// Why an import stopped; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The source is not what its reader understands (a syntax error).
    #[error("{}:{line}: {reason}", path.display())]
    Syntax {
        path: PathBuf,
        line: u32,
        reason: String,
    },
    /// The configuration made does not pass tandem's own checks.
    #[error("the configuration made from the source does not validate:\n{0}")]
    Invalid(String),
    /// The data directory is not empty.
    #[error(
        "{}: not empty; import into a new, empty data directory",
        .0.display()
    )]
    NotEmpty(PathBuf),
    #[error("{}: {reason}", path.display())]
    Store { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Leases still bound lie outside the configuration made: importing would forget them.
    #[error("{0}")]
    Outside(String),
}

/// Writes `s` as a TOML basic string.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `b` reads as text (printable ASCII, not empty).
fn printable(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|c| (0x20..0x7f).contains(c))
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    let v: Vec<String> = items.iter().map(|x| quoted(&x.to_string())).collect();
    format!("[{}]", v.join(", "))
}

fn secs(s: u32) -> String {
    quoted(&format!("{s}s"))
}

impl Draft {
    /// ISC dhcpd and Kea honour every relay agent's option 82; tandem only that of
    /// `server.trusted_relays`. With reservations by circuit-id or remote-id, trust every
    /// relay as the source did, and say so (`source` names it in the report).
    pub(crate) fn trust_relays_as(&mut self, source: &str, report: &mut Report, file: &Path) {
        let relayed = self.subnets.iter().flat_map(|s| &s.reservations).any(|r| {
            matches!(
                r.key,
                ReservationKey::CircuitId(_) | ReservationKey::RemoteId(_)
            )
        });
        if relayed {
            self.trusted_relays.push(Ipv4Prefix {
                addr: Ipv4Addr::UNSPECIFIED,
                len: 0,
            });
            report.add(
                file,
                1,
                Outcome::Approximated,
                "(reservations by relay agent option)",
                format!(
                    "trusted_relays = [\"0.0.0.0/0\"]: {source} honours every relay's option 82; \
                     narrow it to your relay agents"
                ),
            );
        }
    }

    /// The configuration file: `[server]` from `opts` and the source, then every subnet and
    /// relationship, each under a comment naming where it came from.
    pub fn to_toml(&self, opts: &Options, source: &str) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "# Imported from {source} by `tandemctl import`.");
        let _ = writeln!(
            t,
            "# Read the import report before starting: every statement not translated exactly is listed there.\n"
        );
        t.push_str("[server]\n");
        let interfaces = if opts.interfaces.is_empty() {
            &self.interfaces
        } else {
            &opts.interfaces
        };
        let _ = writeln!(t, "interfaces = {}", list(interfaces));
        if let Some(id) = self.server_id {
            let _ = writeln!(t, "server_id = {}", quoted(&id.to_string()));
        }
        let _ = writeln!(t, "data_dir = {}", quoted(&opts.data_dir.to_string_lossy()));
        if !self.trusted_relays.is_empty() {
            let _ = writeln!(t, "trusted_relays = {}", list(&self.trusted_relays));
        }
        for s in &self.subnets {
            let _ = writeln!(t, "\n# {}", s.origin);
            t.push_str("[[subnet]]\n");
            let _ = writeln!(t, "prefix = {}", quoted(&s.prefix.to_string()));
            let _ = writeln!(t, "pools = {}", list(&s.pools));
            if !s.exclude.is_empty() {
                let _ = writeln!(t, "exclude = {}", list(&s.exclude));
            }
            if !s.router.is_empty() {
                let _ = writeln!(t, "router = {}", list(&s.router));
            }
            if !s.dns.is_empty() {
                let _ = writeln!(t, "dns = {}", list(&s.dns));
            }
            if let Some(d) = &s.domain_name {
                let _ = writeln!(t, "domain_name = {}", quoted(d));
            }
            for (key, v) in [
                ("lease_time", s.lease_time),
                ("renewal_time", s.renewal_time),
                ("rebinding_time", s.rebinding_time),
                ("decline_probation", s.decline_probation),
            ] {
                if let Some(v) = v {
                    let _ = writeln!(t, "{key} = {}", secs(v));
                }
            }
            if let Some(f) = &s.failover {
                let _ = writeln!(t, "failover = {}", quoted(f));
            }
            for r in &s.reservations {
                t.push_str("\n[[subnet.reservation]]\n");
                let (key, value) = match &r.key {
                    ReservationKey::Mac(m) => ("mac", config::format_hex(m, ":")),
                    ReservationKey::ClientId(b) => ("client_id", config::format_hex(b, ":")),
                    ReservationKey::CircuitId(b) if printable(b) => {
                        ("circuit_id", String::from_utf8_lossy(b).into_owned())
                    }
                    ReservationKey::RemoteId(b) if printable(b) => {
                        ("remote_id", String::from_utf8_lossy(b).into_owned())
                    }
                    ReservationKey::CircuitId(b) => ("circuit_id_hex", config::format_hex(b, "")),
                    ReservationKey::RemoteId(b) => ("remote_id_hex", config::format_hex(b, "")),
                };
                let _ = writeln!(t, "{key} = {}", quoted(&value));
                let _ = writeln!(t, "address = {}", quoted(&r.address.to_string()));
                if let Some(h) = &r.hostname {
                    let _ = writeln!(t, "hostname = {}", quoted(h));
                }
            }
        }
        for f in &self.failover {
            t.push_str("\n[[failover]]\n");
            let _ = writeln!(t, "name = {}", quoted(&f.name));
            let role = if f.primary { "primary" } else { "secondary" };
            let _ = writeln!(t, "role = {}", quoted(role));
            let mode = if f.hot_standby {
                "hot-standby"
            } else {
                "load-balance"
            };
            let _ = writeln!(t, "mode = {}", quoted(mode));
            let _ = writeln!(t, "address = {}", quoted(&f.address.to_string()));
            let _ = writeln!(t, "peer_address = {}", quoted(&f.peer_address.to_string()));
            for (key, v) in [("port", f.port), ("peer_port", f.peer_port)] {
                if let Some(v) = v {
                    let _ = writeln!(t, "{key} = {v}");
                }
            }
            // A secondary learns MCLT and split from the primary.
            if f.primary {
                if let Some(v) = f.mclt {
                    let _ = writeln!(t, "mclt = {}", secs(v));
                }
                if let Some(v) = f.split {
                    let _ = writeln!(t, "split = {v}");
                }
            }
            if let Some(v) = f.reserve_percent {
                let _ = writeln!(t, "reserve_percent = {v}");
            }
            if let Some(v) = f.load_balance_max_seconds {
                let _ = writeln!(t, "load_balance_max_seconds = {v}");
            }
            if let Some(v) = f.max_response_delay {
                let _ = writeln!(t, "max_response_delay = {}", secs(v));
            }
            if let Some(v) = f.max_unacked_updates {
                let _ = writeln!(t, "max_unacked_updates = {v}");
            }
            if let Some(v) = f.auto_partner_down {
                let _ = writeln!(t, "auto_partner_down = {}", secs(v));
            }
            match &opts.partner {
                Partner::Isc => t.push_str("peer_software = \"isc-dhcpd\"\n"),
                Partner::Tandem { shared_secret_file } => {
                    let _ = writeln!(
                        t,
                        "shared_secret_file = {}",
                        quoted(&shared_secret_file.to_string_lossy())
                    );
                }
            }
        }
        t
    }
}

/// What [`store`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Leases written, by state (indexed by [`BindingState`] as u8).
    pub by_state: [u64; 8],
    /// Leases left out: outside every table of the configuration (file, line, address).
    pub outside: Vec<(PathBuf, u32, Ipv4Addr)>,
    /// Relationships whose state was stored.
    pub states: Vec<String>,
}

/// Stores `leases` and `states` into `config`'s data directory, which must not exist yet or
/// be empty: everything is written into a directory beside it first (the tables created,
/// every lease written into its address's record, the tables checkpointed and closed clean,
/// each relationship's state file written), which is then renamed into place, so a failure
/// leaves nothing behind. A lease outside every table is left out (and listed: check with
/// [`outside`] first). `progress` hears the count written so far every 65,536 leases.
pub fn store(
    config: &Config,
    leases: &[ImportedLease],
    states: &[ImportedState],
    mut progress: impl FnMut(usize),
) -> Result<Stored, ImportError> {
    let dir = &config.server.data_dir;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ImportError::NotEmpty(dir.clone()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ImportError::Read {
                path: dir.clone(),
                source,
            });
        }
    }
    let mut tmp = dir.as_os_str().to_owned();
    tmp.push(format!(".import-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = store_into(&tmp, config, leases, states, &mut progress).and_then(|stored| {
        std::fs::rename(&tmp, dir).map_err(|source| ImportError::Write {
            path: dir.clone(),
            source,
        })?;
        if let Some(parent) = dir.parent() {
            let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(stored)
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written
}

fn store_into(
    dir: &Path,
    config: &Config,
    leases: &[ImportedLease],
    states: &[ImportedState],
    progress: &mut dyn FnMut(usize),
) -> Result<Stored, ImportError> {
    let store_err = |reason: String| ImportError::Store {
        path: dir.to_owned(),
        reason,
    };
    let specs = crate::serve::engine_config(config).table_specs();
    let (store, journals, _) = Store::open(dir, &specs, 1, lease_mmap::Durability::Sync)
        .map_err(|e| store_err(e.to_string()))?;
    let mut stored = Stored::default();
    for (n, l) in leases.iter().enumerate() {
        if n % 65_536 == 0 && n > 0 {
            progress(n);
        }
        let Some((table, slot)) = store
            .table_for_addr(l.addr)
            .and_then(|t| Some((t, t.slot(l.addr)?)))
        else {
            stored.outside.push((l.file.clone(), l.line, l.addr));
            continue;
        };
        let (version, _) = table.read(slot);
        table
            .update(slot, version, &l.lease)
            .map_err(|e| store_err(format!("{} (line {}): {e:?}", l.addr, l.line)))?;
        stored.by_state[l.lease.state as usize] += 1;
    }
    progress(leases.len());
    store
        .close(journals)
        .map_err(|e| store_err(e.to_string()))?;
    for s in states {
        let Some(rel) = config.relationship(&s.name) else {
            continue;
        };
        let state = PersistedState {
            my_state: s.my_state,
            my_stos: UnixTime(s.my_stos),
            partner_state: s.partner_state,
            partner_stos: UnixTime(s.partner_stos),
            mclt: s.mclt.unwrap_or(rel.mclt),
            hba: Hba::split(rel.split),
            // In PARTNER-DOWN since it entered it, as far as the source knows: the MCLT is
            // waited out from there (dhcpd: `me.stos + MCLT`), never from 1970.
            partner_down_since: UnixTime(s.my_stos),
            // Unknown: STARTUP then takes a partner found in PARTNER-DOWN as possibly
            // entered after we stopped, and goes to POTENTIAL-CONFLICT (the safe side).
            last_operation: None,
        };
        crate::failover::persist::store(dir, &s.name, &state)
            .map_err(|e| store_err(e.to_string()))?;
        stored.states.push(s.name.clone());
    }
    Ok(stored)
}

/// The leases no table of `config` holds (their address is in no subnet's pools or
/// reservations), with whether each is still bound at `now`.
pub fn outside<'a>(
    config: &Config,
    leases: &'a [ImportedLease],
    now: UnixTime,
) -> Vec<(&'a ImportedLease, bool)> {
    let specs = crate::serve::engine_config(config).table_specs();
    leases
        .iter()
        .filter(|l| !specs.iter().any(|s| s.first <= l.addr && l.addr <= s.last))
        .map(|l| {
            let bound = l.lease.state == BindingState::Active && l.lease.ends > now;
            (l, bound)
        })
        .collect()
}

/// Validates the TOML an import made, as `tandemd --check` would.
pub fn validate(toml: &str) -> Result<Config, ImportError> {
    config::parse(toml).map_err(|errors| {
        let mut text = String::new();
        for e in errors {
            let _ = writeln!(text, "  {e}");
        }
        ImportError::Invalid(text)
    })
}

/// Keeps the last entry for each address (lease files append; the last word wins), in
/// address order.
pub fn last_per_address(mut leases: Vec<ImportedLease>) -> Vec<ImportedLease> {
    // Stable sort keeps file order among equal addresses; the last of each run wins.
    leases.sort_by_key(|l| l.addr);
    let mut out: Vec<ImportedLease> = Vec::with_capacity(leases.len());
    for l in leases {
        match out.last_mut() {
            Some(prev) if prev.addr == l.addr => *prev = l,
            _ => out.push(l),
        }
    }
    out
}

/// The state named `name` in the draft's spelling (`normal`, `partner-down`, ...).
pub fn state_named(name: &str) -> Option<StateKind> {
    (1..=u8::MAX)
        .filter_map(StateKind::from_u8)
        .find(|s| s.name() == name)
}

/// A lease record with state `state` and nothing else set.
pub fn lease_with(state: BindingState) -> Lease {
    Lease {
        state,
        ..Lease::default()
    }
}

/// Where an import reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// ISC dhcpd: `dhcpd.conf`, `dhcpd.leases`.
    Isc,
    /// Kea: `kea-dhcp4.conf`, `kea-leases4.csv`.
    Kea,
}

/// `tandemctl import isc|kea --conf FILE [--leases FILE] --output FILE [--interface IF]...
/// [--shared-secret-file FILE] [--dry-run]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub source: Source,
    pub conf: PathBuf,
    pub leases: Option<PathBuf>,
    /// The tandem configuration file to write (a new file).
    pub output: Option<PathBuf>,
    pub interfaces: Vec<String>,
    /// The relationships' partner is tandem, with this secret; without it, ISC dhcpd.
    pub shared_secret_file: Option<PathBuf>,
    /// Print the report and the configuration; write nothing.
    pub dry_run: bool,
    /// Import no leases (said on purpose: without them the new server would hand out
    /// addresses clients still hold).
    pub no_leases: bool,
}

/// Parses the words after `import`; `Err` says what is wrong.
pub fn parse_args(words: &[String]) -> Result<Args, String> {
    let source = match words.first().map(String::as_str) {
        Some("isc") => Source::Isc,
        Some("kea") => Source::Kea,
        _ => return Err("import isc|kea --conf FILE ...: say which server's files".into()),
    };
    let mut args = Args {
        source,
        conf: PathBuf::new(),
        leases: None,
        output: None,
        interfaces: Vec::new(),
        shared_secret_file: None,
        dry_run: false,
        no_leases: false,
    };
    let mut it = words[1..].iter();
    while let Some(w) = it.next() {
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (w.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--conf" => args.conf = value()?.into(),
            "--leases" => args.leases = Some(value()?.into()),
            "--output" | "-o" => args.output = Some(value()?.into()),
            "--interface" | "-i" => args.interfaces.push(value()?),
            "--shared-secret-file" => args.shared_secret_file = Some(value()?.into()),
            "--dry-run" => args.dry_run = true,
            "--no-leases" => args.no_leases = true,
            other => return Err(format!("import: unexpected {other:?}")),
        }
    }
    if args.conf.as_os_str().is_empty() {
        return Err("import needs --conf FILE".into());
    }
    if args.leases.is_none() && !args.no_leases {
        return Err(
            "import needs --leases FILE (the leases clients hold; without them the new \
                    server would hand out addresses in use), or --no-leases to import none"
                .into(),
        );
    }
    if args.leases.is_some() && args.no_leases {
        return Err("import: --leases and --no-leases contradict each other".into());
    }
    if args.output.is_none() && !args.dry_run {
        return Err(
            "import needs --output FILE (the tandem configuration to write) or --dry-run".into(),
        );
    }
    Ok(args)
}

/// Runs an import into `data_dir`: returns the exit status (0, 1 refused or failed).
pub fn run(
    args: &Args,
    data_dir: &Path,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> u8 {
    match run_inner(args, data_dir, out, err) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "tandemctl: import: {e}");
            1
        }
    }
}

fn run_inner(
    args: &Args,
    data_dir: &Path,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> Result<(), ImportError> {
    let absolute = |p: &Path| {
        std::path::absolute(p).map_err(|source| ImportError::Read {
            path: p.to_owned(),
            source,
        })
    };
    // The daemon runs elsewhere (systemd: in /): every path it reads is absolute.
    let data_dir = absolute(data_dir)?;
    let imported = match args.source {
        Source::Isc => isc::read(&args.conf, args.leases.as_deref())?,
        Source::Kea => kea::read(&args.conf, args.leases.as_deref())?,
    };
    let partner = match &args.shared_secret_file {
        Some(f) => Partner::Tandem {
            shared_secret_file: absolute(f)?,
        },
        None if args.source == Source::Kea && !imported.draft.failover.is_empty() => {
            return Err(ImportError::Invalid(
                "  Kea's HA pair becomes a tandem failover relationship, whose partner is tandem: \
                 give --shared-secret-file FILE (make one with `tandemctl secret FILE`)\n"
                    .into(),
            ));
        }
        None => Partner::Isc,
    };
    let opts = Options {
        data_dir: data_dir.clone(),
        interfaces: args.interfaces.clone(),
        partner,
    };
    let source = match args.source {
        Source::Isc => "ISC dhcpd",
        Source::Kea => "Kea",
    };
    let toml = imported
        .draft
        .to_toml(&opts, &format!("{source}: {}", args.conf.display()));
    let _ = write!(out, "{}", imported.report);
    let no_interface = imported.draft.interfaces.is_empty() && args.interfaces.is_empty();
    let checked = if no_interface {
        Err(ImportError::Invalid(format!(
            "  {} names no interface to serve on: give --interface IF (once per interface)\n",
            args.conf.display()
        )))
    } else {
        validate(&toml)
    };
    if args.dry_run {
        let _ = write!(out, "\n{toml}");
        let config = checked?;
        report_outside(&config, &imported.leases, out)?;
        let _ = writeln!(
            out,
            "\n(dry run: {} leases and {} relationship states would be stored in {})",
            imported.leases.len(),
            imported.states.len(),
            data_dir.display()
        );
        return Ok(());
    }
    let config = checked?;
    report_outside(&config, &imported.leases, out)?;
    let output = args.output.as_deref().unwrap_or(Path::new("tandem.toml"));
    if output.exists() {
        return Err(ImportError::Write {
            path: output.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists already; name a new file with --output",
            ),
        });
    }
    // The configuration first, under a temporary name: if the leases cannot be stored, it
    // goes; if they are, it takes its name.
    let mut staged = output.as_os_str().to_owned();
    staged.push(".import-tmp");
    let staged = PathBuf::from(staged);
    write_new(&staged, toml.as_bytes()).map_err(|source| ImportError::Write {
        path: staged.clone(),
        source,
    })?;
    let total = imported.leases.len();
    let stored = store(&config, &imported.leases, &imported.states, |n| {
        let _ = writeln!(err, "stored {n} of {total} leases");
    })
    .and_then(|stored| {
        std::fs::rename(&staged, output).map_err(|source| ImportError::Write {
            path: output.to_owned(),
            source,
        })?;
        Ok(stored)
    });
    let stored = match stored {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
    };
    let _ = writeln!(
        out,
        "\nwrote {}; stored {} leases in {} ({}){}",
        output.display(),
        stored.by_state.iter().sum::<u64>(),
        data_dir.display(),
        state_counts(&stored.by_state),
        if stored.states.is_empty() {
            String::new()
        } else {
            format!(
                "; failover state of {} resumed as the source left it",
                stored.states.join(", ")
            )
        }
    );
    let _ = writeln!(
        out,
        "check it with: tandemd --check --config {}",
        output.display()
    );
    Ok(())
}

/// Lists the leases `config` has no table for; refuses if any is still bound (its client
/// holds it: importing would forget it).
fn report_outside(
    config: &Config,
    leases: &[ImportedLease],
    out: &mut dyn std::io::Write,
) -> Result<(), ImportError> {
    let left = outside(config, leases, UnixTime::now());
    for (l, bound) in &left {
        let _ = writeln!(
            out,
            "{}:{}: left out     lease of {} ({}{})  -> in no subnet's pools or reservations",
            l.file.display(),
            l.line,
            l.addr,
            l.lease.state.name(),
            if *bound { ", still bound" } else { "" }
        );
    }
    let bound = left.iter().filter(|(_, b)| *b).count();
    if bound > 0 {
        return Err(ImportError::Outside(format!(
            "{bound} leases still bound lie outside the configuration made (listed above): \
             their clients hold them, and an import must not forget them. Add their ranges \
             to the source's configuration (or wait until they end) and import again"
        )));
    }
    Ok(())
}

/// `3 active, 5 free`: the non-zero counts of `by_state` (indexed by [`BindingState`]).
pub fn state_counts(by_state: &[u64; 8]) -> String {
    let v: Vec<String> = BindingState::ALL
        .iter()
        .filter(|s| by_state[**s as usize] > 0)
        .map(|s| format!("{} {}", by_state[*s as usize], s.name()))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Writes a new file durably (it must not exist).
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
