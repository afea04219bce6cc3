//! Kea DHCPv4 2.2: `kea-dhcp4.conf` and the memfile lease file (`kea-leases4.csv`).
//!
//! The configuration is JSON with comments (`#`, `//`, `/* */`) and trailing commas, as Kea
//! reads it; the parser here keeps the line of every key, so each finding names the line of its
//! key. Every key met is reported: a list entry (subnet, pool, option, reservation, hook,
//! peer) once, at the line of the key that names it, and apart from it whatever it holds that
//! tandem leaves out; a block tandem has no part of (`loggers`, `client-classes`, ...) once,
//! whole. A key this reader does not know is reported unsupported, never dropped.
//!
//! Kea's parameters cascade from the global level through a shared network to its subnets,
//! the innermost winning (options code by code). tandem has no global level: what a subnet
//! inherits is written into it. Kea HA keeps its state in memory only, so no relationship
//! state is imported: a pair made from Kea HA starts as a new relationship.
//!
//! The lease file is an append log, read as kea-dhcp4 reads it: first the files its lease
//! file cleanup leaves beside it (`NAME.completed`, else `NAME.2` then `NAME.1`), then `NAME`;
//! the last row for an address wins, and a row with `valid_lifetime` 0 deletes the lease.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use lease_mmap::{BindingState, ClientId, UnixTime};

use super::Outcome::{self, Approximated, Translated, Unsupported};
use super::{
    Draft, DraftFailover, DraftReservation, DraftSubnet, ImportError, Imported, ImportedLease,
    Inherited as Scope, Report, last_per_address, lease_with,
};
use crate::config::{self, Ipv4Prefix, ReservationKey};

/// Reads the configuration at `conf` and the lease file at `leases` (with the older files
/// Kea's lease file cleanup keeps beside it); a lease in Kea's default state is active if it
/// has not ended by the clock.
pub fn read(conf: &Path, leases: Option<&Path>) -> Result<Imported, ImportError> {
    read_at(conf, leases, UnixTime::now())
}

/// [`read`] with the time that decides whether a lease in Kea's default state is still active.
pub fn read_at(conf: &Path, leases: Option<&Path>, now: UnixTime) -> Result<Imported, ImportError> {
    let text = read_text(conf)?;
    let root = parse(&text).map_err(|e| e.at(conf))?;
    let mut r = Reader {
        path: conf,
        report: Report::default(),
        draft: Draft::default(),
        ids: HashMap::new(),
        next_id: 1,
    };
    r.root(&root).map_err(|e| e.at(conf))?;
    // Kea honours every relay's option 82; tandem only that of `server.trusted_relays`.
    r.draft.trust_relays_as("Kea", &mut r.report, conf);
    // The findings were made block by block; the report lists them in source order.
    r.report.findings.sort_by_key(|f| f.line);
    let mut report = r.report;
    let mut leases = match leases {
        Some(path) => read_leases(path, &r.ids, now, &mut report)?,
        None => Vec::new(),
    };
    // Both servers of a Kea HA pair hold every lease: the imported primary owns the bound
    // ones, the other server leaves their end to it (tandem gives an ended binding's address
    // again only from the side that wrote the end, once the partner has acknowledged it).
    if let Some(f) = r.draft.failover.first() {
        let owner = if f.primary {
            lease_mmap::Owner::Us
        } else {
            lease_mmap::Owner::Partner
        };
        for l in &mut leases {
            let in_relationship = r
                .draft
                .subnets
                .iter()
                .any(|s| s.failover.is_some() && s.prefix.contains(l.addr));
            if in_relationship && l.lease.state.is_bound() {
                l.lease.owner = owner;
            }
        }
    }
    Ok(Imported {
        draft: r.draft,
        leases,
        states: Vec::new(),
        report,
    })
}

fn read_text(path: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })
}

// ---------------------------------------------------------------------------------------------
// JSON with comments, and lines

/// A syntax error: its line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bad {
    line: u32,
    reason: String,
}

impl Bad {
    fn at(self, path: &Path) -> ImportError {
        ImportError::Syntax {
            path: path.to_owned(),
            line: self.line,
            reason: self.reason,
        }
    }
}

/// A JSON value and the line it starts on.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    line: u32,
    value: Value,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Bool(bool),
    /// A number as written (Kea's are integers, but for `t1-percent` and the like).
    Num(String),
    Str(String),
    List(Vec<Node>),
    /// In file order; keys are unique.
    Map(Vec<Member>),
}

/// A key of a map, the line it is on, and its value.
#[derive(Debug, Clone, PartialEq)]
struct Member {
    key: String,
    line: u32,
    value: Node,
}

