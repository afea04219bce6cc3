//! The walk from the spanned tree to [`Config`]: every check, every error with its position.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use super::raw::{LineIndex, Node, Raw};
use super::types::*;
use super::{ConfigError, parse_duration, parse_hex, parse_mac, parse_prefix, parse_range};

type Span = Range<usize>;

struct Ctx<'s> {
    index: &'s LineIndex<'s>,
    errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    fn err(&mut self, span: &Span, message: impl Into<String>) {
        let (line, col) = self.index.span_position(span);
        self.errors.push(ConfigError {
            line,
            col,
            message: message.into(),
        });
    }

    fn line_of(&self, span: &Span) -> u32 {
        self.index.span_position(span).0
    }
}

/// A table being read: remembers which keys were asked for, so the rest can be reported as unknown.
struct Table<'t> {
    what: String,
    span: Span,
    entries: &'t [(Spanned<String>, Node)],
    known: Vec<&'static str>,
}

impl<'t> Table<'t> {
    fn new(node: &'t Node, what: String, ctx: &mut Ctx<'_>) -> Option<Self> {
        match node.get_ref() {
            Raw::Table(entries) => Some(Table {
                what,
                span: node.span(),
                entries,
                known: Vec::new(),
            }),
            other => {
                ctx.err(
                    &node.span(),
                    format!("{what} must be a table, found {}", other.kind()),
                );
                None
            }
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'t Node> {
        self.known.push(key);
        self.entries
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| v)
    }

    fn require(&mut self, key: &'static str, ctx: &mut Ctx<'_>) -> Option<&'t Node> {
        let v = self.get(key);
        if v.is_none() {
            ctx.err(&self.span, format!("missing key `{key}` in {}", self.what));
        }
        v
    }

    fn finish(self, ctx: &mut Ctx<'_>) {
        for (k, _) in self.entries {
            if !self.known.contains(&k.get_ref().as_str()) {
                ctx.err(
                    &k.span(),
                    format!(
                        "unknown key `{}` in {} (known keys: {})",
                        k.get_ref(),
                        self.what,
                        self.known.join(", ")
                    ),
                );
            }
        }
    }
}

fn string<'n>(node: &'n Node, key: &str, ctx: &mut Ctx<'_>) -> Option<&'n str> {
    match node.get_ref() {
        Raw::Str(s) => Some(s),
        other => {
            ctx.err(
                &node.span(),
                format!("`{key}` must be a string, found {}", other.kind()),
            );
            None
        }
    }
}

fn nonempty_string(node: &Node, key: &str, ctx: &mut Ctx<'_>) -> Option<String> {
    let s = string(node, key, ctx)?;
    if s.trim().is_empty() {
        ctx.err(&node.span(), format!("`{key}` must not be empty"));
        return None;
    }
    Some(s.to_owned())
}

fn integer(node: &Node, key: &str, min: i64, max: i64, ctx: &mut Ctx<'_>) -> Option<i64> {
    match node.get_ref() {
        Raw::Int(v) if (min..=max).contains(v) => Some(*v),
        Raw::Int(v) => {
            ctx.err(
                &node.span(),
                format!("`{key}` = {v} is out of range {min}..={max}"),
            );
            None
        }
        other => {
            ctx.err(
                &node.span(),
                format!("`{key}` must be an integer, found {}", other.kind()),
            );
            None
        }
    }
}

fn int_as<T: TryFrom<i64>>(
    node: &Node,
    key: &str,
    min: i64,
    max: i64,
    ctx: &mut Ctx<'_>,
) -> Option<T> {
    integer(node, key, min, max, ctx).and_then(|v| T::try_from(v).ok())
}

fn ipv4(node: &Node, key: &str, ctx: &mut Ctx<'_>) -> Option<Ipv4Addr> {
    let s = string(node, key, ctx)?;
    match s.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.err(
                &node.span(),
                format!("`{key}`: {s:?} is not an IPv4 address"),
            );
            None
        }
    }
}

fn duration(node: &Node, key: &str, ctx: &mut Ctx<'_>) -> Option<u32> {
    match node.get_ref() {
        Raw::Str(s) => match parse_duration(s) {
            Ok(v) => Some(v),
            Err(e) => {
                ctx.err(&node.span(), format!("`{key}`: {e}"));
                None
            }
        },
        other => {
            ctx.err(
                &node.span(),
                format!(
                    "`{key}` must be a duration string such as \"90s\" or \"1h30m\", found {}",
                    other.kind()
                ),
            );
            None
        }
    }
}

