//! Every class of configuration error, each reported at its exact line (and column where it matters),
//! and all errors of a file reported together.
use control::config::{self, ConfigError};

/// Lines 1-2; what a test adds starts on line 3.
const HEAD: &str = "[server]\ninterfaces = [\"eth0\"]\n";

/// A valid primary relationship named "fo", 7 lines.
const FAILOVER: &str = "[[failover]]\nname = \"fo\"\nrole = \"primary\"\naddress = \"192.0.2.1\"\npeer_address = \"192.0.2.2\"\nmclt = \"1h\"\nsplit = 128\nshared_secret_file = \"/s\"\n";

fn errors(src: &str) -> Vec<ConfigError> {
    match config::parse(src) {
        Ok(c) => panic!("expected errors, parsed {c:#?}\n--- source:\n{src}"),
        Err(e) => {
            assert!(!e.is_empty());
            e
        }
    }
}

/// Exactly one error, on `line`, containing `needle`; returns it.
#[track_caller]
fn one(src: &str, line: u32, needle: &str) -> ConfigError {
    let e = errors(src);
    assert_eq!(
        e.len(),
        1,
        "expected one error, got {e:#?}\n--- source:\n{src}"
    );
    assert_eq!(
        e[0].line, line,
        "wrong line for {:?}\n--- source:\n{src}",
        e[0]
    );
    assert!(
        e[0].message.contains(needle),
        "{:?} lacks {needle:?}",
        e[0].message
    );
    e.into_iter().next().expect("one")
}

fn with(body: &str) -> String {
    format!("{HEAD}{body}")
}

#[test]
fn syntax() {
    let e = one("[server\ninterfaces = []\n", 1, "TOML syntax");
    assert_eq!(e.col, 8);
    one(&with("workers = \n"), 3, "TOML syntax");
    one(&with("workers = 1\nworkers = 2\n"), 4, "TOML syntax");
}

#[test]
fn types() {
    let e = one(
        &with("workers = \"4\"\n"),
        3,
        "`workers` must be an integer, found a string",
    );
    assert_eq!(e.col, 11);
    one(&with("datapath = 1\n"), 3, "`datapath` must be a string");
    one(
        "[server]\ninterfaces = \"eth0\"\n",
        2,
        "`interfaces` must be an array",
    );
    one("[server]\ninterfaces = [1]\n", 2, "must be a string");
    one(
        &with("[[subnet]]\nprefix = \"10.0.0.0/8\"\nlease_time = 3600\n"),
        5,
        "duration string",
    );
    one("server = 1\n", 1, "[server] must be a table");
    one(&format!("subnet = 1\n{HEAD}"), 1, "array of tables");
    one(
        &with("[[subnet]]\nprefix = \"10.0.0.0/8\"\npools = \"10.0.0.1-10.0.0.9\"\n"),
        5,
        "must be an array",
    );
    one(
        &with(
            "[[failover]]\nname = 7\nrole = \"secondary\"\naddress = \"192.0.2.1\"\npeer_address = \"192.0.2.2\"\npeer_software = \"isc-dhcpd\"\n",
        ),
        4,
        "`name` must be a string",
    );
}

#[test]
fn unknown_keys() {
    let e = one(
        &with("intefaces = [\"eth1\"]\n"),
        3,
        "unknown key `intefaces` in [server]",
    );
    assert_eq!(e.col, 1);
    assert!(
        e.message.contains("interfaces"),
        "lists the known keys: {}",
        e.message
    );
    one(&with("[serverr]\n"), 3, "unknown key `serverr` in the file");
    one(
        &with("[[subnet]]\nprefix = \"10.0.0.0/8\"\nrange = \"x\"\n"),
        5,
        "unknown key `range` in [[subnet]] #1",
    );
    one(
        &with(
            "[[subnet]]\nprefix = \"10.0.0.0/8\"\n[[subnet.reservation]]\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.5\"\nip = \"10.0.0.6\"\n",
        ),
        8,
        "unknown key `ip` in [[subnet.reservation]] #1 of [[subnet]] #1",
    );
    one(
        &with(&format!("{FAILOVER}secret = \"x\"\n")),
        11,
        "unknown key `secret` in [[failover]] #1",
    );
}

