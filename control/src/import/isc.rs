//! ISC dhcpd 4.x: `dhcpd.conf` and `dhcpd.leases`.
//!
//! Both files share one lexical structure (`dhcpd.conf(5)`, `dhcpd.leases(5)`): statements of
//! words and strings ended by `;`, or followed by a `{ ... }` block of statements, with `#`
//! comments. [`parse`] reads that structure with each statement's line; the readers below give
//! it meaning. Parameters are inherited as dhcpd does: global → shared-network → subnet →
//! pool, and group → host.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use lease_mmap::{BindingState, ClientId, Lease, Owner, UnixTime};

use super::{
    Draft, DraftFailover, DraftReservation, DraftSubnet, ImportError, Imported, ImportedLease,
    ImportedState, Inherited as Params, Outcome, Report, last_per_address, state_named,
};
use crate::config::{AddrRange, Ipv4Prefix, ReservationKey};

/// One token: a bare word (`10.0.0.1`, `range`, `2026/12/07`) or a quoted string (escapes
/// undone), or one of `,` `=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Word(String),
    Str(Vec<u8>),
    Punct(char),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Word(w) => w.clone(),
            Token::Str(s) => format!("\"{}\"", String::from_utf8_lossy(s)),
            Token::Punct(c) => c.to_string(),
        }
    }
}

/// A statement: its words up to `;` or `{`, and its block if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub line: u32,
    pub words: Vec<Token>,
    pub block: Option<Vec<Statement>>,
}

impl Statement {
    /// The statement as one line of text, without its block.
    pub fn text(&self) -> String {
        let mut s: Vec<String> = self.words.iter().map(Token::text).collect();
        if self.block.is_some() {
            s.push("{ ... }".into());
        }
        s.join(" ")
    }

    fn word(&self, i: usize) -> Option<&str> {
        match self.words.get(i) {
            Some(Token::Word(w)) => Some(w),
            _ => None,
        }
    }

    /// Whether the statement starts with these words.
    fn starts(&self, words: &[&str]) -> bool {
        words.len() <= self.words.len()
            && words
                .iter()
                .enumerate()
                .all(|(i, w)| self.word(i).is_some_and(|x| x.eq_ignore_ascii_case(w)))
    }

    fn name(&self, i: usize) -> Option<String> {
        match self.words.get(i) {
            Some(Token::Word(w)) => Some(w.clone()),
            Some(Token::Str(s)) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }
}

struct Lexer<'a> {
    src: &'a [u8],
    at: usize,
    line: u32,
}

enum Lexed {
    Token(Token),
    Semi,
    Open,
    Close,
    End,
}