impl Node {
    fn str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    fn u32(&self) -> Option<u32> {
        match &self.value {
            Value::Num(n) => n.parse().ok(),
            _ => None,
        }
    }
    fn bool(&self) -> Option<bool> {
        match self.value {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    fn list(&self) -> &[Node] {
        match &self.value {
            Value::List(v) => v,
            _ => &[],
        }
    }
    fn members(&self) -> &[Member] {
        match &self.value {
            Value::Map(m) => m,
            _ => &[],
        }
    }
    fn member(&self, key: &str) -> Option<&Member> {
        self.members().iter().find(|m| m.key == key)
    }
    fn get(&self, key: &str) -> Option<&Node> {
        self.member(key).map(|m| &m.value)
    }
    /// The line of `key` if the map has it, else the map's own.
    fn line_of(&self, key: &str) -> u32 {
        self.member(key).map_or(self.line, |m| m.line)
    }
    /// The value in one short line, for the report.
    fn brief(&self) -> String {
        match &self.value {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Num(n) => n.clone(),
            Value::Str(s) => format!("{s:?}"),
            Value::List(v)
                if v.iter()
                    .all(|n| !matches!(n.value, Value::List(_) | Value::Map(_))) =>
            {
                format!(
                    "[{}]",
                    v.iter().map(Node::brief).collect::<Vec<_>>().join(", ")
                )
            }
            Value::List(_) => "[...]".into(),
            Value::Map(_) => "{...}".into(),
        }
    }
}

impl Member {
    /// `"key": value`, for the report.
    fn statement(&self) -> String {
        format!("{:?}: {}", self.key, self.value.brief())
    }
}

/// Deeper nesting than any Kea configuration needs is refused, not recursed into.
const MAX_DEPTH: usize = 64;

/// Parses Kea's JSON: comments and trailing commas allowed, duplicate keys refused (as Kea
/// does), the whole a map.
fn parse(src: &str) -> Result<Node, Bad> {
    let mut p = Parser {
        src,
        pos: 0,
        line: 1,
    };
    p.skip()?;
    let root = p.value(0)?;
    p.skip()?;
    if p.pos < src.len() {
        return Err(p.bad("text after the end of the configuration"));
    }
    if !matches!(root.value, Value::Map(_)) {
        return Err(Bad {
            line: root.line,
            reason: "the configuration is not a JSON object".into(),
        });
    }
    Ok(root)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
}

impl<'a> Parser<'a> {
    fn bad(&self, reason: impl Into<String>) -> Bad {
        Bad {
            line: self.line,
            reason: reason.into(),
        }
    }
    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }
    fn unexpected(&self) -> Bad {
        match self.rest().chars().next() {
            Some(c) => self.bad(format!("unexpected {c:?}")),
            None => self.bad("unexpected end of file"),
        }
    }

    /// Skips white space and comments.
    fn skip(&mut self) -> Result<(), Bad> {
        loop {
            let rest = self.rest();
            if rest.starts_with('#') || rest.starts_with("//") {
                while let Some(c) = self.peek()
                    && c != b'\n'
                {
                    self.pos += 1;
                }
            } else if rest.starts_with("/*") {
                let line = self.line;
                self.pos += 2;
                while !self.rest().starts_with("*/") {
                    if self.next().is_none() {
                        return Err(Bad {
                            line,
                            reason: "unterminated /* comment".into(),
                        });
                    }
                }
                self.pos += 2;
            } else if rest.starts_with("<?") {
                return Err(self.bad(
                    "`<?include ...?>` is not followed: paste the included file in its place",
                ));
            } else if let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
                self.next();
            } else {
                return Ok(());
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, Bad> {
        if depth > MAX_DEPTH {
            return Err(self.bad("nested too deeply"));
        }
        let line = self.line;
        let value = match self.peek() {
            Some(b'{') => self.map(depth)?,
            Some(b'[') => self.list(depth)?,
            Some(b'"') => Value::Str(self.string()?),
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => {
                let word = ["true", "false", "null"]
                    .into_iter()
                    .find(|w| self.rest().starts_with(w))
                    .ok_or_else(|| self.unexpected())?;
                self.pos += word.len();
                match word {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => Value::Null,
                }
            }
        };
        Ok(Node { line, value })
    }

    fn map(&mut self, depth: usize) -> Result<Value, Bad> {
        self.next();
        let mut members: Vec<Member> = Vec::new();
        let mut seen: HashMap<String, u32> = HashMap::new();
        loop {
            self.skip()?;
            if self.peek() == Some(b'}') {
                self.next();
                return Ok(Value::Map(members));
            }
            if self.peek() != Some(b'"') {
                return Err(self.bad("expected a key in double quotes or `}`"));
            }
            let line = self.line;
            let key = self.string()?;
            if let Some(first) = seen.insert(key.clone(), line) {
                return Err(Bad {
                    line,
                    reason: format!("duplicate key {key:?} (first on line {first})"),
                });
            }
            self.skip()?;
            if self.next() != Some(b':') {
                return Err(self.bad(format!("expected `:` after {key:?}")));
            }
            self.skip()?;
            let value = self.value(depth + 1)?;
            members.push(Member { key, line, value });
            self.skip()?;
            match self.peek() {
                Some(b',') => {
                    self.next();
                }
                Some(b'}') => {}
                _ => return Err(self.bad("expected `,` or `}`")),
            }
        }
    }

    fn list(&mut self, depth: usize) -> Result<Value, Bad> {
        self.next();
        let mut items = Vec::new();
        loop {
            self.skip()?;
            if self.peek() == Some(b']') {
                self.next();
                return Ok(Value::List(items));
            }
            items.push(self.value(depth + 1)?);
            self.skip()?;
            match self.peek() {
                Some(b',') => {
                    self.next();
                }
                Some(b']') => {}
                _ => return Err(self.bad("expected `,` or `]`")),
            }
        }
    }

    fn string(&mut self) -> Result<String, Bad> {
        let line = self.line;
        self.next();
        let mut out = String::new();
        loop {
            let Some(c) = self.rest().chars().next() else {
                return Err(Bad {
                    line,
                    reason: "unterminated string".into(),
                });
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => out.push(self.escape()?),
                c if c.is_control() => {
                    return Err(self.bad("control character in a string (a missing `\"`?)"));
                }
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self) -> Result<char, Bad> {
        let c = match self.next() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let hi = self.hex4()?;
                // A surrogate pair stands for one character; a lone surrogate is none.
                let code = if (0xd800..0xdc00).contains(&hi) && self.rest().starts_with("\\u") {
                    self.pos += 2;
                    let lo = self.hex4()?;
                    if !(0xdc00..0xe000).contains(&lo) {
                        return Err(self.bad("invalid \\u escape"));
                    }
                    0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                } else {
                    hi
                };
                return char::from_u32(code).ok_or_else(|| self.bad("invalid \\u escape"));
            }
            _ => return Err(self.bad("invalid escape in a string")),
        };
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, Bad> {
        let digits = self
            .rest()
            .get(..4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let code = digits
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| self.bad("invalid \\u escape"))?;
        self.pos += 4;
        Ok(code)
    }

    fn number(&mut self) -> Result<Value, Bad> {
        let len = self
            .rest()
            .bytes()
            .take_while(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
            .count();
        let text = self.rest().get(..len).unwrap_or("");
        if text.parse::<f64>().is_err() {
            return Err(self.bad(format!("invalid number {text:?}")));
        }
        self.pos += len;
        Ok(Value::Num(text.to_owned()))
    }
}

// ---------------------------------------------------------------------------------------------
// The configuration

/// Where a key is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Global,
    Network,
    Subnet,
}

/// The relationship name Kea HA imports under (a Kea HA configuration names none).
const HA_NAME: &str = "kea-ha";

/// MCLT of a relationship made from Kea HA, which has none (tandem's usual hour).
const HA_MCLT: u32 = 3600;

struct Reader<'a> {
    path: &'a Path,
    report: Report,
    draft: Draft,
    /// Subnet id to prefix: the lease file names subnets by id.
    ids: HashMap<u32, Ipv4Prefix>,
    /// The id Kea gives the next subnet without one.
    next_id: u32,
}

impl Reader<'_> {
    fn add(
        &mut self,
        line: u32,
        outcome: Outcome,
        statement: impl Into<String>,
        note: impl Into<String>,
    ) {
        self.report.add(self.path, line, outcome, statement, note);
    }
    fn key(&mut self, m: &Member, outcome: Outcome, note: impl Into<String>) {
        let statement = m.statement();
        self.add(m.line, outcome, statement, note);
    }

    fn root(&mut self, root: &Node) -> Result<(), Bad> {
        let dhcp4 = root
            .get("Dhcp4")
            .filter(|d| matches!(d.value, Value::Map(_)));
        let Some(dhcp4) = dhcp4 else {
            return Err(Bad {
                line: root.line_of("Dhcp4"),
                reason: "no `Dhcp4` object: not a kea-dhcp4 configuration".into(),
            });
        };
        for m in root.members() {
            if m.key != "Dhcp4" {
                self.key(
                    m,
                    Unsupported,
                    "not the DHCPv4 server's configuration (kea-dhcp4 reads only Dhcp4)",
                );
            }
        }
        self.dhcp4(dhcp4);
        Ok(())
    }

    fn dhcp4(&mut self, dhcp4: &Node) {
        let mut scope = Scope::default();
        let mut later: Vec<&Member> = Vec::new();
        for m in dhcp4.members() {
            if self.scope_key(m, &mut scope, Level::Global) {
                continue;
            }
            match m.key.as_str() {
                "interfaces-config" => self.interfaces(&m.value),
                "lease-database" => self.lease_database(m),
                "hooks-libraries" => {
                    for hook in m.value.list() {
                        self.hook(hook);
                    }
                }
                "decline-probation-period" => match m.value.u32() {
                    Some(v) => {
                        scope.decline_probation = Some(v);
                        self.key(
                            m,
                            Translated,
                            "decline_probation of every subnet (tandem sets it per subnet)",
                        );
                    }
                    None => self.key(m, Unsupported, "not a number of seconds"),
                },
                "subnet4" | "shared-networks" | "reservations" => later.push(m),
                _ => self.other(m),
            }
        }
        // Subnets last, with everything they inherit known (a map's order means nothing).
        // Kea numbers the subnets without an id as it reads them, from its maps sorted by
        // key: shared networks before `subnet4`.
        later.sort_by_key(|m| m.key != "shared-networks");
        for m in &later {
            match m.key.as_str() {
                "shared-networks" => {
                    for network in m.value.list() {
                        self.shared_network(network, &scope);
                    }
                }
                "subnet4" => {
                    for s in m.value.list() {
                        self.subnet(s, &scope, None);
                    }
                }
                _ => {}
            }
        }
        if let Some(m) = later.iter().find(|m| m.key == "reservations") {
            for r in m.value.list() {
                self.global_reservation(r);
            }
        }
        if let Some(f) = self.draft.failover.first() {
            let name = f.name.clone();
            for s in &mut self.draft.subnets {
                s.failover = Some(name.clone());
            }
        }
    }

    /// A key Kea allows at every level (lease times, options); false if `m` is not one.
    fn scope_key(&mut self, m: &Member, scope: &mut Scope, level: Level) -> bool {
        let into = match level {
            Level::Global => {
                "; written into every subnet that sets none (tandem has no global level)"
            }
            Level::Network => "; written into every subnet of the shared network that sets none",
            Level::Subnet => "",
        };
        match m.key.as_str() {
            key @ ("valid-lifetime" | "renew-timer" | "rebind-timer") => {
                let (field, name) = match key {
                    "valid-lifetime" => (&mut scope.lease_time, "lease_time"),
                    "renew-timer" => (&mut scope.renewal_time, "renewal_time"),
                    _ => (&mut scope.rebinding_time, "rebinding_time"),
                };
                match m.value.u32() {
                    Some(v) => {
                        *field = Some(v);
                        self.key(m, Translated, format!("{name}{into}"));
                    }
                    None => self.key(m, Unsupported, "not a number of seconds"),
                }
            }
            "min-valid-lifetime" | "max-valid-lifetime" => self.key(
                m,
                Approximated,
                "tandem grants lease_time whatever lease time a client asks for (option 51 is not \
                 honoured)",
            ),
            "calculate-tee-times" | "t1-percent" | "t2-percent" => self.key(
                m,
                Approximated,
                "tandem sends T1 = lease_time / 2 and T2 = 7/8 of it (Kea's default percentages) \
                 unless renewal_time and rebinding_time are set",
            ),
            "option-data" => {
                for o in m.value.list() {
                    self.option(o, scope, level);
                }
            }
            _ => return false,
        }
        true
    }

    fn interfaces(&mut self, config: &Node) {
        for m in config.members() {
            match m.key.as_str() {
                "interfaces" => {
                    for i in m.value.list() {
                        self.interface(i);
                    }
                }
                "dhcp-socket-type" => match m.value.str() {
                    Some("raw") => self.key(
                        m,
                        Translated,
                        "tandem receives raw frames (AF_PACKET or XDP)",
                    ),
                    _ => self.key(
                        m,
                        Approximated,
                        "tandem receives raw frames (AF_PACKET or XDP), not from a UDP socket; \
                         relayed clients are served alike",
                    ),
                },
                "outbound-interface" => self.key(
                    m,
                    Approximated,
                    "tandem answers on the interface a request arrived on, to its sender's MAC \
                     (same-as-inbound)",
                ),
                "re-detect"
                | "service-sockets-require-all"
                | "service-sockets-max-retries"
                | "service-sockets-retry-wait-time" => self.key(
                    m,
                    Unsupported,
                    "tandem opens the configured interfaces when it starts",
                ),
                _ => self.other(m),
            }
        }
    }

    fn interface(&mut self, i: &Node) {
        let Some(name) = i.str() else {
            self.add(i.line, Unsupported, i.brief(), "not an interface name");
            return;
        };
        let statement = format!("interface {name:?}");
        if name == "*" {
            self.add(
                i.line,
                Unsupported,
                statement,
                "tandem serves the interfaces it is told: name them with --interface",
            );
            return;
        }
        let (ifname, note) = match name.split_once('/') {
            Some((ifname, addr)) => (
                ifname,
                format!(
                    "server.interfaces: tandem serves the whole interface, not only its address \
                     {addr}"
                ),
            ),
            None => (name, "server.interfaces".to_owned()),
        };
        let outcome = if name.contains('/') {
            Approximated
        } else {
            Translated
        };
        if !self.draft.interfaces.iter().any(|x| x == ifname) {
            self.draft.interfaces.push(ifname.to_owned());
        }
        self.add(i.line, outcome, statement, note);
    }

    fn lease_database(&mut self, m: &Member) {
        match m.value.get("type").and_then(Node::str) {
            Some("memfile") => self.key(
                m,
                Approximated,
                "tandem keeps its leases in its own tables under data_dir; the memfile's leases \
                 are imported from the lease file given (--leases)",
            ),
            _ => self.key(
                m,
                Unsupported,
                "leases in a database are not read: dump them to CSV (kea-admin lease-dump) and \
                 import that as the lease file",
            ),
        }
    }

    /// An `option-data` entry.
    fn option(&mut self, o: &Node, scope: &mut Scope, level: Level) {
        let name = o.get("name").and_then(Node::str);
        let code = o
            .get("code")
            .and_then(Node::u32)
            .or_else(|| name.and_then(option_code));
        let line = o
            .member("name")
            .or_else(|| o.member("code"))
            .map_or(o.line, |m| m.line);
        let data = o.get("data").and_then(Node::str).unwrap_or("");
        let label = name.map_or_else(|| format!("option {}", code.unwrap_or(0)), str::to_owned);
        let statement = format!("option-data {label}: {data:?}");
        for m in o.members() {
            match m.key.as_str() {
                "name" | "code" | "data" | "csv-format" | "space" => {}
                "always-send" if m.value.bool() == Some(true) => self.key(
                    m,
                    Approximated,
                    "tandem sends options 3, 6 and 15 when the client asks for them in option 55, \
                     or sends no option 55",
                ),
                _ => self.other(m),
            }
        }
        if let Some(space) = o.get("space").and_then(Node::str).filter(|s| *s != "dhcp4") {
            let note = format!(
                "options of space {space:?} are not sent: tandem sends only options 3, 6 and 15 of \
                 the configuration"
            );
            self.add(line, Unsupported, statement, note);
            return;
        }
        let csv = o.get("csv-format").and_then(Node::bool).unwrap_or(true);
        let set = match code {
            Some(3) => option_addrs(data, csv)
                .map(|a| scope.router = Some(a))
                .ok_or("routers"),
            Some(6) => option_addrs(data, csv)
                .map(|a| scope.dns = Some(a))
                .ok_or("DNS servers"),
            Some(15) => option_text(data, csv)
                .map(|d| scope.domain_name = Some(d))
                .ok_or("domain name"),
            Some(54) if level == Level::Global => match option_addrs(data, csv).as_deref() {
                Some([id]) => {
                    self.draft.server_id = Some(*id);
                    self.add(line, Translated, statement, "server.server_id");
                    return;
                }
                _ => Err("server identifier"),
            },
            Some(54) => {
                self.add(
                    line,
                    Unsupported,
                    statement,
                    "tandem has one server identifier, server.server_id",
                );
                return;
            }
            _ => {
                let note = format!(
                    "{label} is not sent: tandem sends only routers (3), DNS servers (6) and the \
                     domain name (15) of the configuration"
                );
                self.add(line, Unsupported, statement, note);
                return;
            }
        };
        let field = match code {
            Some(3) => "router",
            Some(6) => "dns",
            _ => "domain_name",
        };
        let into = match level {
            Level::Global => " of every subnet that sets none (tandem has no global options)",
            Level::Network => " of every subnet of the shared network that sets none",
            Level::Subnet => "",
        };
        match set {
            Ok(()) => self.add(line, Translated, statement, format!("{field}{into}")),
            Err(what) => self.add(
                line,
                Unsupported,
                statement,
                format!("data is not a valid {what}"),
            ),
        }
    }

    fn hook(&mut self, hook: &Node) {
        let library = hook.get("library").and_then(Node::str).unwrap_or("");
        let line = hook.line_of("library");
        let file = Path::new(library)
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or("");
        let statement = format!("hooks-libraries {file}");
        if file == "libdhcp_ha.so" {
            self.ha(hook, line, statement);
            return;
        }
        let note = match file {
            "libdhcp_lease_cmds.so" => {
                "tandemctl leases and the admin API (DATA_DIR/tandemd.sock) show the leases"
            }
            "libdhcp_stat_cmds.so" => {
                "tandem's counters are Prometheus metrics (server.http) and tandemctl status"
            }
            _ => "tandem loads no hooks",
        };
        self.add(line, Unsupported, statement, note);
        for m in hook.members().iter().filter(|m| m.key == "parameters") {
            self.key(m, Unsupported, "the parameters of a hook left out");
        }
    }

    /// `libdhcp_ha.so`: its (first) relationship becomes a `[[failover]]`.
    fn ha(&mut self, hook: &Node, line: u32, statement: String) {
        let params = hook.get("parameters");
        let rels = params.and_then(|p| p.member("high-availability"));
        for m in params.map_or(&[][..], Node::members) {
            if m.key != "high-availability" {
                self.other(m);
            }
        }
        for rel in rels.map_or(&[][..], |r| r.value.list()).iter().skip(1) {
            self.add(
                rel.line,
                Unsupported,
                "high-availability relationship",
                "one relationship is imported (Kea 2.2 has one)",
            );
        }
        let Some(rel) = rels.and_then(|r| r.value.list().first()) else {
            self.add(
                line,
                Unsupported,
                statement,
                "no parameters.high-availability: nothing to import",
            );
            return;
        };
        match self.relationship(rel) {
            Ok(f) => {
                let mut note = format!(
                    "[[failover]] {HA_NAME:?} ({}, {}) over every subnet: Kea HA is not the \
                     failover protocol, so the partner must be tandem too (import its \
                     configuration alike, with the same shared secret)",
                    if f.primary { "primary" } else { "secondary" },
                    if f.hot_standby {
                        "hot-standby"
                    } else {
                        "load-balance"
                    },
                );
                if f.primary {
                    note.push_str("; mclt = 1h, as Kea HA has none");
                }
                self.draft.failover.push(f);
                self.add(line, Approximated, statement, note);
            }
            Err(why) => {
                self.add(
                    line,
                    Unsupported,
                    statement,
                    format!("no relationship made: {why}"),
                );
                for m in rel.members() {
                    self.key(
                        m,
                        Unsupported,
                        format!("no relationship made (line {line})"),
                    );
                }
            }
        }
    }

    /// One `high-availability` entry: a relationship, or why none; its keys reported.
    fn relationship(&mut self, rel: &Node) -> Result<DraftFailover, String> {
        let this = rel
            .get("this-server-name")
            .and_then(Node::str)
            .ok_or("no this-server-name")?;
        let mode = rel.get("mode").and_then(Node::str).unwrap_or("");
        let hot_standby = match mode {
            "load-balancing" => false,
            "hot-standby" => true,
            "passive-backup" => {
                return Err(
                    "passive-backup has no failover partner: tandem has no backup servers".into(),
                );
            }
            _ => return Err(format!("mode {mode:?} is not one of Kea's")),
        };
        let peers = rel.get("peers").map_or(&[][..], Node::list);
        let peer = |name: &str| {
            peers
                .iter()
                .find(|p| p.get("name").and_then(Node::str) == Some(name))
        };
        let me = peer(this).ok_or_else(|| format!("{this:?} is none of the peers"))?;
        let role = me.get("role").and_then(Node::str).unwrap_or("");
        if role == "backup" {
            return Err("this server is a backup server: tandem has none".into());
        }
        let partner = peers
            .iter()
            .find(|p| {
                p.get("name").and_then(Node::str) != Some(this)
                    && p.get("role").and_then(Node::str) != Some("backup")
            })
            .ok_or("no partner among the peers")?;
        let address = peer_address(me)?;
        let peer_address = peer_address(partner)?;
        let primary = role == "primary";
        let max_response_delay = rel
            .get("max-response-delay")
            .and_then(Node::u32)
            .map(|ms| ms.div_ceil(1000).max(1));

        let heartbeat = format!(
            "tandem sends a CONTACT every third of the partner's max_response_delay ({}s)",
            max_response_delay.unwrap_or(60)
        );
        for m in rel.members() {
            match m.key.as_str() {
                "this-server-name" => {
                    self.key(
                        m,
                        Translated,
                        format!("this server: role {role}, address {address}"),
                    );
                }
                "mode" => self.key(
                    m,
                    Translated,
                    if hot_standby {
                        "mode = \"hot-standby\""
                    } else {
                        "mode = \"load-balance\": clients are split by the RFC 3074 hash, half each"
                    },
                ),
                "peers" => {
                    for p in m.value.list() {
                        self.peer(p, me, partner);
                    }
                }
                "max-response-delay" => self.key(
                    m,
                    Approximated,
                    format!(
                        "max_response_delay = {}s: tandem declares the partner unreachable when it \
                         has heard nothing for that long",
                        max_response_delay.unwrap_or(60)
                    ),
                ),
                "heartbeat-delay" => self.key(m, Approximated, heartbeat.clone()),
                _ => self.other(m),
            }
        }
        Ok(DraftFailover {
            name: HA_NAME.into(),
            primary,
            hot_standby,
            address,
            peer_address,
            port: None,
            peer_port: None,
            mclt: primary.then_some(HA_MCLT),
            split: None,
            reserve_percent: None,
            load_balance_max_seconds: None,
            max_response_delay,
            max_unacked_updates: None,
            auto_partner_down: None,
        })
    }

    fn peer(&mut self, p: &Node, me: &Node, partner: &Node) {
        let name = p.get("name").and_then(Node::str).unwrap_or("");
        let role = p.get("role").and_then(Node::str).unwrap_or("");
        let statement = format!(
            "peer {name:?} ({role}) {}",
            p.get("url").and_then(Node::str).unwrap_or("")
        );
        let line = p.line_of("name");
        if std::ptr::eq(p, me) {
            self.add(
                line,
                Approximated,
                statement,
                "address: tandem's failover link uses port 647 (port), not Kea's HTTP port",
            );
        } else if std::ptr::eq(p, partner) {
            self.add(
                line,
                Approximated,
                statement,
                "peer_address: tandem's failover link uses port 647 (peer_port), not Kea's \
                 HTTP port",
            );
        } else {
            self.add(
                line,
                Unsupported,
                statement,
                "a relationship has two servers: tandem has no backup servers",
            );
        }
        for m in p.members() {
            match m.key.as_str() {
                "name" | "url" | "role" => {}
                _ => self.other(m),
            }
        }
    }

    fn shared_network(&mut self, network: &Node, global: &Scope) {
        let name = network.get("name").and_then(Node::str).unwrap_or("");
        self.add(
            network.line_of("name"),
            Approximated,
            format!("shared-network {name:?}"),
            "tandem has no shared networks: its subnets are imported one by one, and a client gets \
             addresses only from the subnet its giaddr (or link selection) names",
        );
        let mut scope = global.clone();
        let mut subnets = &[][..];
        let mut relay = None;
        for m in network.members() {
            if self.scope_key(m, &mut scope, Level::Network) {
                continue;
            }
            match m.key.as_str() {
                "name" => {}
                "subnet4" => subnets = m.value.list(),
                "relay" => relay = Some(m),
                _ => self.other(m),
            }
        }
        let first = self.draft.subnets.len();
        for s in subnets {
            self.subnet(s, &scope, Some(name));
        }
        if let Some(m) = relay {
            let prefixes: Vec<Ipv4Prefix> = self.draft.subnets[first..]
                .iter()
                .map(|s| s.prefix)
                .collect();
            self.relay(m, &prefixes);
        }
    }

    fn subnet(&mut self, entry: &Node, inherited: &Scope, network: Option<&str>) {
        let text = entry.get("subnet").and_then(Node::str).unwrap_or("");
        let line = entry.line_of("subnet");
        let prefix = match config::parse_prefix(text) {
            Ok(p) => p,
            Err(e) => {
                let note = format!("left out whole: {e}");
                self.add(line, Unsupported, format!("subnet4 {text:?}"), note);
                return;
            }
        };
        let id = match entry.get("id").and_then(Node::u32) {
            Some(id) => id,
            None => {
                self.next_id += 1;
                self.next_id - 1
            }
        };
        self.ids.insert(id, prefix);
        let file = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |f| f.to_string_lossy().into(),
        );
        let mut origin = format!("{file} line {line}: subnet4 {text} (id {id}");
        if let Some(n) = network {
            origin.push_str(&format!(", shared network {n:?}"));
        }
        origin.push(')');
        let mut sub = DraftSubnet::new(prefix, "");
        let mut scope = inherited.clone();
        for m in entry.members() {
            if self.scope_key(m, &mut scope, Level::Subnet) {
                continue;
            }
            match m.key.as_str() {
                "subnet" => self.key(m, Translated, "[[subnet]] prefix"),
                "id" => self.key(
                    m,
                    Translated,
                    "places the lease file's leases (tandem names subnets by prefix)",
                ),
                "pools" => {
                    for p in m.value.list() {
                        self.pool(p, &mut sub);
                    }
                }
                "reservations" => {
                    for r in m.value.list() {
                        if let Some(res) = self.reservation(r, prefix, "") {
                            self.reserve(&mut sub, res, r.line);
                        }
                    }
                }
                "relay" => self.relay(m, &[prefix]),
                "comment" => {
                    let c: String = m
                        .value
                        .str()
                        .unwrap_or("")
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect();
                    origin.push_str(&format!(": {c}"));
                    self.key(m, Translated, "written above the [[subnet]]");
                }
                _ => self.other(m),
            }
        }
        sub.origin = origin;
        scope.apply(&mut sub);
        self.timers(&mut sub, line);
        self.draft.subnets.push(sub);
    }

    /// Drops T1 and T2 that tandem would refuse (Kea leaves such timers out of its replies).
    fn timers(&mut self, sub: &mut DraftSubnet, line: u32) {
        let statement = format!("subnet {}", sub.prefix);
        if sub.lease_time == Some(0) {
            sub.lease_time = None;
            let note = "valid-lifetime 0: tandem's default lease_time (1h) instead";
            self.add(line, Approximated, statement.clone(), note);
        }
        let lease = sub.lease_time.unwrap_or(3600);
        let t1 = sub.renewal_time.unwrap_or(lease / 2);
        let t2 = sub
            .rebinding_time
            .unwrap_or_else(|| u32::try_from(u64::from(lease) * 7 / 8).unwrap_or(u32::MAX));
        let t1_ok = sub
            .renewal_time
            .is_none_or(|v| v > 0 && v < lease && v < t2);
        let t2_ok = sub.rebinding_time.is_none_or(|v| v > t1 && v < lease);
        if !(t1_ok && t2_ok) {
            let note = "renew-timer / rebind-timer not below valid-lifetime and each other: \
                        tandem's T1 and T2 instead (1/2 and 7/8 of lease_time)";
            self.add(line, Approximated, statement, note);
            sub.renewal_time = None;
            sub.rebinding_time = None;
        }
    }

    fn pool(&mut self, p: &Node, sub: &mut DraftSubnet) {
        let text = p.get("pool").and_then(Node::str).unwrap_or("");
        let line = p.line_of("pool");
        let statement = format!("pool {text:?}");
        for m in p.members() {
            match m.key.as_str() {
                "pool" => {}
                "option-data" => self.key(
                    m,
                    Unsupported,
                    "tandem's options are per subnet, not per pool",
                ),
                _ => self.other(m),
            }
        }
        let mut range = match config::parse_range(text) {
            Ok(r) if sub.prefix.range().covers(r) => r,
            Ok(_) => {
                self.add(
                    line,
                    Unsupported,
                    statement,
                    format!("outside the subnet {}", sub.prefix),
                );
                return;
            }
            Err(e) => {
                self.add(line, Unsupported, statement, e.to_string());
                return;
            }
        };
        let (network, broadcast) = (sub.prefix.first(), sub.prefix.last());
        if sub.prefix.len <= 30 && (range.first == network || range.last == broadcast) {
            range.first = range.first.max(Ipv4Addr::from(u32::from(network) + 1));
            range.last = range.last.min(Ipv4Addr::from(u32::from(broadcast) - 1));
            if range.first > range.last {
                self.add(
                    line,
                    Unsupported,
                    statement,
                    "only the network or broadcast address, which tandem never gives",
                );
                return;
            }
            let note =
                format!("pools {range}: tandem never gives the network or broadcast address");
            self.add(line, Approximated, statement, note);
        } else {
            self.add(line, Translated, statement, format!("pools {range}"));
        }
        sub.pools.push(range);
    }

    /// A reservation entry, reported; `None` if tandem cannot have it.
    fn reservation(
        &mut self,
        r: &Node,
        prefix: Ipv4Prefix,
        placed: &str,
    ) -> Option<DraftReservation> {
        const KEYS: [&str; 5] = ["hw-address", "client-id", "circuit-id", "duid", "flex-id"];
        let id = r.members().iter().find(|m| KEYS.contains(&m.key.as_str()));
        let line = id.map_or(r.line, |m| m.line);
        let address = r.get("ip-address").and_then(Node::str);
        let hostname = r.get("hostname").and_then(Node::str).map(str::to_owned);
        let statement = format!(
            "reservation {} {}",
            id.map_or_else(String::new, Member::statement),
            address.unwrap_or("")
        );
        for m in r.members() {
            match m.key.as_str() {
                k if KEYS.contains(&k) => {}
                "ip-address" | "hostname" => {}
                "option-data" => self.key(
                    m,
                    Unsupported,
                    "tandem's options are per subnet, not per client",
                ),
                "client-classes" => self.key(m, Unsupported, "tandem has no client classes"),
                _ => self.other(m),
            }
        }
        let value = id.and_then(|m| m.value.str()).and_then(identifier);
        let key = match (id.map(|m| m.key.as_str()), value) {
            (Some("hw-address"), Some(v)) => <[u8; 6]>::try_from(v.as_slice())
                .ok()
                .map(ReservationKey::Mac),
            (Some("client-id"), Some(v)) => Some(ReservationKey::ClientId(v)),
            (Some("circuit-id"), Some(v)) => Some(ReservationKey::CircuitId(v)),
            (Some("duid" | "flex-id"), _) => {
                self.add(
                    line,
                    Unsupported,
                    statement,
                    "tandem reserves by mac, client_id, circuit_id or remote_id only",
                );
                return None;
            }
            _ => None,
        };
        let Some(key) = key else {
            self.add(
                line,
                Unsupported,
                statement,
                "no client identifier tandem can read",
            );
            return None;
        };
        let Some(address) = address else {
            let note = "no ip-address: tandem's reservations are addresses (a hostname or options \
                        alone are not carried)";
            self.add(line, Unsupported, statement, note);
            return None;
        };
        let address = match address.parse::<Ipv4Addr>() {
            Ok(a) if prefix.contains(a) => a,
            _ => {
                self.add(
                    line,
                    Unsupported,
                    statement,
                    format!("not an address of the subnet {prefix}"),
                );
                return None;
            }
        };
        let (outcome, note) = match placed {
            "" => (Translated, "[[subnet.reservation]]".to_owned()),
            p => (
                Approximated,
                format!(
                    "[[subnet.reservation]] of {p}, the subnet holding the address (tandem's \
                     reservations belong to a subnet)"
                ),
            ),
        };
        self.add(line, outcome, statement, note);
        Some(DraftReservation {
            key,
            address,
            hostname,
        })
    }

    /// Adds `r` to `sub` unless its key or address is already reserved there.
    fn reserve(&mut self, sub: &mut DraftSubnet, r: DraftReservation, line: u32) {
        if sub
            .reservations
            .iter()
            .any(|x| x.key == r.key || x.address == r.address)
        {
            let statement = format!("reservation {}", r.address);
            self.add(
                line,
                Unsupported,
                statement,
                "the client or the address is already reserved in this subnet",
            );
        } else {
            sub.reservations.push(r);
        }
    }

    /// A global reservation: placed in the subnet holding its address.
    fn global_reservation(&mut self, r: &Node) {
        let address = r
            .get("ip-address")
            .and_then(Node::str)
            .and_then(|a| a.parse::<Ipv4Addr>().ok());
        let i = address.and_then(|a| self.draft.subnets.iter().position(|s| s.prefix.contains(a)));
        let Some(i) = i else {
            let statement = format!("reservation {}", r.brief());
            self.add(
                r.line,
                Unsupported,
                statement,
                "a global reservation outside every subnet: tandem's reservations belong to a \
                 subnet",
            );
            return;
        };
        let prefix = self.draft.subnets[i].prefix;
        if let Some(res) = self.reservation(r, prefix, &prefix.to_string()) {
            let mut sub =
                std::mem::replace(&mut self.draft.subnets[i], DraftSubnet::new(prefix, ""));
            self.reserve(&mut sub, res, r.line);
            self.draft.subnets[i] = sub;
        }
    }

    /// `relay`: the relay addresses that select these subnets.
    fn relay(&mut self, m: &Member, prefixes: &[Ipv4Prefix]) {
        let addrs: Vec<&Node> = match m.value.get("ip-addresses") {
            Some(list) => list.list().iter().collect(),
            None => m.value.get("ip-address").into_iter().collect(),
        };
        for a in addrs {
            let text = a.str().unwrap_or("");
            let statement = format!("relay ip-address {text:?}");
            let inside = text
                .parse::<Ipv4Addr>()
                .is_ok_and(|ip| prefixes.iter().any(|p| p.contains(ip)));
            if inside {
                self.add(
                    a.line,
                    Translated,
                    statement,
                    "its giaddr lies in the subnet, which tandem selects by giaddr too",
                );
            } else {
                let note = "tandem selects a relayed client's subnet by giaddr (or option 82 link \
                            selection from server.trusted_relays), not by relay: have this relay \
                            use a giaddr inside the subnet";
                self.add(a.line, Unsupported, statement, note);
            }
        }
    }

    /// A key no part of the reader above takes.
    fn other(&mut self, m: &Member) {
        let on = m.value.bool();
        let (outcome, note) = match m.key.as_str() {
            "comment" | "user-context" => (Unsupported, "an annotation: not carried"),
            "client-classes" => (
                Unsupported,
                "tandem has no client classes: every client of a subnet gets its addresses and \
                 options (a class that picks addresses needs a subnet of its own)",
            ),
            "client-class" | "require-client-classes" => (
                Unsupported,
                "tandem has no client classes: every client may use this",
            ),
            "option-def" => (
                Unsupported,
                "tandem sends no options of its own definition: only 3, 6 and 15 of the \
                 configuration",
            ),
            "control-socket" => (
                Unsupported,
                "tandemctl talks to tandemd over DATA_DIR/tandemd.sock; server.admin adds a TCP \
                 listener",
            ),
            "loggers" => (
                Unsupported,
                "tandemd logs to standard error (the journal, under systemd): set server.log_level \
                 and server.log_format",
            ),
            "multi-threading" => (
                Unsupported,
                "tandem runs server.workers workers (by default one per receive queue); its \
                 failover link needs no threads",
            ),
            "dhcp-ddns" => (Unsupported, "tandem does not update DNS"),
            k if k.starts_with("ddns-") => (Unsupported, "tandem does not update DNS"),
            "hostname-char-set" | "hostname-char-replacement" => {
                (Unsupported, "tandem does not rewrite client hostnames")
            }
            "expired-leases-processing" => (
                Unsupported,
                "tandem reclaims the leases that ran out by itself: nothing to tune",
            ),
            "hosts-database" | "hosts-databases" => (
                Unsupported,
                "reservations in a database are not read: put them in the configuration \
                 (reservation-get-all) and import again",
            ),
            "host-reservation-identifiers" => (
                Approximated,
                "tandem matches a reservation by client id, then MAC, then circuit-id, then \
                 remote-id; the order is not configurable",
            ),
            "reservation-mode"
            | "reservations-global"
            | "reservations-in-subnet"
            | "reservations-out-of-pool"
            | "early-global-reservations-lookup"
            | "ip-reservations-unique" => (
                Approximated,
                "tandem looks reservations up in the client's subnet, in and out of its pools \
                 (global ones are placed in the subnet holding their address)",
            ),
            "match-client-id" if on == Some(false) => (
                Unsupported,
                "tandem identifies a client by option 61 whenever it sends one",
            ),
            "match-client-id" => (
                Translated,
                "tandem identifies a client by option 61 when it sends one, else by its MAC",
            ),
            "echo-client-id" if on == Some(false) => {
                (Unsupported, "tandem always echoes option 61 (RFC 6842)")
            }
            "echo-client-id" => (Translated, "tandem echoes option 61 (RFC 6842)"),
            "authoritative" => (
                Approximated,
                "tandem NAKs a request for an address outside the client's subnet or bound to \
                 another client, and is silent to a client it knows nothing of, whatever this says",
            ),
            "next-server" | "server-hostname" | "boot-file-name" => (
                Unsupported,
                "tandem fills no boot fields (siaddr, sname, file): network boot needs another \
                 server",
            ),
            "interface" => (
                Unsupported,
                "tandem selects the subnet of a client that is not relayed by the receiving \
                 interface's address, which must lie in the prefix (or add `interface` to the \
                 [[subnet]])",
            ),
            "4o6-interface" | "4o6-interface-id" | "4o6-subnet" | "dhcp4o6-port" => {
                (Unsupported, "tandem does not serve DHCPv4 over DHCPv6")
            }
            "sanity-checks" => (
                Unsupported,
                "an import leaves out the leases outside every subnet (and lists them)",
            ),
            "server-tag" | "config-control" => (
                Unsupported,
                "tandem reads its configuration from one file: no configuration backend",
            ),
            "statistic-default-sample-count" | "statistic-default-sample-age" => (
                Unsupported,
                "tandem's counters are Prometheus metrics (server.http)",
            ),
            "cache-threshold" | "cache-max-age" => (
                Unsupported,
                "tandem grants a full lease_time on every renewal",
            ),
            "store-extended-info" => (
                Unsupported,
                "tandem keeps no relay information with a lease",
            ),
            // The HA hook's.
            "max-ack-delay" | "max-unacked-clients" => (
                Unsupported,
                "tandem judges the partner by max_response_delay alone, not by unanswered clients",
            ),
            "send-lease-updates"
            | "sync-leases"
            | "sync-timeout"
            | "sync-page-limit"
            | "delayed-updates-limit"
            | "wait-backup-ack"
            | "max-rejected-lease-updates" => (
                Unsupported,
                "tandem partners always send binding updates and resynchronise over the failover \
                 protocol",
            ),
            "trust-anchor"
            | "cert-file"
            | "key-file"
            | "require-client-certs"
            | "restrict-commands"
            | "basic-auth-user"
            | "basic-auth-password" => (
                Unsupported,
                "tandem partners talk over their own link, every message signed with the shared \
                 secret (shared_secret_file): no HTTP or TLS to set",
            ),
            "state-machine" => (
                Unsupported,
                "tandem's states are the failover protocol's; none is configurable",
            ),
            "auto-failover" => (
                Unsupported,
                "tandem serves the partner's clients after `tandemctl partner-down`, or by itself \
                 after auto_partner_down (a safe period) if set",
            ),
            _ => (
                Unsupported,
                "not a Kea 2.2 setting this import knows: nothing was made of it",
            ),
        };
        self.key(m, outcome, note);
    }
}

/// The code of the options tandem sends (and the server identifier), by Kea's name.
fn option_code(name: &str) -> Option<u32> {
    match name {
        "routers" => Some(3),
        "domain-name-servers" => Some(6),
        "domain-name" => Some(15),
        "dhcp-server-identifier" => Some(54),
        _ => None,
    }
}

/// An option's addresses: `"10.0.0.1, 10.0.0.2"`, or hex (`csv-format` false) four bytes each.
fn option_addrs(data: &str, csv: bool) -> Option<Vec<Ipv4Addr>> {
    let addrs: Vec<Ipv4Addr> = if csv {
        data.split(',')
            .map(|a| a.trim().parse().ok())
            .collect::<Option<_>>()?
    } else {
        let bytes = config::parse_hex(&data.replace(' ', ""))?;
        if bytes.len() % 4 != 0 {
            return None;
        }
        bytes
            .chunks_exact(4)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
            .collect()
    };
    (!addrs.is_empty()).then_some(addrs)
}

/// An option's text, as written or in hex (`csv-format` false).
fn option_text(data: &str, csv: bool) -> Option<String> {
    let text = if csv {
        data.to_owned()
    } else {
        String::from_utf8(config::parse_hex(&data.replace(' ', ""))?).ok()?
    };
    (!text.is_empty()).then_some(text)
}

/// A Kea host identifier: hex (`01:02:0a`, `01020a`) or text in single quotes (`'port-1'`).
fn identifier(text: &str) -> Option<Vec<u8>> {
    match text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        Some(t) if !t.is_empty() => Some(t.as_bytes().to_vec()),
        Some(_) => None,
        None => config::parse_hex(text),
    }
}