fn choice<T: Copy>(node: &Node, key: &str, options: &[(&str, T)], ctx: &mut Ctx<'_>) -> Option<T> {
    let s = string(node, key, ctx)?;
    if let Some((_, v)) = options.iter().find(|(name, _)| *name == s) {
        return Some(*v);
    }
    let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
    ctx.err(
        &node.span(),
        format!("`{key}` = {s:?} is not one of {}", names.join(", ")),
    );
    None
}

fn array<'n>(node: &'n Node, key: &str, ctx: &mut Ctx<'_>) -> Option<&'n [Node]> {
    match node.get_ref() {
        Raw::Array(items) => Some(items),
        other => {
            ctx.err(
                &node.span(),
                format!("`{key}` must be an array, found {}", other.kind()),
            );
            None
        }
    }
}

/// Each element through `f`, keeping only the good ones (errors are recorded).
fn each<T>(
    node: &Node,
    key: &str,
    ctx: &mut Ctx<'_>,
    mut f: impl FnMut(&Node, &mut Ctx<'_>) -> Option<T>,
) -> Vec<(T, Span)> {
    let Some(items) = array(node, key, ctx) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| f(item, ctx).map(|v| (v, item.span())))
        .collect()
}

fn range_of(node: &Node, key: &str, ctx: &mut Ctx<'_>) -> Option<AddrRange> {
    let s = string(node, key, ctx)?;
    match parse_range(s) {
        Ok(r) => Some(r),
        Err(e) => {
            ctx.err(&node.span(), format!("`{key}`: {e}"));
            None
        }
    }
}

pub(super) fn validate(root: &Node, index: &LineIndex<'_>) -> Result<Config, Vec<ConfigError>> {
    let mut ctx = Ctx {
        index,
        errors: Vec::new(),
    };
    let whole = 0..0;
    let mut top = Table::new(root, "the file".into(), &mut ctx);
    let (server_node, subnet_node, failover_node) = match top.as_mut() {
        Some(t) => (t.get("server"), t.get("subnet"), t.get("failover")),
        None => (None, None, None),
    };
    if let Some(t) = top {
        t.finish(&mut ctx);
    }

    let server = match server_node {
        Some(n) => server(n, &mut ctx),
        None => {
            ctx.err(&whole, "missing [server] table");
            None
        }
    };

    let failover_tables = failover_node
        .map(|n| tables(n, "failover", &mut ctx))
        .unwrap_or_default();
    let failovers: Vec<FailoverConfig> = failover_tables
        .iter()
        .enumerate()
        .filter_map(|(i, f)| failover(f, i + 1, &mut ctx))
        .collect();
    // Names are collected from the tree, so that a relationship with some other error still counts as
    // defined (no cascade of "not defined" errors).
    let mut names: HashMap<String, Span> = HashMap::new();
    for f in &failover_tables {
        let Raw::Table(entries) = f.get_ref() else {
            continue;
        };
        let Some((_, n)) = entries.iter().find(|(k, _)| k.get_ref() == "name") else {
            continue;
        };
        let Raw::Str(name) = n.get_ref() else {
            continue;
        };
        if let Some(first) = names.get(name) {
            let line = ctx.line_of(first);
            ctx.err(
                &n.span(),
                format!("failover relationship {name:?} is already defined on line {line}"),
            );
        } else {
            names.insert(name.clone(), n.span());
        }
    }

    let interfaces: Vec<String> = server
        .as_ref()
        .map(|s| s.interfaces.clone())
        .unwrap_or_default();
    // Without a server (errors of its own) the check below would only add noise.
    let trusts_relays = server.as_ref().is_none_or(|s| !s.trusted_relays.is_empty());
    let mut subnets: Vec<SubnetConfig> = Vec::new();
    let mut prefixes: Vec<(Ipv4Prefix, Span)> = Vec::new();
    if let Some(n) = subnet_node {
        for (i, s) in tables(n, "subnet", &mut ctx).into_iter().enumerate() {
            let Some((subnet, refs)) = subnet(s, i + 1, trusts_relays, &mut ctx) else {
                continue;
            };
            if let Some((prefix, span)) = &refs.prefix {
                for (prev, prev_span) in &prefixes {
                    if prev.overlaps(*prefix) {
                        let line = ctx.line_of(prev_span);
                        ctx.err(
                            span,
                            format!("subnet {prefix} overlaps subnet {prev} (line {line})"),
                        );
                    }
                }
                prefixes.push((*prefix, span.clone()));
            }
            if let Some((name, span)) = &refs.failover
                && !names.contains_key(name.as_str())
            {
                ctx.err(
                    span,
                    format!(
                        "the subnet names failover relationship {name:?}, which is not defined"
                    ),
                );
            }
            if let Some((ifname, span)) = &refs.interface
                && server.is_some()
                && !interfaces.contains(ifname)
            {
                ctx.err(
                    span,
                    format!("`interface` = {ifname:?} is not one of server.interfaces"),
                );
            }
            subnets.extend(subnet);
        }
    }

    if ctx.errors.is_empty()
        && let Some(server) = server
    {
        return Ok(Config {
            server,
            subnets,
            failover: failovers,
        });
    }
    let mut errors = ctx.errors;
    errors.sort_by_key(|e| (e.line, e.col));
    Err(errors)
}