#[test]
fn server_values() {
    one("[server]\ninterfaces = []\n", 2, "at least one interface");
    one(
        "[server]\ndatapath = \"xdp\"\n",
        1,
        "missing key `interfaces` in [server]",
    );
    one(
        "[[subnet]]\nprefix = \"10.0.0.0/8\"\n",
        1,
        "missing [server] table",
    );
    one(
        "[server]\ninterfaces = [\"eth0\", \"eth0\"]\n",
        2,
        "listed twice",
    );
    one(
        &with("server_id = \"192.0.2.300\"\n"),
        3,
        "not an IPv4 address",
    );
    one(
        &with("datapath = \"dpdk\"\n"),
        3,
        "`datapath` = \"dpdk\" is not one of \"xdp\", \"packet\", \"auto\"",
    );
    let e = one(
        &with("workers = 2\ndispatch = \"spread\"\n"),
        4,
        "`dispatch` = \"spread\" is not one of \"auto\", \"off\"",
    );
    assert_eq!(e.col, 12, "{e:?}");
    one(
        &with("durability = \"never\"\n"),
        3,
        "`durability` = \"never\" is not one of \"sync\", \"async\"",
    );
    one(
        &with("workers = 5000\n"),
        3,
        "`workers` = 5000 is out of range 0..=1024",
    );
    one(&with("workers = -1\n"), 3, "out of range");
    one(&with("admin = \"localhost\"\n"), 3, "`admin`");
    one(
        &with("http = \"localhost:80\"\n"),
        3,
        "`http` = \"localhost:80\" is not an address:port such as \"127.0.0.1:9167\"",
    );
    one(
        &with("bulk_leasequery = \"67\"\n"),
        3,
        "`bulk_leasequery` = \"67\" is not an address:port such as \"0.0.0.0:67\"",
    );
    one(
        &with("leasequery_from = [\"10.0.0.0/33\"]\n"),
        3,
        "`leasequery_from`",
    );
    one(
        &with("http_tls_cert = \"/c.pem\"\n"),
        3,
        "`http_tls_cert` without `http_tls_key`: give both, or neither",
    );
    one(
        &with("http_auth = \"off\"\n"),
        3,
        "`http_auth` = \"off\" is not one of \"auto\", \"on\"",
    );
    one(&with("log_level = \"info,[\"\n"), 3, "not a log filter");
    one(
        &with("log_format = \"xml\"\n"),
        3,
        "`log_format` = \"xml\" is not one of \"text\", \"json\"",
    );
    // Span and field filters compile regular expressions: refused (the fuzzer found one
    // that compiled for minutes).
    one(
        &with("log_level = \"[x{a=zzzz%zz|zz}]=debug\"\n"),
        3,
        "span and field filters are not supported",
    );
    one(
        &with("log_level = \"control=loud\"\n"),
        3,
        "the level is one of",
    );
    one(&with("data_dir = \"\"\n"), 3, "must not be empty");
    let e = one(
        &with("trusted_relays = [\"10.0.0.1\", \"10.0.0.1/8\"]\n"),
        3,
        "`trusted_relays`: ",
    );
    assert_eq!(e.col, 31, "{e:?}");
    one(
        &with("trusted_relays = [\"relay-1\"]\n"),
        3,
        "\"relay-1\" is not an IPv4 address or prefix",
    );
    one(
        &with("trusted_relays = \"10.0.0.1\"\n"),
        3,
        "must be an array",
    );
    one(
        &with("mac_rate = -1\n"),
        3,
        "`mac_rate` = -1 is out of range 0..=1000000",
    );
    one(
        &with("relay_burst = 0\n"),
        3,
        "`relay_burst` = 0 is out of range 1..=4000000",
    );
    one(
        &with("mac_rate = 5\nmac_decline_rate = -1\n"),
        4,
        "`mac_decline_rate` = -1 is out of range 0..=1000000",
    );
    one(
        &with("relay_decline_rate = \"100/h\"\n"),
        3,
        "`relay_decline_rate` must be an integer, found a string",
    );
    one(
        &with("relay_decline_rate = 1000001\n"),
        3,
        "`relay_decline_rate` = 1000001 is out of range 0..=1000000",
    );
    one(
        &with("mac_decline_burst = 5\n"),
        3,
        "unknown key `mac_decline_burst` in [server]",
    );
}