/// The IPv4 address in a peer's `url` (`http://10.0.0.1:8000/`).
fn peer_address(p: &Node) -> Result<Ipv4Addr, String> {
    let url = p.get("url").and_then(Node::str).unwrap_or("");
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    host.parse().map_err(|_| {
        format!(
            "peer url {url:?} names no IPv4 address, which tandem needs: write [[failover]] by hand"
        )
    })
}

// ---------------------------------------------------------------------------------------------
// The lease file

/// The files kea-dhcp4 reads its leases from, in its order: what its lease file cleanup left
/// (`NAME.completed`, else `NAME.2` then `NAME.1`), then `NAME`.
fn lease_files(path: &Path) -> Vec<PathBuf> {
    let with = |suffix: &str| {
        let mut s = path.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    let completed = with(".completed");
    let mut files = if completed.is_file() {
        vec![completed]
    } else {
        [with(".2"), with(".1")]
            .into_iter()
            .filter(|p| p.is_file())
            .collect()
    };
    files.push(path.to_owned());
    files
}

/// The columns of a lease file, found by its header.
struct Columns {
    count: usize,
    address: usize,
    hwaddr: Option<usize>,
    client_id: Option<usize>,
    valid_lifetime: usize,
    expire: usize,
    subnet_id: Option<usize>,
    state: Option<usize>,
    hostname: Option<usize>,
}

impl Columns {
    fn new(header: &str) -> Result<Self, String> {
        let names: Vec<&str> = header.split(',').map(str::trim).collect();
        let find = |name: &str| names.iter().position(|n| *n == name);
        if find("duid").is_some() {
            return Err("a DHCPv6 lease file (kea-leases6.csv): give kea-dhcp4's".into());
        }
        let need = |name: &str| {
            find(name).ok_or_else(|| {
                format!("not a Kea DHCPv4 lease file: the header has no `{name}` column")
            })
        };
        Ok(Columns {
            count: names.len(),
            address: need("address")?,
            hwaddr: find("hwaddr"),
            client_id: find("client_id"),
            valid_lifetime: need("valid_lifetime")?,
            expire: need("expire")?,
            subnet_id: find("subnet_id"),
            state: find("state"),
            hostname: find("hostname"),
        })
    }
}

/// A row of a lease file, read: the address's lease (FREE: deleted), and how it was
/// approximated, if it was.
struct Row {
    addr: Ipv4Addr,
    lease: lease_mmap::Lease,
    approximated: Option<String>,
}

/// Reads a row; an error is a malformed row.
fn lease_row(row: &[&str], cols: &Columns, now: UnixTime) -> Result<Row, String> {
    let field = |i: Option<usize>| i.and_then(|i| row.get(i)).map_or("", |f| f.trim());
    let number = |i: usize, name: &str| {
        field(Some(i))
            .parse::<u64>()
            .map_err(|_| format!("{name} {:?} is not a number", field(Some(i))))
    };
    let addr: Ipv4Addr = field(Some(cols.address)).parse().map_err(|_| {
        format!(
            "address {:?} is not an IPv4 address",
            field(Some(cols.address))
        )
    })?;
    let valid = u32::try_from(number(cols.valid_lifetime, "valid_lifetime")?)
        .map_err(|_| "valid_lifetime is beyond 32 bits".to_owned())?;
    let expire = number(cols.expire, "expire")?;
    let hex = |i: Option<usize>, name: &str| match field(i) {
        "" => Ok(Vec::new()),
        f => config::parse_hex(f).ok_or_else(|| format!("{name} {f:?} is not hex")),
    };
    let hw = hex(cols.hwaddr, "hwaddr")?;
    let id = hex(cols.client_id, "client_id")?;
    let state = match field(cols.state) {
        "" => 0,
        s => s
            .parse::<u32>()
            .map_err(|_| format!("state {s:?} is not a number"))?,
    };
    if valid == 0 {
        return Ok(Row {
            addr,
            lease: lease_with(BindingState::Free),
            approximated: None,
        });
    }
    let time = |t: u64| UnixTime(u32::try_from(t).unwrap_or(u32::MAX));
    // An infinite lease (valid_lifetime 0xffffffff) never ends.
    let ends = if valid == u32::MAX {
        UnixTime(u32::MAX)
    } else {
        time(expire)
    };
    let cltt = time(expire.saturating_sub(u64::from(valid)));
    let state_code = state;
    let state = match state {
        0 if ends > now => BindingState::Active,
        0 | 2 => BindingState::Expired,
        1 => BindingState::Abandoned,
        // A later Kea's state: the address was held once, so it must not be free; EXPIRED
        // and unacknowledged, it goes to a client again only once the partner agrees.
        _ => BindingState::Expired,
    };
    let approximated = (state_code > 2).then(|| {
        format!(
            "state {state_code} is none of Kea 2.2's (0 default, 1 declined, 2 \
             expired-reclaimed): imported as expired, so the address is not free"
        )
    });
    let mut lease = lease_with(state);
    lease.ends = ends;
    // Kea HA sent every lease to the partner, which may have known it until `ends` (and the
    // client holds it that long): as if we had sent the partner that expiry. `atsfp` stays 0,
    // so the binding is unacknowledged: the first session with the partner sends it, and an
    // ended binding's address is not given again before the partner has acknowledged the end
    // (or, in partner-down, before `ends` + MCLT).
    lease.tstp = ends;
    lease.cltt = cltt;
    lease.stos = cltt;
    lease.htype = 1;
    lease.hlen = u8::try_from(hw.len())
        .ok()
        .filter(|n| *n <= 16)
        .ok_or("hwaddr is longer than 16 bytes")?;
    lease.chaddr[..hw.len()].copy_from_slice(&hw);
    lease.client_id = ClientId::new(&id).ok_or("client_id is longer than 255 bytes")?;
    // kea-dhcp4 writes a comma in a host name as `&#x2c` (CSVLeaseFile4).
    let name = field(cols.hostname).replace("&#x2c", ",");
    lease.hostname = lease_mmap::Hostname::keep(name.as_bytes(), &lease.relay);
    Ok(Row {
        addr,
        lease,
        approximated,
    })
}

/// Reads the lease file at `path` (and the older files kea-dhcp4 reads first), one lease per
/// address, the deleted ones left out; `ids` are the configuration's subnet ids.
fn read_leases(
    path: &Path,
    ids: &HashMap<u32, Ipv4Prefix>,
    now: UnixTime,
    report: &mut Report,
) -> Result<Vec<ImportedLease>, ImportError> {
    let files = lease_files(path);
    let mut all = Vec::new();
    // Each file's header line and row count.
    let mut rows: HashMap<PathBuf, (u32, usize)> = HashMap::new();
    for file in &files {
        let text = read_text(file)?;
        let syntax = |line: usize, reason: String| ImportError::Syntax {
            path: file.clone(),
            line: u32::try_from(line + 1).unwrap_or(u32::MAX),
            reason,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((at, header)) = lines.next() else {
            rows.insert(file.clone(), (1, 0));
            continue;
        };
        let cols = Columns::new(header).map_err(|r| syntax(at, r))?;
        let mut unknown: HashMap<u32, (u32, usize)> = HashMap::new();
        let mut count = 0;
        for (n, line) in lines {
            let line_no = u32::try_from(n + 1).unwrap_or(u32::MAX);
            let row: Vec<&str> = line.split(',').collect();
            if row.len() != cols.count {
                return Err(syntax(
                    n,
                    format!("{} fields where the header has {}", row.len(), cols.count),
                ));
            }
            count += 1;
            let Row {
                addr,
                lease,
                approximated,
            } = lease_row(&row, &cols, now).map_err(|r| syntax(n, r))?;
            if let Some(why) = approximated {
                report.add(file, line_no, Approximated, line, why);
            }
            let subnet = cols
                .subnet_id
                .and_then(|i| row.get(i))
                .and_then(|s| s.trim().parse::<u32>().ok());
            if let Some(id) = subnet.filter(|id| !ids.contains_key(id)) {
                unknown.entry(id).or_insert((line_no, 0)).1 += 1;
            }
            all.push(ImportedLease {
                file: file.clone(),
                line: line_no,
                addr,
                lease,
            });
        }
        rows.insert(
            file.clone(),
            (u32::try_from(at + 1).unwrap_or(u32::MAX), count),
        );
        let mut unknown: Vec<_> = unknown.into_iter().collect();
        unknown.sort_unstable();
        for (id, (line, n)) in unknown {
            let note = format!(
                "{n} rows name subnet_id {id}, which no subnet of the configuration has: their \
                 leases are stored by address, if a subnet holds it"
            );
            report.add(file, line, Approximated, format!("subnet_id {id}"), note);
        }
    }
    let leases = last_per_address(all);
    for file in &files {
        let mut by_state = [0usize; 8];
        for l in leases.iter().filter(|l| &l.file == file) {
            by_state[l.lease.state as usize] += 1;
        }
        let deleted = by_state[BindingState::Free as usize];
        let kept: Vec<String> = BindingState::ALL
            .iter()
            .filter(|s| **s != BindingState::Free && by_state[**s as usize] > 0)
            .map(|s| format!("{} {}", by_state[*s as usize], s.name()))
            .collect();
        let mut note = format!(
            "{} leases ({}); {deleted} addresses deleted (valid_lifetime 0) left free; DNS update \
             flags are not kept",
            by_state.iter().sum::<usize>() - deleted,
            if kept.is_empty() {
                "none".to_owned()
            } else {
                kept.join(", ")
            },
        );
        if file != path {
            note.push_str(
                "; read before the lease file given, as kea-dhcp4 does (its lease file cleanup \
                 keeps older leases here)",
            );
        }
        let name = file.file_name().map_or_else(
            || file.display().to_string(),
            |f| f.to_string_lossy().into(),
        );
        let (line, count) = rows.get(file).copied().unwrap_or((1, 0));
        report.add(
            file,
            line,
            Approximated,
            format!("{name}: {count} rows"),
            note,
        );
    }
    Ok(leases
        .into_iter()
        .filter(|l| l.lease.state != BindingState::Free)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(i: &Imported) -> Vec<(u32, Outcome, String)> {
        i.report
            .findings
            .iter()
            .map(|f| (f.line, f.outcome, f.statement.clone()))
            .collect()
    }

    fn read_str(conf: &str, leases: Option<&str>, now: u32) -> Result<Imported, ImportError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = dir.path().join("kea-dhcp4.conf");
        std::fs::write(&c, conf).expect("write");
        let l = dir.path().join("kea-leases4.csv");
        if let Some(text) = leases {
            std::fs::write(&l, text).expect("write");
        }
        read_at(&c, leases.map(|_| l.as_path()), UnixTime(now))
    }

    fn find<'a>(i: &'a Imported, statement: &str) -> &'a super::super::Finding {
        i.report
            .findings
            .iter()
            .find(|f| f.statement.contains(statement))
            .unwrap_or_else(|| panic!("no finding {statement:?} in\n{}", i.report))
    }

    #[test]
    fn comments_trailing_commas_and_lines() {
        let src = r##"# a comment
{ // another
"Dhcp4": { /* block
 comment */ "valid-lifetime": 600,
 "a": [1, 2, ], "s": "x\"#//\u00e9",
},
}
"##;
        let root = parse(src).expect("parses");
        let d = root.get("Dhcp4").expect("Dhcp4");
        assert_eq!(root.line_of("Dhcp4"), 3);
        assert_eq!(d.line_of("valid-lifetime"), 4);
        assert_eq!(d.get("valid-lifetime").and_then(Node::u32), Some(600));
        assert_eq!(d.get("a").map(|a| a.list().len()), Some(2));
        assert_eq!(d.line_of("s"), 5);
        assert_eq!(d.get("s").and_then(Node::str), Some("x\"#//é"));
    }

    #[test]
    fn syntax_errors_name_their_line() {
        for (src, line, reason) in [
            ("{\n\"Dhcp4\": {\n\"a\": 1\n\"b\": 2 } }", 4, "expected `,`"),
            (
                "{\n\"Dhcp4\": { \"a\": 1,\n\"a\": 2 } }",
                3,
                "duplicate key \"a\" (first on line 2)",
            ),
            ("{\n/* open\n\n", 2, "unterminated /* comment"),
            ("{\n\"Dhcp4\": {\n\"a\": tru } }", 3, "unexpected 't'"),
            ("{ \"Dhcp4\": {} } x", 1, "text after"),
            ("{\n\"a\": \"open\n\"}", 2, "control character"),
            ("[1]", 1, "not a JSON object"),
            ("{\"Dhcp6\": {}}", 1, "no `Dhcp4`"),
            ("{\n<?include \"x.json\"?>\n}", 2, "include"),
            ("{\"a\": -}", 1, "invalid number"),
            ("", 1, "end of file"),
        ] {
            match read_str(src, None, 0) {
                Err(ImportError::Syntax {
                    line: l, reason: r, ..
                }) => {
                    assert_eq!(l, line, "{src:?}: {r}");
                    assert!(r.contains(reason), "{src:?}: {r}");
                }
                other => panic!("{src:?}: {other:?}"),
            }
        }
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).is_err());
    }

    const CONF: &str = r#"{