/// `[[name]]`: an array of tables.
fn tables<'n>(node: &'n Node, name: &str, ctx: &mut Ctx<'_>) -> Vec<&'n Node> {
    match node.get_ref() {
        Raw::Array(items) => items.iter().collect(),
        other => {
            ctx.err(
                &node.span(),
                format!(
                    "`{name}` must be an array of tables ([[{name}]]), found {}",
                    other.kind()
                ),
            );
            Vec::new()
        }
    }
}

fn server(node: &Node, ctx: &mut Ctx<'_>) -> Option<ServerConfig> {
    let mut t = Table::new(node, "[server]".into(), ctx)?;
    let errors_before = ctx.errors.len();

    let interfaces = match t.require("interfaces", ctx) {
        Some(n) => {
            let list = each(n, "interfaces", ctx, |item, ctx| {
                nonempty_string(item, "interfaces", ctx)
            });
            if list.is_empty() && matches!(n.get_ref(), Raw::Array(items) if items.is_empty()) {
                ctx.err(&n.span(), "`interfaces` must name at least one interface");
            }
            let mut names: Vec<String> = Vec::new();
            for (name, span) in list {
                if names.contains(&name) {
                    ctx.err(&span, format!("interface {name:?} is listed twice"));
                } else {
                    names.push(name);
                }
            }
            names
        }
        None => Vec::new(),
    };

    let server_id = flat(t.get("server_id").map(|n| ipv4(n, "server_id", ctx)));
    let data_dir = flat(
        t.get("data_dir")
            .map(|n| nonempty_string(n, "data_dir", ctx)),
    )
    .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from);
    let datapath = flat(t.get("datapath").map(|n| {
        choice(
            n,
            "datapath",
            &[
                ("xdp", Datapath::Xdp),
                ("packet", Datapath::Packet),
                ("auto", Datapath::Auto),
            ],
            ctx,
        )
    }))
    .unwrap_or(Datapath::Auto);
    let workers = flat(
        t.get("workers")
            .map(|n| int_as::<u16>(n, "workers", 0, i64::from(MAX_WORKERS), ctx)),
    )
    .unwrap_or(0);
    let durability = flat(t.get("durability").map(|n| {
        choice(
            n,
            "durability",
            &[("sync", Durability::Sync), ("async", Durability::Async)],
            ctx,
        )
    }))
    .unwrap_or(Durability::Sync);
    let log_format = flat(t.get("log_format").map(|n| {
        choice(
            n,
            "log_format",
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            ctx,
        )
    }))
    .unwrap_or_default();
    let log_level = flat(t.get("log_level").map(|n| {
        let s = string(n, "log_level", ctx)?;
        match crate::logging::parse(s) {
            Ok(_) => Some(s.to_owned()),
            Err(e) => {
                ctx.err(
                    &n.span(),
                    format!("`log_level` = {s:?} is not a log filter: {e}"),
                );
                None
            }
        }
    }));
    let admin = flat(
        t.get("admin")
            .map(|n| socket_addr(n, "admin", "127.0.0.1:6470", ctx)),
    );
    let http = flat(
        t.get("http")
            .map(|n| socket_addr(n, "http", "127.0.0.1:9167", ctx)),
    );
    let user = t.get("user").and_then(|n| nonempty_string(n, "user", ctx));
    let tls_cert = t
        .get("http_tls_cert")
        .map(|n| (n.span(), nonempty_string(n, "http_tls_cert", ctx)));
    let tls_key = t
        .get("http_tls_key")
        .map(|n| (n.span(), nonempty_string(n, "http_tls_key", ctx)));
    let http_tls = match (tls_cert, tls_key) {
        (Some((_, Some(c))), Some((_, Some(k)))) => Some((PathBuf::from(c), PathBuf::from(k))),
        (Some((span, _)), None) => {
            ctx.err(
                &span,
                "`http_tls_cert` without `http_tls_key`: give both, or neither",
            );
            None
        }
        (None, Some((span, _))) => {
            ctx.err(
                &span,
                "`http_tls_key` without `http_tls_cert`: give both, or neither",
            );
            None
        }
        _ => None,
    };
    let http_auth = flat(t.get("http_auth").map(|n| {
        choice(
            n,
            "http_auth",
            &[("auto", HttpAuth::Auto), ("on", HttpAuth::On)],
            ctx,
        )
    }))
    .unwrap_or_default();
    let dispatch = flat(t.get("dispatch").map(|n| {
        choice(
            n,
            "dispatch",
            &[("auto", Dispatch::Auto), ("off", Dispatch::Off)],
            ctx,
        )
    }))
    .unwrap_or(Dispatch::Auto);
    let mut prefixes = |key: &'static str, ctx: &mut Ctx<'_>| {
        t.get(key).map(|n| {
            each(n, key, ctx, |item, ctx| {
                let s = string(item, key, ctx)?;
                let parsed = if s.contains('/') {
                    parse_prefix(s).map_err(|e| e.to_string())
                } else {
                    s.parse::<Ipv4Addr>()
                        .map(|addr| Ipv4Prefix { addr, len: 32 })
                        .map_err(|_| format!("{s:?} is not an IPv4 address or prefix"))
                };
                parsed
                    .map_err(|e| ctx.err(&item.span(), format!("`{key}`: {e}")))
                    .ok()
            })
            .into_iter()
            .map(|(p, _)| p)
            .collect::<Vec<_>>()
        })
    };
    let trusted_relays = prefixes("trusted_relays", ctx).unwrap_or_default();
    let leasequery_from =
        prefixes("leasequery_from", ctx).unwrap_or_else(|| trusted_relays.clone());
    let bulk_leasequery = t
        .get("bulk_leasequery")
        .and_then(|n| socket_addr(n, "bulk_leasequery", "0.0.0.0:67", ctx));
    let mut limit = |rate_key: &'static str,
                     burst_key: &'static str,
                     default: dataplane::limit::RateLimit,
                     ctx: &mut Ctx<'_>| {
        let rate = t
            .get(rate_key)
            .and_then(|n| int_as::<u32>(n, rate_key, 0, 1_000_000, ctx));
        let burst = t
            .get(burst_key)
            .and_then(|n| int_as::<u32>(n, burst_key, 1, 4_000_000, ctx));
        match (rate, burst) {
            (None, None) => default,
            (rate, burst) => {
                let rate = rate.unwrap_or(default.rate);
                dataplane::limit::RateLimit {
                    rate,
                    burst: burst.unwrap_or(rate.saturating_mul(4).max(1)),
                }
            }
        }
    };
    let d = dataplane::limit::RateLimits::DEFAULT;
    let rate_limits = dataplane::limit::RateLimits {
        mac: limit("mac_rate", "mac_burst", d.mac, ctx),
        circuit: limit("circuit_rate", "circuit_burst", d.circuit, ctx),
        relay: limit("relay_rate", "relay_burst", d.relay, ctx),
    };
    // DECLINEs an hour; the burst is the rate (an hour's worth may come at once).
    let mut per_hour = |key: &'static str, default: dataplane::limit::RateLimit| {
        t.get(key)
            .and_then(|n| int_as::<u32>(n, key, 0, 1_000_000, ctx))
            .map_or(default, |rate| dataplane::limit::RateLimit {
                rate,
                burst: rate.max(1),
            })
    };
    let d = dataplane::limit::DeclineLimits::DEFAULT;
    let decline_limits = dataplane::limit::DeclineLimits {
        mac: per_hour("mac_decline_rate", d.mac),
        relay: per_hour("relay_decline_rate", d.relay),
    };
    t.finish(ctx);
    (ctx.errors.len() == errors_before && !interfaces.is_empty()).then_some(ServerConfig {
        interfaces,
        server_id,
        data_dir,
        datapath,
        workers,
        durability,
        log_level,
        log_format,
        admin,
        http,
        http_tls,
        http_auth,
        user,
        dispatch,
        trusted_relays,
        leasequery_from,
        bulk_leasequery,
        rate_limits,
        decline_limits,
    })
}