#[test]
fn subnet_values() {
    let s = |body: &str| with(&format!("[[subnet]]\n{body}"));
    one(
        &s("pools = []\n"),
        3,
        "missing key `prefix` in [[subnet]] #1",
    );
    one(
        &s("prefix = \"10.0.0.1/16\"\n"),
        4,
        "host bits are set (did you mean 10.0.0.0/16?)",
    );
    one(&s("prefix = \"10.0.0.0/33\"\n"), 4, "length must be 0..=32");
    one(&s("prefix = \"10.0.0.0\"\n"), 4, "expected ADDRESS/LENGTH");
    one(
        &s("prefix = \"10.0.0.0/16\"\npools = [\"10.1.0.1-10.1.0.9\"]\n"),
        5,
        "pool 10.1.0.1-10.1.0.9 is outside the subnet's prefix 10.0.0.0/16",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\npools = [\"10.0.0.0-10.0.0.9\"]\n"),
        5,
        "network or broadcast",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\npools = [\"10.0.0.9-10.0.0.1\"]\n"),
        5,
        "is after",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\npools = [\"10.0.0.1-10.0.0.x\"]\n"),
        5,
        "is not an IPv4 address",
    );
    one(
        &s(
            "prefix = \"10.0.0.0/24\"\npools = [\n  \"10.0.0.1-10.0.0.100\",\n  \"10.0.0.50-10.0.0.150\",\n]\n",
        ),
        7,
        "overlaps pool 10.0.0.1-10.0.0.100 (line 6)",
    );
    one(
        &s(
            "prefix = \"10.0.0.0/24\"\npools = [\"10.0.0.10-10.0.0.100\"]\nexclude = [\"10.0.0.5-10.0.0.20\"]\n",
        ),
        6,
        "exclusion 10.0.0.5-10.0.0.20 is not inside one of the subnet's pools",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\nrouter = [\"10.0.0.256\"]\n"),
        5,
        "`router`: \"10.0.0.256\" is not an IPv4 address",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\ndns = [\"::1\"]\n"),
        5,
        "`dns`",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\ndomain_name = \"bad domain\"\n"),
        5,
        "not a domain name",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\ninterface = \"eth9\"\n"),
        5,
        "not one of server.interfaces",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\nlease_time = \"0s\"\n"),
        5,
        "longer than 0s",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\nlease_time = \"1 hour\"\n"),
        5,
        "invalid duration",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\nlease_time = \"1h\"\nrenewal_time = \"2h\"\n"),
        6,
        "`renewal_time` must be",
    );
    let e = errors(&s(
        "prefix = \"10.0.0.0/24\"\nlease_time = \"1h\"\nrenewal_time = \"30m\"\nrebinding_time = \"20m\"\n",
    ));
    let lines: Vec<u32> = e.iter().map(|e| e.line).collect();
    assert_eq!(lines, [6, 7], "{e:#?}");
    one(
        &s("prefix = \"10.0.0.0/24\"\nlease_time = \"1h\"\nrebinding_time = \"2h\"\n"),
        6,
        "`rebinding_time` must be",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\ndecline_probation = \"soon\"\n"),
        5,
        "`decline_probation`",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\nmax_abandoned_percent = 101\n"),
        5,
        "`max_abandoned_percent` = 101 is out of range 0..=100",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\nmax_abandoned_percent = -5\n"),
        5,
        "`max_abandoned_percent` = -5 is out of range 0..=100",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\nmax_abandoned_percent = \"10%\"\n"),
        5,
        "`max_abandoned_percent` must be an integer, found a string",
    );
    one(
        &s("prefix = \"10.0.0.0/24\"\nfailover = \"nope\"\n"),
        5,
        "the subnet names failover relationship \"nope\", which is not defined",
    );
    let e = one(
        &format!(
            "{HEAD}[[subnet]]\nprefix = \"10.0.0.0/16\"\n\n[[subnet]]\nprefix = \"10.0.128.0/17\"\n"
        ),
        7,
        "subnet 10.0.128.0/17 overlaps subnet 10.0.0.0/16 (line 4)",
    );
    assert_eq!(e.col, 10);
}