"Dhcp4": {
    "valid-lifetime": 4000,
    "option-data": [ { "name": "domain-name-servers", "data": "192.0.2.53, 192.0.2.54" },
                     { "code": 15, "data": "example.org" } ],
    "subnet4": [ {
        "id": 7,
        "subnet": "192.0.2.0/24",
        "pools": [ { "pool": "192.0.2.10 - 192.0.2.20" }, { "pool": "192.0.2.128/25" } ],
        "option-data": [
            { "code": 3, "data": "192.0.2.1" },
            { "name": "domain-name-servers", "data": "192.0.2.1" },
            { "name": "ntp-servers", "data": "192.0.2.2" },
            { "code": 150, "data": "192.0.2.3" }
        ],
        "reservations": [
            { "hw-address": "1a:1b:1c:1d:1e:1f", "ip-address": "192.0.2.201", "hostname": "a" },
            { "client-id": "01:11:22:33:44:55:66", "ip-address": "192.0.2.202" },
            { "circuit-id": "'port-1'", "ip-address": "192.0.2.203" },
            { "hw-address": "1a:1b:1c:1d:1e:20", "hostname": "no-address" }
        ],
        "frobnicate": true
    } ],
    "client-classes": [ { "name": "x" } ]
}
}"#;

    #[test]
    fn subnets_pools_options() {
        let i = read_str(CONF, None, 0).expect("reads");
        let [s] = i.draft.subnets.as_slice() else {
            panic!("{:?}", i.draft.subnets)
        };
        assert_eq!(s.prefix.to_string(), "192.0.2.0/24");
        let pools: Vec<String> = s.pools.iter().map(ToString::to_string).collect();
        // The /25 reaches the broadcast address, which tandem never gives.
        assert_eq!(pools, ["192.0.2.10-192.0.2.20", "192.0.2.128-192.0.2.254"]);
        assert_eq!(s.router, [Ipv4Addr::new(192, 0, 2, 1)]);
        assert_eq!(
            s.dns,
            [Ipv4Addr::new(192, 0, 2, 1)],
            "the subnet's option wins"
        );
        assert_eq!(s.domain_name.as_deref(), Some("example.org"), "inherited");
        assert_eq!(s.lease_time, Some(4000), "inherited");
        assert_eq!(s.reservations.len(), 3, "by MAC, client id and circuit id");
        assert_eq!(
            s.reservations[0].key,
            ReservationKey::Mac([0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f])
        );
        assert_eq!(s.reservations[0].hostname.as_deref(), Some("a"));
        assert_eq!(
            s.reservations[1].key,
            ReservationKey::ClientId(vec![1, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66])
        );

        let f = findings(&i);
        let at = |line: u32, outcome: Outcome, text: &str| {
            assert!(
                f.iter()
                    .any(|(l, o, s)| *l == line && *o == outcome && s.contains(text)),
                "no {outcome:?} {text:?} at line {line} in\n{}",
                i.report
            );
        };
        at(3, Translated, "valid-lifetime");
        at(4, Translated, "domain-name-servers");
        at(5, Translated, "option 15");
        at(9, Translated, "pool \"192.0.2.10 - 192.0.2.20\"");
        at(9, Approximated, "pool \"192.0.2.128/25\"");
        at(11, Translated, "option 3");
        at(13, Unsupported, "ntp-servers");
        at(14, Unsupported, "option 150");
        at(17, Translated, "hw-address");
        at(18, Translated, "client-id");
        at(19, Translated, "circuit-id");
        at(20, Unsupported, "1a:1b:1c:1d:1e:20");
        at(22, Unsupported, "frobnicate");
        at(24, Unsupported, "client-classes");
        let lines: Vec<u32> = f.iter().map(|x| x.0).collect();
        assert!(lines.is_sorted(), "{lines:?}");
    }

    #[test]
    fn option_data_forms() {
        assert_eq!(option_code("routers"), Some(3));
        assert_eq!(
            option_addrs("10.0.0.1,10.0.0.2", true).map(|v| v.len()),
            Some(2)
        );
        assert_eq!(
            option_addrs("0a000001 0a000002", false).map(|v| v.len()),
            Some(2)
        );
        assert_eq!(option_addrs("0a0000", false), None);
        assert_eq!(option_addrs("", true), None);
        assert_eq!(option_text("6578", false).as_deref(), Some("ex"));
        assert_eq!(identifier("'ab'"), Some(b"ab".to_vec()));
        assert_eq!(identifier("0a:0b"), Some(vec![10, 11]));
        assert_eq!(identifier("''"), None);
    }

    #[test]
    fn ha_hook_becomes_a_relationship() {
        let conf = r#"{ "Dhcp4": {
            "subnet4": [ { "subnet": "10.0.0.0/24",
                           "pools": [ { "pool": "10.0.0.10-10.0.0.99" } ] } ],
            "hooks-libraries": [ { "library": "/usr/lib/kea/hooks/libdhcp_ha.so", "parameters": {
                "high-availability": [ { "this-server-name": "b", "mode": "hot-standby",
                    "max-response-delay": 10500,
                    "peers": [ { "name": "a", "url": "http://10.0.0.2:8000/", "role": "primary" },
                               { "name": "b", "url": "http://10.0.0.3:8000/", "role": "standby" },
                               { "name": "c", "url": "http://10.0.0.4:8000/",
                                 "role": "backup" } ] } ] } } ]
        } }"#;
        let i = read_str(conf, None, 0).expect("reads");
        let [f] = i.draft.failover.as_slice() else {
            panic!("{:?}", i.draft.failover)
        };
        assert_eq!(
            (f.name.as_str(), f.primary, f.hot_standby),
            ("kea-ha", false, true)
        );
        assert_eq!(
            (f.address, f.peer_address),
            (Ipv4Addr::new(10, 0, 0, 3), Ipv4Addr::new(10, 0, 0, 2))
        );
        assert_eq!((f.max_response_delay, f.mclt), (Some(11), None));
        assert_eq!(i.draft.subnets[0].failover.as_deref(), Some("kea-ha"));
        assert_eq!(find(&i, "peer \"c\"").outcome, Unsupported);
        assert_eq!(find(&i, "libdhcp_ha.so").outcome, Approximated);

        let passive = conf.replace("hot-standby", "passive-backup");
        let i = read_str(&passive, None, 0).expect("reads");
        assert!(i.draft.failover.is_empty() && i.draft.subnets[0].failover.is_none());
        assert_eq!(find(&i, "libdhcp_ha.so").outcome, Unsupported);
    }

    #[test]
    fn interfaces() {
        let conf = r#"{ "Dhcp4": { "interfaces-config": {
            "interfaces": [ "eth0/10.0.0.1", "eth1", "*" ] } } }"#;
        let i = read_str(conf, None, 0).expect("reads");
        assert_eq!(i.draft.interfaces, ["eth0", "eth1"]);
        assert_eq!(find(&i, "eth0/").outcome, Approximated);
        assert_eq!(find(&i, "\"eth1\"").outcome, Translated);
        assert_eq!(find(&i, "\"*\"").outcome, Unsupported);
    }

    #[test]
    fn subnet_ids_as_kea_numbers_them_and_timers() {
        // Kea numbers the subnets without an id in the order it reads them: shared networks
        // first (its maps are sorted by key), then `subnet4`.
        let conf = r#"{ "Dhcp4": {
            "subnet4": [ { "subnet": "10.1.0.0/24", "valid-lifetime": 600, "renew-timer": 700 },
                         { "subnet": "10.2.0.0/24", "id": 7 }, { "subnet": "10.3.0.0/24" } ],
            "shared-networks": [ { "name": "n", "subnet4": [ { "subnet": "10.9.0.0/24" } ] } ]
        } }"#;
        let rows: String = [
            ("10.9.0.5", 1),
            ("10.1.0.5", 2),
            ("10.3.0.5", 3),
            ("10.2.0.5", 4),
        ]
        .iter()
        .map(|(a, id)| format!("{a},,01:02,600,2000,{id},0,0,,0,\n"))
        .collect();
        let i = read_str(conf, Some(&format!("{HEADER}{rows}")), 0).expect("reads");
        let unknown: Vec<&str> = i
            .report
            .findings
            .iter()
            .map(|f| f.statement.as_str())
            .collect();
        assert!(unknown.contains(&"subnet_id 4"), "{}", i.report);
        assert!(
            !unknown
                .iter()
                .any(|s| s.starts_with("subnet_id") && *s != "subnet_id 4")
        );
        let s = &i.draft.subnets[1];
        assert_eq!(
            (s.prefix.to_string(), s.lease_time, s.renewal_time),
            ("10.1.0.0/24".into(), Some(600), None)
        );
        assert_eq!(find(&i, "subnet 10.1.0.0/24").outcome, Approximated);
    }

    const HEADER: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,\
                          fqdn_rev,hostname,state,user_context\n";

    #[test]
    fn lease_states_last_row_wins_and_deletions() {
        // Unix times: T0 + hours.
        let t = |h: u32| 1_700_000_000 + h * 3600;
        let rows = [
            format!(
                "192.0.2.10,1a:1b:1c:1d:1e:1f,01:1a:1b:1c:1d:1e:1f,3600,{},7,0,0,a.example.,0,",
                t(2)
            ),
            format!(
                "192.0.2.11,1a:1b:1c:1d:1e:20,,3600,{},7,0,0,x&#x2cy,0,",
                t(1)
            ),
            format!("192.0.2.12,,,86400,{},7,0,0,,1,", t(24)),
            format!("192.0.2.13,1a:1b:1c:1d:1e:21,,3600,{},7,0,0,,2,", t(1)),
            format!("192.0.2.14,1a:1b:1c:1d:1e:22,,3600,{},7,0,0,,0,", t(2)),
            format!("192.0.2.14,1a:1b:1c:1d:1e:22,,0,{},7,0,0,,0,", t(2)),
            format!(
                "192.0.2.10,1a:1b:1c:1d:1e:1f,01:1a:1b:1c:1d:1e:1f,3600,{},7,0,0,a.example.,0,",
                t(3)
            ),
            format!("192.0.2.15,1a:1b:1c:1d:1e:23,,3600,{},7,0,0,,9,", t(2)),
            format!(
                "192.0.2.16,1a:1b:1c:1d:1e:24,,4294967295,{},99,0,0,,0,",
                u64::from(t(0)) + u64::from(u32::MAX)
            ),
        ];
        let csv = format!("{HEADER}{}\n", rows.join("\n"));
        let i = read_str(CONF, Some(&csv), t(1) + 1800).expect("reads");
        let l: HashMap<Ipv4Addr, &ImportedLease> = i.leases.iter().map(|l| (l.addr, l)).collect();
        let get = |last: u8| l.get(&Ipv4Addr::new(192, 0, 2, last)).map(|x| x.lease);
        let a = get(10).expect("10");
        assert_eq!(
            l[&Ipv4Addr::new(192, 0, 2, 10)].line,
            8,
            "the last row wins"
        );
        assert_eq!(a.state, BindingState::Active);
        assert_eq!((a.ends, a.tstp), (UnixTime(t(3)), UnixTime(t(3))));
        assert_eq!((a.cltt, a.stos), (UnixTime(t(2)), UnixTime(t(2))));
        assert_eq!((a.tsfp, a.atsfp), (UnixTime(0), UnixTime(0)));
        assert_eq!(
            (a.htype, a.hlen, &a.chaddr[..7]),
            (1, 6, &[0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0][..])
        );
        assert_eq!(
            a.client_id.as_bytes(),
            [1, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f]
        );
        assert_eq!(
            a.hostname.as_bytes(),
            b"a.example.",
            "the host name is kept"
        );
        let b = get(11).expect("11");
        assert_eq!(b.hostname.as_bytes(), b"x,y", "Kea's escaped comma");
        assert_eq!(
            (b.state, b.client_id.is_empty()),
            (BindingState::Expired, true),
            "ended by now"
        );
        let c = get(12).expect("12");
        assert_eq!(
            (c.state, c.hlen, c.ends),
            (BindingState::Abandoned, 0, UnixTime(t(24)))
        );
        assert_eq!(get(13).map(|x| x.state), Some(BindingState::Expired));
        assert_eq!(get(14), None, "deleted");
        assert_eq!(
            get(15).map(|x| x.state),
            Some(BindingState::Expired),
            "an unknown state is imported as expired: the address is not free"
        );
        let e = get(16).expect("unknown subnet id: kept");
        assert_eq!(
            (e.state, e.ends, e.cltt),
            (BindingState::Active, UnixTime(u32::MAX), UnixTime(t(0))),
            "infinite"
        );
        assert_eq!(find(&i, "192.0.2.15,").line, 9);
        assert_eq!(find(&i, "subnet_id 99").line, 10);
        let summary = find(&i, "kea-leases4.csv: 9 rows");
        assert!(
            summary
                .note
                .starts_with("6 leases (2 active, 3 expired, 1 abandoned); 1 addresses deleted"),
            "{}",
            summary.note
        );
    }

    #[test]
    fn lease_file_columns_errors_and_siblings() {
        // A newer Kea's extra column, in another place: found by the header.
        let newer = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,\
                     fqdn_rev,hostname,state,user_context,pool_id\n\
                     192.0.2.10,1a:1b:1c:1d:1e:1f,,3600,2000,7,0,0,,0,,0\n";
        let i = read_str(CONF, Some(newer), 0).expect("reads");
        assert_eq!(i.leases.len(), 1);
        for (rows, line, reason) in [
            ("192.0.2.10,zz,,3600,2000,7,0,0,,0,\n", 2, "hwaddr"),
            ("192.0.2.10,,,3600,soon,7,0,0,,0,\n", 2, "expire"),
            ("\n192.0.2.x,,,3600,2000,7,0,0,,0,\n", 3, "address"),
            (
                "192.0.2.10,,,3600,2000,7\n",
                2,
                "6 fields where the header has 11",
            ),
        ] {
            match read_str(CONF, Some(&format!("{HEADER}{rows}")), 0) {
                Err(ImportError::Syntax {
                    line: l, reason: r, ..
                }) => {
                    assert_eq!(l, line, "{rows:?}: {r}");
                    assert!(r.contains(reason), "{rows:?}: {r}");
                }
                other => panic!("{rows:?}: {other:?}"),
            }
        }
        assert!(matches!(
            read_str(CONF, Some("address,duid,valid_lifetime,expire\n"), 0),
            Err(ImportError::Syntax { line: 1, .. })
        ));

        // What Kea's lease file cleanup left beside the file is read first.
        let dir = tempfile::tempdir().expect("tempdir");
        let c = dir.path().join("kea-dhcp4.conf");
        std::fs::write(&c, CONF).expect("write");
        let l = dir.path().join("kea-leases4.csv");
        let older =
            "192.0.2.10,,01:02,3600,2000,7,0,0,,0,\n192.0.2.11,,01:03,3600,2000,7,0,0,,0,\n";
        std::fs::write(l.with_extension("csv.2"), format!("{HEADER}{older}")).expect("write");
        std::fs::write(&l, format!("{HEADER}192.0.2.11,,01:03,0,2000,7,0,0,,0,\n")).expect("write");
        let i = read_at(&c, Some(&l), UnixTime(0)).expect("reads");
        assert_eq!(
            i.leases
                .iter()
                .map(|l| l.addr.to_string())
                .collect::<Vec<_>>(),
            ["192.0.2.10"]
        );
        assert!(
            find(&i, "kea-leases4.csv.2: 2 rows")
                .note
                .contains("read before")
        );
    }

    #[test]
    fn escapes() {
        let s = |src: &str| {
            let root = parse(&format!("{{\"s\": \"{src}\"}}"))?;
            Ok::<_, Bad>(root.get("s").and_then(Node::str).map(str::to_owned))
        };
        assert_eq!(s("\\ud83d\\ude00"), Ok(Some("😀".into())));
        for bad in ["\\ud83d\\u0041", "\\ud83d", "\\uzzzz", "\\q", "\\u12"] {
            assert!(s(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// No input panics the reader: any text, and any cut of a real configuration.
        #[test]
        fn no_input_panics(text in "\\PC*", cut in 0usize..2000, byte in 0u8..128) {
            let _ = parse(&text);
            let mut conf = CONF.as_bytes().to_vec();
            let at = cut.min(conf.len() - 1);
            conf[at] = byte;
            if let Ok(conf) = String::from_utf8(conf) {
                let _ = read_str(&conf, Some(&format!("{HEADER}{}", &text)), 0);
            }
        }
    }
}