/// An `address:port` key; the error gives `example` as the shape expected.
fn socket_addr(n: &Node, key: &str, example: &str, ctx: &mut Ctx<'_>) -> Option<SocketAddr> {
    let s = string(n, key, ctx)?;
    match s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.err(
                &n.span(),
                format!("`{key}` = {s:?} is not an address:port such as \"{example}\""),
            );
            None
        }
    }
}

/// What the cross-subnet checks need, known even when the subnet has errors of its own.
struct SubnetRefs {
    prefix: Option<(Ipv4Prefix, Span)>,
    failover: Option<(String, Span)>,
    interface: Option<(String, Span)>,
}

/// `None` when `node` is not a table; else the subnet if it is valid, and its references.
fn subnet(
    node: &Node,
    nth: usize,
    trusts_relays: bool,
    ctx: &mut Ctx<'_>,
) -> Option<(Option<SubnetConfig>, SubnetRefs)> {
    let what = format!("[[subnet]] #{nth}");
    let mut t = Table::new(node, what.clone(), ctx)?;
    let errors_before = ctx.errors.len();

    let prefix_node = t.require("prefix", ctx);
    let prefix = prefix_node.and_then(|n| {
        let s = string(n, "prefix", ctx)?;
        parse_prefix(s)
            .map_err(|e| ctx.err(&n.span(), format!("`prefix`: {e}")))
            .ok()
    });

    let pools = t
        .get("pools")
        .map(|n| each(n, "pools", ctx, |i, ctx| range_of(i, "pools", ctx)))
        .unwrap_or_default();
    let exclude = t
        .get("exclude")
        .map(|n| each(n, "exclude", ctx, |i, ctx| range_of(i, "exclude", ctx)))
        .unwrap_or_default();
    let router = t
        .get("router")
        .map(|n| each(n, "router", ctx, |i, ctx| ipv4(i, "router", ctx)))
        .unwrap_or_default();
    let dns = t
        .get("dns")
        .map(|n| each(n, "dns", ctx, |i, ctx| ipv4(i, "dns", ctx)))
        .unwrap_or_default();
    let domain_name = t.get("domain_name").and_then(|n| {
        let s = nonempty_string(n, "domain_name", ctx)?;
        let valid = s.len() <= 253
            && s.trim_end_matches('.').split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            ctx.err(
                &n.span(),
                format!("`domain_name` = {s:?} is not a domain name"),
            );
        }
        Some(s)
    });
    let interface_node = t.get("interface");
    let interface = interface_node.and_then(|n| nonempty_string(n, "interface", ctx));
    let lease_time_node = t.get("lease_time");
    let lease_time = lease_time_node
        .and_then(|n| duration(n, "lease_time", ctx))
        .unwrap_or(3600);
    if let Some(n) = lease_time_node
        && lease_time == 0
    {
        ctx.err(&n.span(), "`lease_time` must be longer than 0s");
    }
    let t1_node = t.get("renewal_time");
    let renewal_time = t1_node.and_then(|n| duration(n, "renewal_time", ctx));
    let t2_node = t.get("rebinding_time");
    let rebinding_time = t2_node.and_then(|n| duration(n, "rebinding_time", ctx));
    let decline_probation = t
        .get("decline_probation")
        .and_then(|n| duration(n, "decline_probation", ctx))
        .unwrap_or(dataplane::engine::DEFAULT_DECLINE_PROBATION);
    let offer_hold = t
        .get("offer_hold")
        .and_then(|n| duration(n, "offer_hold", ctx))
        .unwrap_or(30);
    let max_abandoned_percent = t
        .get("max_abandoned_percent")
        .and_then(|n| int_as::<u8>(n, "max_abandoned_percent", 0, 100, ctx))
        .unwrap_or(dataplane::engine::DEFAULT_MAX_ABANDONED_PERCENT);
    let failover_node = t.get("failover");
    let failover = failover_node.and_then(|n| nonempty_string(n, "failover", ctx));

    // T1 < T2 < lease time (RFC 2131 §4.4.5).
    let t1 = renewal_time.unwrap_or(lease_time / 2);
    let t2 = rebinding_time
        .unwrap_or_else(|| u32::try_from(u64::from(lease_time) * 7 / 8).unwrap_or(u32::MAX));
    if let (Some(n), Some(v)) = (t1_node, renewal_time)
        && (v == 0 || v >= lease_time || v >= t2)
    {
        ctx.err(
            &n.span(),
            "`renewal_time` must be above 0s and below rebinding_time and lease_time",
        );
    }
    if let (Some(n), Some(v)) = (t2_node, rebinding_time)
        && (v <= t1 || v >= lease_time)
    {
        ctx.err(
            &n.span(),
            "`rebinding_time` must be above renewal_time and below lease_time",
        );
    }

    let reservation_nodes = t
        .get("reservation")
        .map(|n| tables(n, "subnet.reservation", ctx))
        .unwrap_or_default();
    t.finish(ctx);

    // Pools: inside the prefix, off its network and broadcast addresses, disjoint.
    if let Some(p) = prefix {
        for (i, (pool, span)) in pools.iter().enumerate() {
            if !p.range().covers(*pool) {
                ctx.err(
                    span,
                    format!("pool {pool} is outside the subnet's prefix {p}"),
                );
            } else if p.len <= 30 && (pool.contains(p.first()) || pool.contains(p.last())) {
                ctx.err(
                    span,
                    format!("pool {pool} includes the network or broadcast address of {p}"),
                );
            }
            for (other, other_span) in &pools[..i] {
                if other.overlaps(*pool) {
                    let line = ctx.line_of(other_span);
                    ctx.err(
                        span,
                        format!("pool {pool} overlaps pool {other} (line {line})"),
                    );
                }
            }
        }
    }
    for (ex, span) in &exclude {
        if !pools.iter().any(|(pool, _)| pool.covers(*ex)) {
            ctx.err(
                span,
                format!("exclusion {ex} is not inside one of the subnet's pools"),
            );
        }
    }

    let mut reservations: Vec<Reservation> = Vec::new();
    let mut seen_addr: HashMap<Ipv4Addr, Span> = HashMap::new();
    let mut seen_key: HashMap<ReservationKey, Span> = HashMap::new();
    for (j, rn) in reservation_nodes.into_iter().enumerate() {
        let Some((r, addr_span)) = reservation(rn, nth, j + 1, ctx) else {
            continue;
        };
        if !trusts_relays
            && matches!(
                r.key,
                ReservationKey::CircuitId(_) | ReservationKey::RemoteId(_)
            )
        {
            ctx.err(
                &rn.span(),
                "a circuit-id or remote-id reservation matches only requests from \
                 `server.trusted_relays`, which is empty: list the relay agents that insert \
                 option 82",
            );
        }
        if let Some(p) = prefix {
            if !p.contains(r.address) {
                ctx.err(
                    &addr_span,
                    format!(
                        "reserved address {} is outside the subnet's prefix {p}",
                        r.address
                    ),
                );
            } else if p.len <= 30 && (r.address == p.first() || r.address == p.last()) {
                ctx.err(
                    &addr_span,
                    format!(
                        "reserved address {} is the network or broadcast address of {p}",
                        r.address
                    ),
                );
            }
        }
        if let Some(first) = seen_addr.get(&r.address) {
            let line = ctx.line_of(first);
            ctx.err(
                &addr_span,
                format!("address {} is already reserved on line {line}", r.address),
            );
        } else {
            seen_addr.insert(r.address, addr_span.clone());
        }
        if let Some(first) = seen_key.get(&r.key) {
            let line = ctx.line_of(first);
            ctx.err(
                &rn.span(),
                format!("this client already has a reservation in this subnet on line {line}"),
            );
        } else {
            seen_key.insert(r.key.clone(), rn.span());
        }
        reservations.push(r);
    }

    let refs = SubnetRefs {
        prefix: prefix.zip(prefix_node.map(Spanned::span)),
        failover: failover.clone().zip(failover_node.map(Spanned::span)),
        interface: interface.clone().zip(interface_node.map(Spanned::span)),
    };
    let config = match prefix {
        Some(prefix) if ctx.errors.len() == errors_before => Some(SubnetConfig {
            prefix,
            pools: pools.into_iter().map(|(p, _)| p).collect(),
            exclude: exclude.into_iter().map(|(p, _)| p).collect(),
            router: router.into_iter().map(|(p, _)| p).collect(),
            dns: dns.into_iter().map(|(p, _)| p).collect(),
            domain_name,
            interface,
            lease_time,
            renewal_time,
            rebinding_time,
            decline_probation,
            max_abandoned_percent,
            offer_hold,
            failover,
            reservations,
        }),
        _ => None,
    };
    Some((config, refs))
}