#[test]
fn reservations() {
    let r = |body: &str| with(&format!("[[subnet]]\nprefix = \"10.0.0.0/24\"\n{body}"));
    one(
        &r("[[subnet.reservation]]\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.1.5\"\n"),
        7,
        "reserved address 10.0.1.5 is outside the subnet's prefix 10.0.0.0/24",
    );
    one(
        &r("[[subnet.reservation]]\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.255\"\n"),
        7,
        "network or broadcast",
    );
    one(
        &r(
            "[[subnet.reservation]]\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.5\"\n[[subnet.reservation]]\nmac = \"02:00:00:00:00:02\"\naddress = \"10.0.0.5\"\n",
        ),
        10,
        "address 10.0.0.5 is already reserved on line 7",
    );
    one(
        &r(
            "[[subnet.reservation]]\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.5\"\n[[subnet.reservation]]\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.6\"\n",
        ),
        8,
        "already has a reservation in this subnet on line 5",
    );
    one(
        &format!(
            "{HEAD}trusted_relays = [\"10.0.0.1\"]\n[[subnet]]\nprefix = \"10.0.0.0/24\"\n[[subnet.reservation]]\ncircuit_id = \"a\"\naddress = \"10.0.0.5\"\n[[subnet.reservation]]\ncircuit_id_hex = \"61\"\naddress = \"10.0.0.6\"\n"
        ),
        9,
        "already has a reservation",
    );
    // Option 82 is read only from trusted relays: without any, such a reservation is dead.
    one(
        &r("[[subnet.reservation]]\nremote_id = \"cpe\"\naddress = \"10.0.0.5\"\n"),
        5,
        "`server.trusted_relays`, which is empty",
    );
    one(
        &r("[[subnet.reservation]]\nmac = \"02:00:00:00:01\"\naddress = \"10.0.0.5\"\n"),
        6,
        "not a MAC address",
    );
    one(
        &r("[[subnet.reservation]]\nclient_id = \"xyz\"\naddress = \"10.0.0.5\"\n"),
        6,
        "not hex bytes",
    );
    one(
        &r("[[subnet.reservation]]\nremote_id = \"\"\naddress = \"10.0.0.5\"\n"),
        6,
        "1 to 255 bytes",
    );
    one(
        &r("[[subnet.reservation]]\naddress = \"10.0.0.5\"\n"),
        5,
        "needs one of `mac`",
    );
    one(
        &r(
            "[[subnet.reservation]]\nmac = \"02:00:00:00:00:01\"\nremote_id = \"x\"\naddress = \"10.0.0.5\"\n",
        ),
        7,
        "exactly one of",
    );
    one(
        &r("[[subnet.reservation]]\nmac = \"02:00:00:00:00:01\"\n"),
        5,
        "missing key `address`",
    );
    one(
        &r("[[subnet.reservation]]\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0\"\n"),
        7,
        "not an IPv4 address",
    );
}