impl Lexer<'_> {
    fn next(&mut self) -> Result<(u32, Lexed), (u32, String)> {
        loop {
            let Some(&c) = self.src.get(self.at) else {
                return Ok((self.line, Lexed::End));
            };
            match c {
                b'\n' => {
                    self.line += 1;
                    self.at += 1;
                }
                c if c.is_ascii_whitespace() => self.at += 1,
                b'#' => {
                    while self.src.get(self.at).is_some_and(|&c| c != b'\n') {
                        self.at += 1;
                    }
                }
                _ => break,
            }
        }
        let line = self.line;
        let c = self.src[self.at];
        self.at += 1;
        let t = match c {
            b';' => Lexed::Semi,
            b'{' => Lexed::Open,
            b'}' => Lexed::Close,
            b',' | b'=' => Lexed::Token(Token::Punct(char::from(c))),
            b'"' => Lexed::Token(Token::Str(self.string(line)?)),
            _ => {
                let start = self.at - 1;
                while self.src.get(self.at).is_some_and(|&c| {
                    !c.is_ascii_whitespace()
                        && !matches!(c, b';' | b'{' | b'}' | b',' | b'=' | b'"' | b'#')
                }) {
                    self.at += 1;
                }
                Lexed::Token(Token::Word(
                    String::from_utf8_lossy(&self.src[start..self.at]).into_owned(),
                ))
            }
        };
        Ok((line, t))
    }

    /// The rest of a quoted string, with dhcpd's escapes (`\"`, `\\`, `\t`, `\n`, `\r`,
    /// `\ooo` octal, `\xhh`) undone.
    fn string(&mut self, line: u32) -> Result<Vec<u8>, (u32, String)> {
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.src.get(self.at) else {
                return Err((line, "a quoted string is not closed".into()));
            };
            self.at += 1;
            match c {
                b'"' => return Ok(out),
                b'\n' => {
                    self.line += 1;
                    out.push(c);
                }
                b'\\' => {
                    let Some(&e) = self.src.get(self.at) else {
                        return Err((line, "a quoted string is not closed".into()));
                    };
                    self.at += 1;
                    match e {
                        b't' => out.push(b'\t'),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.src.get(self.at) {
                                    Some(&d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.at += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push(v as u8);
                        }
                        b'x' => {
                            let mut v = 0u32;
                            for _ in 0..2 {
                                match self
                                    .src
                                    .get(self.at)
                                    .and_then(|&d| char::from(d).to_digit(16))
                                {
                                    Some(d) => {
                                        v = v * 16 + d;
                                        self.at += 1;
                                    }
                                    None => break,
                                }
                            }
                            out.push(v as u8);
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }
}

/// Reads `src` into statements: a syntax error (an unclosed string or block, a stray `}`)
/// is returned with its line.
pub fn parse(src: &[u8]) -> Result<Vec<Statement>, (u32, String)> {
    let mut lx = Lexer {
        src,
        at: 0,
        line: 1,
    };
    let (body, closed) = block(&mut lx, 0)?;
    match closed {
        Some(line) => Err((line, "`}` without a matching `{`".into())),
        None => Ok(body),
    }
}

/// Statements up to the end (`None`) or a `}` (its line).
fn block(lx: &mut Lexer<'_>, depth: u32) -> Result<(Vec<Statement>, Option<u32>), (u32, String)> {
    if depth > 64 {
        return Err((lx.line, "blocks nested more than 64 deep".into()));
    }
    let mut out = Vec::new();
    let mut words = Vec::new();
    let mut first = 0;
    loop {
        let (line, t) = lx.next()?;
        if words.is_empty() {
            first = line;
        }
        match t {
            Lexed::Token(t) => words.push(t),
            Lexed::Semi => {
                if !words.is_empty() {
                    out.push(Statement {
                        line: first,
                        words: std::mem::take(&mut words),
                        block: None,
                    });
                }
            }
            Lexed::Open => {
                let (inner, closed) = block(lx, depth + 1)?;
                if closed.is_none() {
                    return Err((first, "a `{` block is not closed".into()));
                }
                out.push(Statement {
                    line: first,
                    words: std::mem::take(&mut words),
                    block: Some(inner),
                });
            }
            Lexed::Close | Lexed::End => {
                if !words.is_empty() {
                    return Err((first, "a statement is not ended by `;`".into()));
                }
                let closed = matches!(t, Lexed::Close).then_some(line);
                return Ok((out, closed));
            }
        }
    }
}

/// Reads `dhcpd.conf` at `conf` and, if given, `dhcpd.leases` at `leases`.
pub fn read(conf: &Path, leases: Option<&Path>) -> Result<Imported, ImportError> {
    let src = std::fs::read(conf).map_err(|source| ImportError::Read {
        path: conf.to_owned(),
        source,
    })?;
    let syntax = |path: &Path| {
        let path = path.to_owned();
        move |(line, reason)| ImportError::Syntax { path, line, reason }
    };
    let statements = parse(&src).map_err(syntax(conf))?;
    let mut imported = Imported::default();
    Conf::new(conf, &mut imported.report).read(&statements, &mut imported.draft);
    if let Some(path) = leases {
        let src = std::fs::read(path).map_err(|source| ImportError::Read {
            path: path.to_owned(),
            source,
        })?;
        let statements = parse(&src).map_err(syntax(path))?;
        let draft = &imported.draft;
        let role = |a: Ipv4Addr| -> Option<bool> {
            let name = draft
                .subnets
                .iter()
                .find(|s| s.prefix.contains(a))?
                .failover
                .as_ref()?;
            draft
                .failover
                .iter()
                .find(|f| &f.name == name)
                .map(|f| f.primary)
        };
        let (l, s, reserved) = read_leases(
            path,
            &statements,
            role,
            UnixTime::now(),
            &mut imported.report,
        )?;
        imported.leases = l;
        imported.states = s;
        // dhcpd's `reserved;` leases are never given to a dynamic client: excluded.
        for (line, addr) in reserved {
            let sub = imported
                .draft
                .subnets
                .iter_mut()
                .find(|s| s.pools.iter().any(|p| p.contains(addr)));
            let note = match sub {
                Some(sub) => {
                    sub.exclude.push(AddrRange {
                        first: addr,
                        last: addr,
                    });
                    format!("exclude += \"{addr}\" in {}", sub.prefix)
                }
                None => "in no pool: nothing to exclude".to_owned(),
            };
            imported.report.add(
                path,
                line,
                Outcome::Translated,
                format!("lease {addr} {{ reserved; }}"),
                note,
            );
        }
        for st in &imported.states {
            if !imported.draft.failover.iter().any(|f| f.name == st.name) {
                imported.report.add(
                    path,
                    1,
                    Outcome::Unsupported,
                    format!("failover peer \"{}\" state", st.name),
                    "no such failover peer in the configuration: its state is not kept",
                );
            }
        }
    }
    Ok(imported)
}

/// Who may give the address of `l` again, as dhcpd decides it (`lease_mine_to_reallocate`):
/// the server that wrote a binding's end, when the end is its own to rewind to its free
/// state. `primary` is the role of the relationship the address belongs to (`None`: no
/// failover, always ours).
fn owner(l: &Lease, rewind: Option<BindingState>, primary: Option<bool>) -> Owner {
    let Some(primary) = primary else {
        return Owner::Us;
    };
    let own_free = if primary {
        BindingState::Free
    } else {
        BindingState::Backup
    };
    match l.state {
        BindingState::Expired | BindingState::Released | BindingState::Reset => {
            if rewind == Some(own_free) {
                Owner::Us
            } else {
                Owner::Partner
            }
        }
        BindingState::Abandoned if primary => Owner::Us,
        BindingState::Abandoned => Owner::Partner,
        // We sent it (a potential expiration to the partner): ours.
        BindingState::Active if l.tstp.0 != 0 => Owner::Us,
        BindingState::Active => Owner::Partner,
        _ => Owner::Us,
    }
}

/// dhcpd's `default-lease-time` when the file sets none (`dhcpd.conf(5)`).
const DHCPD_DEFAULT_LEASE_TIME: u32 = 43_200;

/// `deny dynamic bootp clients;`: dhcpd's default for a pool, and tandem's behaviour.
fn is_bootp_default(x: &Statement) -> bool {
    x.starts(&["deny", "dynamic", "bootp", "clients"])
}

/// A host declaration, placed in a subnet once every subnet is known.
struct Host {
    line: u32,
    text: String,
    key: ReservationKey,
    /// A second key dhcpd would also match the host by (`hardware ethernet` beside a
    /// client identifier), which a tandem reservation cannot hold.
    unused_key: Option<&'static str>,
    addresses: Vec<Ipv4Addr>,
    hostname: Option<String>,
}

struct Conf<'a> {
    file: PathBuf,
    report: &'a mut Report,
    hosts: Vec<Host>,
    /// Reading a pool's statements: its parameters apply to the whole subnet.
    in_pool: bool,
}

fn addrs(words: &[Token]) -> Option<Vec<Ipv4Addr>> {
    let mut out = Vec::new();
    for w in words {
        match w {
            Token::Word(w) => out.push(w.parse().ok()?),
            Token::Punct(',') => {}
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

fn number(s: Option<&str>) -> Option<u32> {
    s?.parse().ok()
}

/// `01:02:0a` (dhcpd's colon hex) or a string's bytes.
fn bytes_of(t: Option<&Token>) -> Option<Vec<u8>> {
    match t? {
        Token::Str(s) => Some(s.clone()),
        Token::Word(w) => w
            .split(':')
            .map(|h| {
                u8::from_str_radix(h, 16)
                    .ok()
                    .filter(|_| h.len() <= 2 && !h.is_empty())
            })
            .collect(),
        Token::Punct(_) => None,
    }
}

fn prefix_of(addr: Ipv4Addr, mask: Ipv4Addr) -> Option<Ipv4Prefix> {
    let m = u32::from(mask);
    let len = m.leading_ones();
    (m.count_ones() == len && u32::from(addr) & !m == 0).then_some(Ipv4Prefix {
        addr,
        len: len as u8,
    })
}

impl<'a> Conf<'a> {
    fn new(file: &Path, report: &'a mut Report) -> Self {
        Conf {
            file: file.to_owned(),
            report,
            hosts: Vec::new(),
            in_pool: false,
        }
    }

    fn note(&mut self, s: &Statement, outcome: Outcome, note: impl Into<String>) {
        let mut note = note.into();
        let mut outcome = outcome;
        if self.in_pool
            && outcome == Outcome::Translated
            && !s.starts(&["range"])
            && !s.starts(&["failover"])
            && !is_bootp_default(s)
        {
            outcome = Outcome::Approximated;
            note.push_str(
                " of the whole subnet (tandem's parameters are per subnet, not per pool)",
            );
        }
        self.report.add(&self.file, s.line, outcome, s.text(), note);
    }

    fn read(mut self, body: &[Statement], draft: &mut Draft) {
        let mut global = Params::default();
        // Parameters first: dhcpd applies a scope's parameters to all of it, wherever they
        // stand in it.
        for s in body {
            self.global(s, &mut global, draft);
        }
        for s in body {
            self.declaration(s, &global, None, draft);
        }
        self.place_hosts(draft);
        // dhcpd's defaults where the file sets nothing, so that clients see no change.
        if draft.subnets.iter().any(|s| s.lease_time.is_none()) {
            for sub in draft.subnets.iter_mut().filter(|s| s.lease_time.is_none()) {
                sub.lease_time = Some(DHCPD_DEFAULT_LEASE_TIME);
            }
            self.report.add(
                &self.file,
                1,
                Outcome::Translated,
                "(no default-lease-time)",
                "lease_time = \"43200s\": dhcpd's default of 12 hours (tandem's own is 1 hour)",
            );
        }
        if !body.iter().any(|s| s.starts(&["authoritative"])) {
            self.report.add(
                &self.file,
                1,
                Outcome::Approximated,
                "(no authoritative)",
                "dhcpd was not authoritative; tandem is: it NAKs a request for an address not on the client's subnet",
            );
        }
        draft.trust_relays_as("dhcpd", self.report, &self.file);
        self.report.sort();
    }

    /// A statement at the top level that is not a declaration.
    fn global(&mut self, s: &Statement, p: &mut Params, draft: &mut Draft) {
        if s.block.is_some() || self.parameter(s, p) {
            return;
        }
        let w0 = s.word(0).unwrap_or("").to_ascii_lowercase();
        match w0.as_str() {
            "server-identifier" => match s.word(1).and_then(|a| a.parse().ok()) {
                Some(a) => {
                    draft.server_id = Some(a);
                    self.note(s, Outcome::Translated, "server.server_id");
                }
                None => self.note(s, Outcome::Unsupported, "not an IPv4 address"),
            },
            "ddns-update-style" if s.word(1) == Some("none") => {
                self.note(s, Outcome::Translated, "tandem does no DNS updates")
            }
            "authoritative" => self.note(
                s,
                Outcome::Translated,
                "tandem is authoritative for its subnets: it NAKs a request for an address not on the client's subnet",
            ),
            "not" if s.starts(&["not", "authoritative"]) => self.note(
                s,
                Outcome::Approximated,
                "tandem is always authoritative for its subnets",
            ),
            "log-facility" => self.note(
                s,
                Outcome::Approximated,
                "tandemd logs to stderr (the journal under systemd); server.log_format = \"json\" for a log pipeline",
            ),
            "omapi-port" | "omapi-key" | "key" => self.note(
                s,
                Outcome::Unsupported,
                "tandem's admin API replaces OMAPI: tandemctl, the Unix socket, server.http with tokens",
            ),
            "local-address" | "local-port" => self.note(
                s,
                Outcome::Approximated,
                "tandem listens on server.interfaces (see --interface)",
            ),
            "option" => self.note(
                s,
                Outcome::Unsupported,
                "tandem has no option definitions; it sends the options its [[subnet]] keys name",
            ),
            "failover" if s.starts(&["failover", "peer"]) => {}
            "subnet" | "shared-network" | "host" | "group" => {}
            "class" | "subclass" | "if" | "on" | "elsif" | "else" => {}
            "include" => self.note(
                s,
                Outcome::Unsupported,
                "included files are not read: import them separately or paste them in",
            ),
            _ => self.other(s),
        }
    }

    /// A parameter any scope may hold; `false` if `s` is not one.
    fn parameter(&mut self, s: &Statement, p: &mut Params) -> bool {
        let w0 = s.word(0).unwrap_or("").to_ascii_lowercase();
        let secs = number(s.word(1));
        match (w0.as_str(), secs) {
            ("default-lease-time", Some(v)) => {
                p.lease_time = Some(v);
                self.note(s, Outcome::Translated, "lease_time");
            }
            ("max-lease-time" | "min-lease-time", Some(_)) => self.note(
                s,
                Outcome::Approximated,
                "tandem gives every client its subnet's lease_time; a requested lease time is not honoured",
            ),
            ("abandon-lease-time", Some(v)) => {
                p.decline_probation = Some(v);
                self.note(s, Outcome::Translated, "decline_probation");
            }
            ("option", _) if s.block.is_none() => return self.option(s, p),
            _ => return false,
        }
        true
    }

    fn option(&mut self, s: &Statement, p: &mut Params) -> bool {
        let name = s.word(1).unwrap_or("").to_ascii_lowercase();
        if s.words.contains(&Token::Punct('=')) {
            return false;
        }
        let rest = &s.words[2.min(s.words.len())..];
        match name.as_str() {
            "routers" | "domain-name-servers" => match addrs(rest) {
                Some(a) => {
                    let key = if name == "routers" {
                        p.router = Some(a);
                        "router"
                    } else {
                        p.dns = Some(a);
                        "dns"
                    };
                    self.note(s, Outcome::Translated, key);
                }
                None => self.note(
                    s,
                    Outcome::Unsupported,
                    "only IPv4 addresses are carried over (not host names or expressions)",
                ),
            },
            "domain-name" => match rest {
                [Token::Str(d)] => {
                    p.domain_name = Some(String::from_utf8_lossy(d).into_owned());
                    self.note(s, Outcome::Translated, "domain_name");
                }
                _ => self.note(s, Outcome::Unsupported, "not a quoted domain name"),
            },
            "dhcp-renewal-time" | "dhcp-rebinding-time" => match number(s.word(2)) {
                Some(v) => {
                    let key = if name == "dhcp-renewal-time" {
                        p.renewal_time = Some(v);
                        "renewal_time"
                    } else {
                        p.rebinding_time = Some(v);
                        "rebinding_time"
                    };
                    self.note(s, Outcome::Translated, key);
                }
                None => self.note(s, Outcome::Unsupported, "not a number of seconds"),
            },
            "subnet-mask" | "broadcast-address" => self.note(
                s,
                Outcome::Translated,
                "tandem derives it from the subnet's prefix",
            ),
            "dhcp-lease-time" => match number(s.word(2)) {
                Some(v) => {
                    p.lease_time = Some(v);
                    self.note(s, Outcome::Translated, "lease_time");
                }
                None => self.note(s, Outcome::Unsupported, "not a number of seconds"),
            },
            "space" => self.note(
                s,
                Outcome::Unsupported,
                "tandem has no option spaces or definitions",
            ),
            other => self.note(
                s,
                Outcome::Unsupported,
                format!("tandem does not send option {other}"),
            ),
        }
        true
    }

    /// Something no reader here knows.
    fn other(&mut self, s: &Statement) {
        let w0 = s.word(0).unwrap_or("").to_ascii_lowercase();
        let note = match w0.as_str() {
            "ddns-update-style"
            | "ddns-updates"
            | "ddns-domainname"
            | "ddns-rev-domainname"
            | "update-static-leases"
            | "ignore"
            | "allow"
            | "deny"
                if w0.starts_with("ddns") || s.starts(&["ignore", "client-updates"]) =>
            {
                "tandem does no DNS updates"
            }
            "zone" => "tandem does no DNS updates",
            "ping-check" if s.word(1) == Some("false") => {
                return self.note(
                    s,
                    Outcome::Translated,
                    "tandem does not ping before offering",
                );
            }
            "ping-check" | "ping-timeout" => {
                "tandem does not ping before offering; DECLINEs abandon an address in use"
            }
            "allow" | "deny" | "ignore" => {
                "tandem serves every client its subnet has; no allow/deny lists"
            }
            "one-lease-per-client" => "tandem keeps one lease per client and subnet already",
            "stash-agent-options"
            | "use-host-decl-names"
            | "get-lease-hostnames"
            | "always-broadcast"
            | "boot-unknown-clients"
            | "dynamic-bootp-lease-length"
            | "next-server"
            | "filename"
            | "server-name" => "no equivalent in tandem",
            _ => "not understood by the importer",
        };
        self.note(s, Outcome::Unsupported, note);
    }

    /// Declarations (and, inside scopes, parameters) with the parameters in force.
    fn declaration(
        &mut self,
        s: &Statement,
        outer: &Params,
        shared: Option<&str>,
        draft: &mut Draft,
    ) {
        let w0 = s.word(0).unwrap_or("").to_ascii_lowercase();
        match (w0.as_str(), &s.block) {
            ("failover", Some(body)) if s.starts(&["failover", "peer"]) => {
                self.failover(s, body, draft)
            }
            ("subnet", Some(body)) => self.subnet(s, body, outer, shared, draft),
            ("shared-network", Some(body)) => {
                let name = s.name(1).unwrap_or_default();
                self.note(
                    s,
                    Outcome::Approximated,
                    "tandem has no shared networks: each subnet is imported on its own, and a client gets an address of the subnet its relay's giaddr (or trusted link selection) names, so a relayed client holding an address of another subnet of the network is NAKed at renewal and renumbered: give each subnet its own relay address, or have the relay send link selection",
                );
                let mut p = outer.clone();
                for x in body {
                    if x.block.is_none() && !self.parameter(x, &mut p) {
                        self.other(x);
                    }
                }
                let first = draft.subnets.len();
                for x in body {
                    if x.block.is_some() && !x.starts(&["pool"]) {
                        self.declaration(x, &p, Some(&name), draft);
                    }
                }
                // Pools straight in a shared network go to the subnet that holds them.
                for x in body.iter().filter(|x| x.starts(&["pool"])) {
                    self.pool(
                        x,
                        x.block.as_deref().unwrap_or(&[]),
                        &mut draft.subnets[first..],
                        None,
                    );
                }
            }
            ("group", Some(body)) => {
                self.note(
                    s,
                    Outcome::Approximated,
                    "its subnets get its parameters; its hosts become reservations, which carry no parameters",
                );
                let mut p = outer.clone();
                for x in body.iter().filter(|x| x.block.is_none()) {
                    if !self.parameter(x, &mut p) {
                        self.other(x);
                    }
                }
                for x in body.iter().filter(|x| x.block.is_some()) {
                    self.declaration(x, &p, shared, draft);
                }
            }
            ("host", Some(body)) => self.host(s, body),
            ("class" | "subclass", _) => self.note(
                s,
                Outcome::Unsupported,
                "tandem has no client classes: every client of a subnet is served alike",
            ),
            ("if" | "elsif" | "else" | "on", _) => self.note(
                s,
                Outcome::Unsupported,
                "tandem has no conditional or event statements",
            ),
            (_, Some(_)) => self.note(s, Outcome::Unsupported, "not understood by the importer"),
            (_, None) => {}
        }
    }

    fn failover(&mut self, s: &Statement, body: &[Statement], draft: &mut Draft) {
        let name = s.name(2).unwrap_or_default();
        let mut f = DraftFailover {
            name: name.clone(),
            primary: false,
            hot_standby: false,
            address: Ipv4Addr::UNSPECIFIED,
            peer_address: Ipv4Addr::UNSPECIFIED,
            port: None,
            peer_port: None,
            mclt: None,
            split: None,
            reserve_percent: None,
            load_balance_max_seconds: None,
            max_response_delay: None,
            max_unacked_updates: None,
            auto_partner_down: None,
        };
        let mut role = false;
        self.note(
            s,
            Outcome::Translated,
            format!("[[failover]] name = \"{name}\""),
        );
        for x in body {
            let n = |i| number(x.word(i));
            let addr = |i| x.word(i).and_then(|a| a.parse::<Ipv4Addr>().ok());
            let ok = if x.starts(&["primary"]) {
                (f.primary, role) = (true, true);
                Some("role = \"primary\"".to_owned())
            } else if x.starts(&["secondary"]) {
                (f.primary, role) = (false, true);
                Some("role = \"secondary\"".to_owned())
            } else if x.starts(&["peer", "address"]) {
                addr(2).map(|a| {
                    f.peer_address = a;
                    "peer_address".to_owned()
                })
            } else if x.starts(&["peer", "port"]) {
                n(2).and_then(|v| u16::try_from(v).ok()).map(|v| {
                    f.peer_port = Some(v);
                    "peer_port".to_owned()
                })
            } else if x.starts(&["address"]) {
                addr(1).map(|a| {
                    f.address = a;
                    "address".to_owned()
                })
            } else if x.starts(&["port"]) {
                n(1).and_then(|v| u16::try_from(v).ok()).map(|v| {
                    f.port = Some(v);
                    "port".to_owned()
                })
            } else if x.starts(&["max-response-delay"]) {
                n(1).map(|v| {
                    f.max_response_delay = Some(v);
                    "max_response_delay".to_owned()
                })
            } else if x.starts(&["max-unacked-updates"]) {
                n(1).map(|v| {
                    f.max_unacked_updates = Some(v);
                    "max_unacked_updates".to_owned()
                })
            } else if x.starts(&["mclt"]) {
                n(1).map(|v| {
                    f.mclt = Some(v);
                    "mclt".to_owned()
                })
            } else if x.starts(&["split"]) {
                n(1).and_then(|v| u16::try_from(v).ok())
                    .filter(|v| *v <= 256)
                    .map(|v| {
                        f.split = Some(v);
                        "split".to_owned()
                    })
            } else if x.starts(&["load", "balance", "max", "seconds"]) {
                n(4).and_then(|v| u16::try_from(v).ok()).map(|v| {
                    f.load_balance_max_seconds = Some(v);
                    "load_balance_max_seconds".to_owned()
                })
            } else if x.starts(&["auto-partner-down"]) {
                n(1).map(|v| {
                    f.auto_partner_down = Some(v);
                    "auto_partner_down".to_owned()
                })
            } else {
                None
            };
            match ok {
                Some(key) => self.note(x, Outcome::Translated, key),
                None if x.starts(&["hba"]) => {
                    let bits = bytes_of(x.words.get(1))
                        .map(|b| b.iter().map(|b| b.count_ones()).sum::<u32>());
                    match bits {
                        Some(b) => {
                            f.split = u16::try_from(b).ok();
                            self.note(
                                x,
                                Outcome::Approximated,
                                format!("split = {b}: tandem gives the primary the first {b} buckets, not this bitmap's"),
                            );
                        }
                        None => self.note(x, Outcome::Unsupported, "not a 32-byte bitmap"),
                    }
                }
                None if x.starts(&["max-lease-misbalance"])
                    || x.starts(&["max-lease-ownership"])
                    || x.starts(&["min-balance"])
                    || x.starts(&["max-balance"]) =>
                {
                    self.note(
                        x,
                        Outcome::Approximated,
                        "tandem balances free addresses between the partners itself",
                    )
                }
                None => self.note(x, Outcome::Unsupported, "not understood by the importer"),
            }
        }
        if !role {
            self.note(
                s,
                Outcome::Approximated,
                "neither primary nor secondary: imported as secondary",
            );
        }
        draft.failover.push(f);
    }

    fn subnet(
        &mut self,
        s: &Statement,
        body: &[Statement],
        outer: &Params,
        shared: Option<&str>,
        draft: &mut Draft,
    ) {
        let prefix = match (
            s.word(1).and_then(|a| a.parse().ok()),
            s.word(2) == Some("netmask"),
            s.word(3).and_then(|a| a.parse().ok()),
        ) {
            (Some(a), true, Some(m)) => prefix_of(a, m),
            _ => None,
        };
        let Some(prefix) = prefix else {
            self.note(s, Outcome::Unsupported, "not `subnet ADDRESS netmask MASK`");
            return;
        };
        let origin = match shared {
            Some(n) => format!("{} (line {}, in shared-network {n})", s.text(), s.line),
            None => format!("{} (line {})", s.text(), s.line),
        };
        self.note(
            s,
            Outcome::Translated,
            format!("[[subnet]] prefix = \"{prefix}\""),
        );
        let mut p = outer.clone();
        for x in body {
            if x.block.is_none() && !x.starts(&["range"]) && !self.parameter(x, &mut p) {
                self.inner(x);
            }
        }
        let mut sub = DraftSubnet::new(prefix, origin);
        p.apply(&mut sub);
        let mut one = [sub];
        for x in body {
            if x.starts(&["range"]) {
                self.range(x, &mut one);
            }
        }
        for x in body.iter().filter(|x| x.block.is_some()) {
            if x.starts(&["pool"]) {
                self.pool(x, x.block.as_deref().unwrap_or(&[]), &mut one, Some(&p));
            } else if x.starts(&["host"]) {
                self.host(x, x.block.as_deref().unwrap_or(&[]));
            } else {
                self.declaration(x, &p, shared, draft);
            }
        }
        let [sub] = one;
        draft.subnets.push(sub);
    }

    /// A statement inside a subnet or pool that is not a parameter.
    fn inner(&mut self, x: &Statement) {
        if x.starts(&["authoritative"]) {
            self.note(
                x,
                Outcome::Translated,
                "tandem is authoritative for its subnets",
            );
        } else {
            self.other(x);
        }
    }

    /// The addresses of `range [dynamic-bootp] A [B]` (dhcpd swaps a reversed pair), and
    /// whether it says `dynamic-bootp`.
    fn range_of(x: &Statement) -> Option<(AddrRange, bool)> {
        let bootp = x.starts(&["range", "dynamic-bootp"]);
        let i = if bootp { 2 } else { 1 };
        let a: Ipv4Addr = x.word(i)?.parse().ok()?;
        let b: Ipv4Addr = match x.word(i + 1) {
            Some(w) => w.parse().ok()?,
            None => a,
        };
        Some((
            AddrRange {
                first: a.min(b),
                last: a.max(b),
            },
            bootp,
        ))
    }

    /// A `range` into whichever of `subs` holds it; returns that subnet's index.
    fn range(&mut self, x: &Statement, subs: &mut [DraftSubnet]) -> Option<usize> {
        let Some((r, bootp)) = Self::range_of(x) else {
            self.note(x, Outcome::Unsupported, "not a range of IPv4 addresses");
            return None;
        };
        let Some(i) = subs
            .iter()
            .position(|s| s.prefix.contains(r.first) && s.prefix.contains(r.last))
        else {
            self.note(x, Outcome::Unsupported, "not inside its subnet");
            return None;
        };
        subs[i].pools.push(r);
        let outcome = if bootp {
            Outcome::Approximated
        } else {
            Outcome::Translated
        };
        let note = if bootp {
            format!("pools += \"{r}\" (BOOTP clients get leases, not permanent addresses)")
        } else {
            format!("pools += \"{r}\"")
        };
        self.note(x, outcome, note);
        Some(i)
    }

    /// A pool: its ranges join the subnet that holds them, `failover peer` names that
    /// subnet's relationship, and its parameters become the subnet's (tandem's parameters
    /// are per subnet: approximated).
    fn pool(
        &mut self,
        s: &Statement,
        body: &[Statement],
        subs: &mut [DraftSubnet],
        p: Option<&Params>,
    ) {
        let filtered = body
            .iter()
            .any(|x| (x.starts(&["allow"]) || x.starts(&["deny"])) && !is_bootp_default(x));
        if filtered {
            self.note(
                s,
                Outcome::Approximated,
                "its ranges join the subnet's pools, which serve every client (its allow/deny lists are left out)",
            );
        } else {
            self.note(s, Outcome::Translated, "its ranges join the subnet's pools");
        }
        let mut params = Params::default();
        let peer = body
            .iter()
            .find(|x| x.starts(&["failover", "peer"]))
            .and_then(|x| x.name(2));
        let mut held = Vec::new();
        self.in_pool = true;
        for x in body {
            if x.starts(&["failover", "peer"]) {
                self.note(x, Outcome::Translated, "the subnet's failover");
            } else if x.starts(&["range"]) {
                held.extend(self.range(x, subs));
            } else if is_bootp_default(x) {
                self.note(
                    x,
                    Outcome::Translated,
                    "tandem does not serve BOOTP from pools either",
                );
            } else if x.starts(&["allow"]) || x.starts(&["deny"]) {
                self.note(
                    x,
                    Outcome::Unsupported,
                    "tandem's pools serve every client of the subnet; no allow/deny lists",
                );
            } else if x.block.is_none() && self.parameter(x, &mut params) {
            } else {
                self.other(x);
            }
        }
        self.in_pool = false;
        let _ = p;
        for i in held {
            let sub = &mut subs[i];
            if let Some(n) = &peer {
                sub.failover = Some(n.clone());
            }
            params.apply(sub);
        }
    }

    fn host(&mut self, s: &Statement, body: &[Statement]) {
        let mut mac = None;
        let mut id = None;
        let mut keyed = None;
        let mut addresses = Vec::new();
        let mut hostname = None;
        let mut ok = true;
        for x in body {
            if x.starts(&["hardware", "ethernet"]) {
                mac = x.word(2).and_then(crate::config::parse_mac);
                if mac.is_none() {
                    ok = false;
                }
            } else if x.starts(&["fixed-address"]) {
                match addrs(&x.words[1..]) {
                    Some(a) => addresses = a,
                    None => {
                        ok = false;
                        self.note(
                            x,
                            Outcome::Unsupported,
                            "only IPv4 addresses, not host names",
                        );
                    }
                }
            } else if x.starts(&["option", "dhcp-client-identifier"]) {
                id = bytes_of(x.words.get(2));
            } else if x.starts(&["option", "host-name"]) {
                hostname = x.name(2);
            } else if x.starts(&["host-identifier", "option", "agent.circuit-id"]) {
                keyed = bytes_of(x.words.get(3)).map(ReservationKey::CircuitId);
            } else if x.starts(&["host-identifier", "option", "agent.remote-id"]) {
                keyed = bytes_of(x.words.get(3)).map(ReservationKey::RemoteId);
            } else if x.starts(&["host-identifier", "option", "dhcp-client-identifier"]) {
                keyed = bytes_of(x.words.get(3)).map(ReservationKey::ClientId);
            } else {
                self.note(
                    x,
                    Outcome::Unsupported,
                    "a reservation has a key, an address and a host name only",
                );
            }
        }
        let unused_key = match (&keyed, &id, &mac) {
            (Some(_) | None, Some(_), Some(_)) | (Some(_), None, Some(_)) => {
                Some("hardware ethernet")
            }
            (Some(_), Some(_), None) => Some("dhcp-client-identifier"),
            _ => None,
        };
        let key = keyed
            .or_else(|| id.map(ReservationKey::ClientId))
            .or_else(|| mac.map(ReservationKey::Mac));
        match key {
            Some(key) if ok && !addresses.is_empty() => self.hosts.push(Host {
                line: s.line,
                text: s.text(),
                key,
                unused_key,
                addresses,
                hostname,
            }),
            _ if addresses.is_empty() => self.note(
                s,
                Outcome::Unsupported,
                "a host without a fixed-address is a client class in tandem's terms: it gets a dynamic address",
            ),
            _ => self.note(s, Outcome::Unsupported, "no usable hardware ethernet or client identifier"),
        }
    }

    /// Each host's fixed addresses as reservations in the subnets that hold them (dhcpd
    /// gives the client the one on its network).
    fn place_hosts(&mut self, draft: &mut Draft) {
        for h in std::mem::take(&mut self.hosts) {
            let mut placed = Vec::new();
            let mut missing = Vec::new();
            for &addr in &h.addresses {
                match draft.subnets.iter_mut().find(|s| s.prefix.contains(addr)) {
                    Some(sub) => {
                        sub.reservations.push(DraftReservation {
                            key: h.key.clone(),
                            address: addr,
                            hostname: h.hostname.clone(),
                        });
                        placed.push(format!("{addr} in {}", sub.prefix));
                    }
                    None => missing.push(addr.to_string()),
                }
            }
            let (mut outcome, mut note) = if placed.is_empty() {
                (
                    Outcome::Unsupported,
                    format!("{} in no subnet", missing.join(", ")),
                )
            } else if missing.is_empty() {
                (
                    Outcome::Translated,
                    format!("reserved: {}", placed.join("; ")),
                )
            } else {
                (
                    Outcome::Approximated,
                    format!(
                        "reserved: {} ({} in no subnet, left out)",
                        placed.join("; "),
                        missing.join(", ")
                    ),
                )
            };
            if let Some(other) = h.unused_key {
                if outcome == Outcome::Translated {
                    outcome = Outcome::Approximated;
                }
                note.push_str(&format!(
                    "; matched by {} only (tandem reserves by one key; dhcpd also by {other})",
                    match h.key {
                        ReservationKey::Mac(_) => "MAC",
                        ReservationKey::ClientId(_) => "client id",
                        ReservationKey::CircuitId(_) => "circuit id",
                        ReservationKey::RemoteId(_) => "remote id",
                    }
                ));
            }
            self.report.add(&self.file, h.line, outcome, h.text, note);
        }
    }
}

/// A time in a lease file: `W YYYY/MM/DD HH:MM:SS` (UTC), `epoch N`, or `never`.
fn lease_time(s: &Statement, at: usize) -> Option<u32> {
    match s.word(at)? {
        "never" => Some(u32::MAX),
        "epoch" => number(s.word(at + 1)),
        _ => {
            let date = s.word(at + 1)?.replace('/', "-");
            let time = s.word(at + 2)?;
            let t = crate::time::parse_time(&format!("{date}T{time}Z")).ok()?;
            u32::try_from(t).ok()
        }
    }
}

fn binding_state(name: &str) -> Option<BindingState> {
    Some(match name {
        "free" => BindingState::Free,
        "active" => BindingState::Active,
        "expired" => BindingState::Expired,
        "released" => BindingState::Released,
        "abandoned" => BindingState::Abandoned,
        "reset" => BindingState::Reset,
        "backup" => BindingState::Backup,
        _ => return None,
    })
}

/// What a lease file holds: the leases, the relationships' states, and the addresses dhcpd
/// keeps `reserved;` (with the line of their last entry).
type LeaseFile = (Vec<ImportedLease>, Vec<ImportedState>, Vec<(u32, Ipv4Addr)>);

fn read_leases(
    file: &Path,
    body: &[Statement],
    role: impl Fn(Ipv4Addr) -> Option<bool>,
    now: UnixTime,
    report: &mut Report,
) -> Result<LeaseFile, ImportError> {
    let bad = |line, reason: String| ImportError::Syntax {
        path: file.to_owned(),
        line,
        reason,
    };
    let mut leases = Vec::new();
    let mut states = Vec::new();
    let mut reserved: Vec<(u32, Ipv4Addr)> = Vec::new();
    let mut bootp = 0;
    for s in body {
        if s.starts(&["lease"]) {
            let Some(b) = &s.block else {
                return Err(bad(s.line, "a lease without its `{ ... }`".into()));
            };
            let addr: Ipv4Addr = s
                .word(1)
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| bad(s.line, format!("{:?} is not an IPv4 address", s.text())))?;
            let mut l = Lease::default();
            let mut stated = false;
            let mut rewind = None;
            let mut is_reserved = false;
            for x in b {
                let time = |slot: &mut UnixTime| -> Result<(), ImportError> {
                    *slot = UnixTime(
                        lease_time(x, 1)
                            .ok_or_else(|| bad(x.line, format!("{:?}: not a time", x.text())))?,
                    );
                    Ok(())
                };
                match x.word(0).unwrap_or("") {
                    "starts" => time(&mut l.stos)?,
                    "ends" => time(&mut l.ends)?,
                    "tstp" => time(&mut l.tstp)?,
                    "tsfp" => time(&mut l.tsfp)?,
                    "atsfp" => time(&mut l.atsfp)?,
                    "cltt" => time(&mut l.cltt)?,
                    "reserved" => is_reserved = true,
                    "rewind" if x.starts(&["rewind", "binding", "state"]) => {
                        rewind = x.word(3).and_then(binding_state);
                    }
                    "binding" if x.starts(&["binding", "state"]) => {
                        stated = true;
                        let name = x.word(2).unwrap_or("");
                        l.state = match (binding_state(name), name) {
                            (Some(st), _) => st,
                            (None, "bootp") => {
                                bootp += 1;
                                BindingState::Active
                            }
                            _ => {
                                return Err(bad(x.line, format!("unknown binding state {name:?}")));
                            }
                        };
                    }
                    "hardware" => {
                        let htype = match x.word(1) {
                            Some("ethernet") => 1,
                            Some("token-ring") => 6,
                            Some("fddi") => 8,
                            _ => {
                                return Err(bad(
                                    x.line,
                                    format!("{:?}: unknown hardware type", x.text()),
                                ));
                            }
                        };
                        let hw = bytes_of(x.words.get(2))
                            .filter(|b| b.len() <= 16)
                            .ok_or_else(|| {
                                bad(x.line, format!("{:?}: not a hardware address", x.text()))
                            })?;
                        l.htype = htype;
                        l.hlen = hw.len() as u8;
                        l.chaddr[..hw.len()].copy_from_slice(&hw);
                    }
                    "uid" => {
                        let id = bytes_of(x.words.get(1))
                            .and_then(|b| ClientId::new(&b))
                            .ok_or_else(|| {
                                bad(x.line, format!("{:?}: not a client identifier", x.text()))
                            })?;
                        l.client_id = id;
                    }
                    "client-hostname" => {
                        let name = x.name(1).unwrap_or_default();
                        l.hostname = lease_mmap::Hostname::keep(name.as_bytes(), &l.relay);
                    }
                    // Kept by dhcpd for its own bookkeeping or for DNS; not in tandem's records.
                    _ => {}
                }
            }
            let primary = role(addr);
            if !stated {
                // dhcpd's rule for a lease without a binding state (confpars.c): bound while
                // it lasts, then EXPIRED under failover, FREE without.
                l.state = if l.ends > now && (l.hlen > 0 || !l.client_id.is_empty()) {
                    BindingState::Active
                } else if primary.is_some() {
                    BindingState::Expired
                } else {
                    BindingState::Free
                };
            }
            // Without a rewind state, dhcpd rewinds to the binding state itself.
            l.owner = owner(&l, rewind.or(Some(l.state)), primary);
            // The last entry for an address decides, as for the lease itself.
            reserved.retain(|(_, a)| *a != addr);
            if is_reserved {
                reserved.push((s.line, addr));
            }
            leases.push(ImportedLease {
                file: file.to_owned(),
                line: s.line,
                addr,
                lease: l,
            });
        } else if s.starts(&["failover", "peer"]) && s.word(3) == Some("state") {
            let name = s.name(2).unwrap_or_default();
            let mut st = ImportedState {
                name: name.clone(),
                my_state: crate::failover::fsm::StateKind::Recover,
                my_stos: 0,
                partner_state: None,
                partner_stos: 0,
                mclt: None,
            };
            let mut mine = false;
            for x in s.block.as_deref().unwrap_or(&[]) {
                let at = |x: &Statement| {
                    (x.word(3) == Some("at"))
                        .then(|| lease_time(x, 4))
                        .flatten()
                        .ok_or_else(|| bad(x.line, format!("{:?}: no time `at`", x.text())))
                };
                if x.starts(&["my", "state"]) {
                    st.my_state = x
                        .word(2)
                        .and_then(state_named)
                        .filter(|s| s.name() != "startup")
                        .ok_or_else(|| {
                            bad(x.line, format!("{:?}: not a state to resume in", x.text()))
                        })?;
                    st.my_stos = at(x)?;
                    mine = true;
                } else if x.starts(&["partner", "state"]) {
                    // `unknown-state` until the partner is first heard from.
                    st.partner_state = x.word(2).and_then(state_named);
                    st.partner_stos = if st.partner_state.is_some() {
                        at(x)?
                    } else {
                        0
                    };
                } else if x.starts(&["mclt"]) {
                    // 0 until a secondary has heard the primary's.
                    st.mclt = number(x.word(1)).filter(|m| *m > 0);
                }
            }
            if mine {
                // dhcpd appends a block at every change: the last one is in force.
                states.retain(|(_, x): &(u32, ImportedState)| x.name != name);
                states.push((s.line, st));
            }
        } else if s.starts(&["server-duid"]) || s.starts(&["authoring-byte-order"]) {
            // dhcpd's own bookkeeping.
        } else {
            report.add(
                file,
                s.line,
                Outcome::Unsupported,
                s.text(),
                "not a lease or failover state",
            );
        }
    }
    for (line, st) in &states {
        report.add(
            file,
            *line,
            Outcome::Translated,
            format!("failover peer \"{}\" state {{ ... }}", st.name),
            format!(
                "the relationship resumes in {} (partner {}), as dhcpd left it",
                st.my_state.name(),
                st.partner_state.map_or("unknown", |p| p.name())
            ),
        );
    }
    let states = states.into_iter().map(|(_, s)| s).collect();
    let entries = leases.len();
    let leases = last_per_address(leases);
    let mut by_state = [0u64; 8];
    for l in &leases {
        by_state[l.lease.state as usize] += 1;
    }
    report.add(
        file,
        1,
        Outcome::Translated,
        format!("{entries} lease entries"),
        format!(
            "{} addresses (the last entry of each): {}; host names, DNS and vendor data are not kept",
            leases.len(),
            super::state_counts(&by_state)
        ),
    );
    if bootp > 0 {
        report.add(
            file,
            1,
            Outcome::Approximated,
            format!("{bootp} bootp leases"),
            "imported as active",
        );
    }
    Ok((leases, states, reserved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_blocks_strings_and_lines() {
        let src = b"# comment\nddns-update-style none;\nsubnet 10.0.0.0 netmask 255.0.0.0 {\n  option domain-name \"a \\\"b\\\" \\101\";\n  range 10.0.0.1 10.0.0.9;\n}\n";
        let s = parse(src).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].line, 2);
        assert_eq!(s[1].line, 3);
        let inner = s[1].block.as_ref().unwrap();
        assert_eq!(inner[0].line, 4);
        assert_eq!(inner[0].words[2], Token::Str(b"a \"b\" A".to_vec()));
        assert_eq!(inner[1].line, 5);
    }

    #[test]
    fn syntax_errors_name_their_line() {
        assert_eq!(parse(b"a;\nb {\n c;\n").unwrap_err().0, 2);
        assert_eq!(parse(b"a;\n}\n").unwrap_err().0, 2);
        assert_eq!(parse(b"a;\nb \"x\n\ny").unwrap_err().0, 2);
        assert_eq!(parse(b"a;\nb c\n").unwrap_err().0, 2);
    }

    #[test]
    fn never_panics_on_bytes() {
        for src in [
            &b"{{{{"[..],
            b"\"\\",
            b"\\",
            b"lease { } ;;",
            b"\xff\xfe{;}",
        ] {
            let _ = parse(src);
        }
        let deep = "{".repeat(100);
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn lease_times() {
        let s = &parse(b"ends 1 2026/12/07 21:00:00;").unwrap()[0];
        assert_eq!(lease_time(s, 1), Some(1_796_677_200));
        let s = &parse(b"ends never;").unwrap()[0];
        assert_eq!(lease_time(s, 1), Some(u32::MAX));
        let s = &parse(b"ends epoch 1796677200; # Mon").unwrap()[0];
        assert_eq!(lease_time(s, 1), Some(1_796_677_200));
    }

    #[test]
    fn uid_forms() {
        assert_eq!(
            bytes_of(Some(&Token::Word("01:0a:ff".into()))),
            Some(vec![1, 10, 255])
        );
        assert_eq!(
            bytes_of(Some(&Token::Str(b"\x01ab".to_vec()))),
            Some(vec![1, b'a', b'b'])
        );
        assert_eq!(bytes_of(Some(&Token::Word("01:0a:fff".into()))), None);
    }
}