fn reservation(
    node: &Node,
    subnet: usize,
    nth: usize,
    ctx: &mut Ctx<'_>,
) -> Option<(Reservation, Span)> {
    let mut t = Table::new(
        node,
        format!("[[subnet.reservation]] #{nth} of [[subnet]] #{subnet}"),
        ctx,
    )?;
    let errors_before = ctx.errors.len();
    let address_node = t.require("address", ctx);
    let address = address_node.and_then(|n| ipv4(n, "address", ctx));
    let hostname = t
        .get("hostname")
        .and_then(|n| nonempty_string(n, "hostname", ctx));

    let text_or_hex = |n: &Node, key: &str, hex: bool, ctx: &mut Ctx<'_>| -> Option<Vec<u8>> {
        let s = string(n, key, ctx)?;
        let bytes = if hex {
            parse_hex(s).or_else(|| {
                ctx.err(
                    &n.span(),
                    format!("`{key}` = {s:?} is not hex bytes such as \"01:02:0a\""),
                );
                None
            })?
        } else {
            s.as_bytes().to_vec()
        };
        if bytes.is_empty() || bytes.len() > 255 {
            ctx.err(&n.span(), format!("`{key}` must be 1 to 255 bytes long"));
            return None;
        }
        Some(bytes)
    };
    let mut keys: Vec<(Option<ReservationKey>, Span)> = Vec::new();
    if let Some(n) = t.get("mac") {
        let s = string(n, "mac", ctx);
        let mac = s.and_then(|s| {
            parse_mac(s).or_else(|| {
                ctx.err(
                    &n.span(),
                    format!("`mac` = {s:?} is not a MAC address such as \"02:00:00:00:00:01\""),
                );
                None
            })
        });
        keys.push((mac.map(ReservationKey::Mac), n.span()));
    }
    if let Some(n) = t.get("client_id") {
        keys.push((
            text_or_hex(n, "client_id", true, ctx).map(ReservationKey::ClientId),
            n.span(),
        ));
    }
    for (key, hex) in [("circuit_id", false), ("circuit_id_hex", true)] {
        if let Some(n) = t.get(key) {
            keys.push((
                text_or_hex(n, key, hex, ctx).map(ReservationKey::CircuitId),
                n.span(),
            ));
        }
    }
    for (key, hex) in [("remote_id", false), ("remote_id_hex", true)] {
        if let Some(n) = t.get(key) {
            keys.push((
                text_or_hex(n, key, hex, ctx).map(ReservationKey::RemoteId),
                n.span(),
            ));
        }
    }
    match keys.len() {
        0 => ctx.err(
            &t.span,
            format!(
                "{} needs one of `mac`, `client_id`, `circuit_id`, `circuit_id_hex`, `remote_id`, `remote_id_hex`",
                t.what
            ),
        ),
        1 => {}
        _ => ctx.err(
            &keys[1].1,
            "a reservation matches on exactly one of `mac`, `client_id`, `circuit_id(_hex)`, `remote_id(_hex)`",
        ),
    }
    t.finish(ctx);
    let key = keys.into_iter().next()?.0?;
    if ctx.errors.len() != errors_before {
        return None;
    }
    Some((
        Reservation {
            key,
            address: address?,
            hostname,
        },
        address_node.map_or(node.span(), Spanned::span),
    ))
}