#[test]
fn failover_values() {
    let f = |replace: &str, by: &str| with(&FAILOVER.replace(replace, by));
    one(
        &f("split = 128", "split = 257"),
        9,
        "`split` = 257 is out of range 0..=256",
    );
    one(
        &f("role = \"primary\"", "role = \"master\""),
        5,
        "`role` = \"master\" is not one of \"primary\", \"secondary\"",
    );
    one(
        &f("split = 128", "mode = \"active-active\""),
        9,
        "`mode` = \"active-active\" is not one of \"load-balance\", \"hot-standby\"",
    );
    one(
        &f("split = 128", "manage_port = 647"),
        9,
        "`manage_port` is the failover `port`",
    );
    one(
        &f(
            "shared_secret_file = \"/s\"",
            "peer_software = \"isc-dhcpd\"\nreplicate = \"auto\"",
        ),
        11,
        "`replicate = \"auto\"` needs a tandem partner",
    );
    one(
        &f("split = 128", "peer_manage_port = 0"),
        9,
        "`peer_manage_port` = 0 is out of range 1..=65535",
    );
    one(
        &f("split = 128", "reserve_percent = 101"),
        9,
        "`reserve_percent` = 101 is out of range 0..=100",
    );
    one(
        &f("mclt = \"1h\"", "mclt = \"0s\""),
        8,
        "`mclt` must be longer than 0s",
    );
    one(
        &f("mclt = \"1h\"\n", ""),
        3,
        "missing key `mclt` in [[failover]] #1",
    );
    one(&f("name = \"fo\"\n", ""), 3, "missing key `name`");
    one(
        &f(
            "peer_address = \"192.0.2.2\"",
            "peer_address = \"192.0.2.1\"",
        ),
        7,
        "our own `address`:`port`",
    );
    one(
        &f("address = \"192.0.2.1\"", "address = \"192.0.2\""),
        6,
        "`address`: \"192.0.2\" is not an IPv4 address",
    );
    one(
        &f("split = 128", "port = 70000"),
        9,
        "out of range 1..=65535",
    );
    one(
        &f("split = 128", "max_response_delay = \"0s\""),
        9,
        "`max_response_delay` must be longer than 0s",
    );
    one(
        &f("split = 128", "max_unacked_updates = 0"),
        9,
        "out of range",
    );
    one(
        &f("split = 128", "max_lease_time = \"0s\""),
        9,
        "`max_lease_time` must be longer than 0s",
    );
    one(
        &f("mclt = \"1h\"", "mclt = \"8d\""),
        8,
        "`mclt` must be at most 7d",
    );
    one(
        &f("split = 128", "auto_partner_down = \"never\""),
        9,
        "`auto_partner_down`",
    );
    let twice = with(&format!(
        "{FAILOVER}{}",
        FAILOVER.replace("192.0.2.", "198.51.100.")
    ));
    let e = one(
        &twice,
        12,
        "failover relationship \"fo\" is already defined on line 4",
    );
    assert_eq!(e.col, 8);
}