fn failover(node: &Node, nth: usize, ctx: &mut Ctx<'_>) -> Option<FailoverConfig> {
    let mut t = Table::new(node, format!("[[failover]] #{nth}"), ctx)?;
    let errors_before = ctx.errors.len();
    let name = t.require("name", ctx).and_then(|n| {
        let s = nonempty_string(n, "name", ctx)?;
        if s.len() > 255 {
            ctx.err(
                &n.span(),
                "`name` must be at most 255 bytes (it travels in the failover protocol)",
            );
        }
        Some(s)
    });
    let role = t.require("role", ctx).and_then(|n| {
        choice(
            n,
            "role",
            &[("primary", Role::Primary), ("secondary", Role::Secondary)],
            ctx,
        )
    });
    let mode = t
        .get("mode")
        .and_then(|n| {
            choice(
                n,
                "mode",
                &[
                    ("load-balance", FailoverMode::LoadBalance),
                    ("hot-standby", FailoverMode::HotStandby),
                ],
                ctx,
            )
        })
        .unwrap_or(FailoverMode::LoadBalance);
    let address = t
        .require("address", ctx)
        .and_then(|n| ipv4(n, "address", ctx));
    let peer_address_node = t.require("peer_address", ctx);
    let peer_address = peer_address_node.and_then(|n| ipv4(n, "peer_address", ctx));
    let port = t
        .get("port")
        .and_then(|n| int_as::<u16>(n, "port", 1, 65535, ctx))
        .unwrap_or(647);
    let peer_port = t
        .get("peer_port")
        .and_then(|n| int_as::<u16>(n, "peer_port", 1, 65535, ctx))
        .unwrap_or(647);
    let manage_port_node = t.get("manage_port");
    let manage_port = manage_port_node
        .and_then(|n| int_as::<u16>(n, "manage_port", 1, 65535, ctx))
        .unwrap_or(DEFAULT_MANAGE_PORT);
    if let Some(n) = manage_port_node
        && manage_port == port
    {
        ctx.err(
            &n.span(),
            "`manage_port` is the failover `port`: the management channel needs a port of its own",
        );
    }
    let peer_manage_port = t
        .get("peer_manage_port")
        .and_then(|n| int_as::<u16>(n, "peer_manage_port", 1, 65535, ctx))
        .unwrap_or(DEFAULT_MANAGE_PORT);
    let mclt_node = if role == Some(Role::Primary) {
        t.require("mclt", ctx)
    } else {
        t.get("mclt")
    };
    let mclt = mclt_node
        .and_then(|n| duration(n, "mclt", ctx))
        .unwrap_or(3600);
    if let Some(n) = mclt_node
        && mclt == 0
    {
        ctx.err(&n.span(), "`mclt` must be longer than 0s");
    }
    if let Some(n) = mclt_node
        && mclt > crate::failover::fsm::MAX_MCLT
    {
        ctx.err(
            &n.span(),
            "`mclt` must be at most 7d (a partner refuses more)",
        );
    }
    let split = t
        .get("split")
        .and_then(|n| int_as::<u16>(n, "split", 0, 256, ctx))
        .unwrap_or(128);
    let reserve_percent = t
        .get("reserve_percent")
        .and_then(|n| int_as::<u8>(n, "reserve_percent", 0, 100, ctx))
        .unwrap_or(10);
    let load_balance_max_seconds = t
        .get("load_balance_max_seconds")
        .and_then(|n| int_as::<u16>(n, "load_balance_max_seconds", 0, 65535, ctx))
        .unwrap_or(3);
    let mrd_node = t.get("max_response_delay");
    let max_response_delay = mrd_node
        .and_then(|n| duration(n, "max_response_delay", ctx))
        .unwrap_or(60);
    if let Some(n) = mrd_node
        && max_response_delay == 0
    {
        ctx.err(&n.span(), "`max_response_delay` must be longer than 0s");
    }
    let max_unacked_updates = t
        .get("max_unacked_updates")
        .and_then(|n| int_as::<u32>(n, "max_unacked_updates", 1, 65535, ctx))
        .unwrap_or(10);
    let auto_partner_down = t
        .get("auto_partner_down")
        .and_then(|n| duration(n, "auto_partner_down", ctx))
        .unwrap_or(0);
    let secret_node = t.get("shared_secret_file");
    let shared_secret_file = secret_node
        .and_then(|n| nonempty_string(n, "shared_secret_file", ctx))
        .map(PathBuf::from);
    let peer_software = t
        .get("peer_software")
        .and_then(|n| {
            choice(
                n,
                "peer_software",
                &[
                    ("tandem", PeerSoftware::Tandem),
                    ("isc-dhcpd", PeerSoftware::IscDhcpd),
                ],
                ctx,
            )
        })
        .unwrap_or(PeerSoftware::Tandem);
    match (peer_software, &shared_secret_file, secret_node) {
        (PeerSoftware::Tandem, None, _) => ctx.err(
            &node.span(),
            "`shared_secret_file` is required: tandem peers sign every message (make one with \
             `tandemctl secret FILE` and copy it to the partner); for an ISC dhcpd partner set \
             `peer_software = \"isc-dhcpd\"`",
        ),
        (PeerSoftware::IscDhcpd, Some(_), Some(n)) => ctx.err(
            &n.span(),
            "`shared_secret_file` with `peer_software = \"isc-dhcpd\"`: ISC dhcpd has no message digest",
        ),
        _ => {}
    }
    let replicate_node = t.get("replicate");
    let replicate_auto = replicate_node
        .and_then(|n| choice(n, "replicate", &[("auto", true), ("manual", false)], ctx))
        .unwrap_or(false);
    if let (Some(n), true, PeerSoftware::IscDhcpd) = (replicate_node, replicate_auto, peer_software)
    {
        ctx.err(
            &n.span(),
            "`replicate = \"auto\"` needs a tandem partner: ISC dhcpd's configuration is not ours to write",
        );
    }
    let mlt_node = t.get("max_lease_time");
    let max_lease_time = mlt_node.and_then(|n| duration(n, "max_lease_time", ctx));
    if let (Some(n), Some(0)) = (mlt_node, max_lease_time) {
        ctx.err(&n.span(), "`max_lease_time` must be longer than 0s");
    }
    t.finish(ctx);
    if let (Some(a), Some(p), Some(n)) = (address, peer_address, peer_address_node)
        && a == p
        && port == peer_port
    {
        ctx.err(
            &n.span(),
            "`peer_address`:`peer_port` is our own `address`:`port`",
        );
    }
    if ctx.errors.len() != errors_before {
        return None;
    }
    Some(FailoverConfig {
        name: name?,
        role: role?,
        mode,
        address: address?,
        peer_address: peer_address?,
        port,
        peer_port,
        manage_port,
        peer_manage_port,
        replicate_auto,
        mclt,
        mclt_set: mclt_node.is_some(),
        split,
        reserve_percent,
        load_balance_max_seconds,
        max_response_delay,
        max_unacked_updates,
        auto_partner_down,
        peer_software,
        shared_secret_file,
        max_lease_time,
    })
}

fn flat<T>(v: Option<Option<T>>) -> Option<T> {
    v.flatten()
}