#[test]
fn all_errors_of_a_file_are_reported_in_order() {
    let src = "\
[server]
interfaces = [\"eth0\"]
workers = 99999
datapath = \"fast\"

[[subnet]]
prefix = \"10.0.0.0/24\"
pools = [\"10.0.1.1-10.0.1.9\"]
failover = \"missing\"
colour = \"blue\"

[[subnet.reservation]]
mac = \"nope\"
address = \"10.0.0.5\"

[[failover]]
name = \"x\"
role = \"boss\"
address = \"192.0.2.1\"
peer_address = \"192.0.2.2\"
split = 300
";
    let e = errors(src);
    let got: Vec<(u32, u32)> = e.iter().map(|e| (e.line, e.col)).collect();
    assert_eq!(
        got,
        [
            (3, 11),
            (4, 12),
            (8, 10),
            (9, 12),
            (10, 1),
            (13, 7),
            // The relationship (line 16) has no shared secret.
            (16, 1),
            (18, 8),
            (21, 9)
        ],
        "{e:#?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, src).expect("write");
    let Err(config::LoadError::Invalid(errs)) = config::load(&path) else {
        panic!("load must fail")
    };
    let text = errs.to_string();
    let first = text.lines().next().expect("a line");
    assert_eq!(
        first,
        format!(
            "{}:3:11: `workers` = 99999 is out of range 0..=1024",
            path.display()
        )
    );
    assert_eq!(text.lines().count(), 9);
    assert!(
        text.contains(":9:12: the subnet names failover relationship \"missing\""),
        "{text}"
    );
}

#[test]
fn unreadable_file() {
    let err =
        config::load(std::path::Path::new("/nonexistent/tandem.toml")).expect_err("missing file");
    assert!(matches!(err, config::LoadError::Io { .. }));
    assert!(
        err.to_string().starts_with("/nonexistent/tandem.toml: "),
        "{err}"
    );
}

#[test]
fn garbage_never_panics() {
    // A few hostile inputs: deep nesting, odd types at every level, non-UTF-8-looking escapes.
    for src in [
        "",
        "[[server]]\ninterfaces = [\"eth0\"]\n",
        "[server]\ninterfaces = [[\"eth0\"]]\n",
        "[server]\ninterfaces = [\"eth0\"]\n[[subnet]]\nprefix = \"10.0.0.0/8\"\nreservation = 5\n",
        "[server]\ninterfaces = [\"eth0\"]\n[[subnet]]\nprefix = \"10.0.0.0/8\"\n[subnet.reservation]\nmac = 1\n",
        "[server]\ninterfaces = [\"eth0\"]\nserver_id = 1979-05-27T07:32:00Z\n",
        "[server]\ninterfaces = [\"eth0\"]\nworkers = 1.5\n",
        "[server]\ninterfaces = [\"\u{e9}\u{e9}\"]\n[[subnet]]\nprefix = \"\u{e9}/\u{e9}\"\n",
        "failover = [1, 2]\n",
        "[server]\ninterfaces = [\"eth0\"]\n[[subnet]]\nprefix = \"0.0.0.0/0\"\npools = [\"0.0.0.0/0\"]\n",
    ] {
        let _ = config::parse(src);
    }
}

#[test]
fn mutations_of_a_valid_file_never_panic_and_point_inside_it() {
    let base = format!(
        "{HEAD}datapath = \"xdp\"\n[[subnet]]\nprefix = \"10.0.0.0/24\"\npools = [\"10.0.0.10-10.0.0.99\"]\nexclude = [\"10.0.0.20\"]\nlease_time = \"1h30m\"\nfailover = \"fo\"\n[[subnet.reservation]]\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.5\"\n{FAILOVER}"
    );
    config::parse(&base).unwrap_or_else(|e| panic!("base must be valid: {e:#?}"));
    let lines = u32::try_from(base.lines().count()).expect("small") + 1;
    let replacements = [
        "",
        "x",
        "\"",
        "]",
        "[",
        "=",
        "\n",
        "0",
        ".",
        "é",
        "999999999999",
    ];
    let chars: Vec<(usize, char)> = base.char_indices().collect();
    for (i, (at, c)) in chars.iter().enumerate() {
        let r = replacements[i % replacements.len()];
        let mutated = format!("{}{r}{}", &base[..*at], &base[at + c.len_utf8()..]);
        if let Err(errors) = config::parse(&mutated) {
            assert!(!errors.is_empty());
            for e in errors {
                assert!(
                    e.line >= 1 && e.line <= lines + 1 && e.col >= 1,
                    "{e:?} for mutation at {at}"
                );
            }
        }
    }
}

#[test]
fn authentication_is_on_by_default_between_tandem_peers() {
    let without = FAILOVER.replace("shared_secret_file = \"/s\"\n", "");
    let e = one(&with(&without), 3, "`shared_secret_file` is required");
    assert!(e.message.contains("tandemctl secret"), "{e:?}");
    assert!(e.message.contains("peer_software = \"isc-dhcpd\""), "{e:?}");
    // An ISC dhcpd partner has no digest: no secret needed, and none taken.
    let isc = format!("{without}peer_software = \"isc-dhcpd\"\n");
    config::parse(&with(&isc)).unwrap_or_else(|e| panic!("{e:?}"));
    one(
        &with(&format!("{FAILOVER}peer_software = \"isc-dhcpd\"\n")),
        10,
        "ISC dhcpd has no message digest",
    );
    one(
        &with(&format!("{FAILOVER}peer_software = \"kea\"\n")),
        11,
        "`peer_software`",
    );
}
