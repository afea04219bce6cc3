//! `tandemctl`: the operator CLI (DESIGN.md §6). Talks to `tandemd` over the admin API.
//!
//! Exit status: 0 success, 1 the daemon is unreachable or refused the request, 2 bad usage.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::admin::{self, Request, Response, Target};
use crate::audit::AuditEntry;
use crate::config::{self, DEFAULT_DATA_DIR, LoadError};
use crate::status::{
    ConfigCheck, LeaseFilter, LeaseInfo, LeaseState, RelationshipDetail, RelationshipStatus, Status,
};
use crate::time::{TimeError, format_duration, format_rfc3339, parse_time};

const HELP: &str = "\
tandemctl: control a running tandemd

Usage:
  tandemctl [--config FILE | --data-dir DIR | --admin ADDR] <verb> ...

Verbs:
  status [--json]                      relationships, workers and their counters, leases by state
  leases [--json | --csv] [--all] [--subnet PREFIX] [--state STATE] [--limit N] [--after IP]
         [--ip IP] [--mac MAC] [--client-id HEX] [--circuit-id ID] [--remote-id ID]
         [--hostname NAME]
                                       leases in address order (default: the bound ones,
                                       state active; a lookup by --ip, --mac, --client-id,
                                       the option 82 --circuit-id / --remote-id they were
                                       granted through (text, or 0x and hex) or the client's
                                       --hostname shows any state); an answer cut at --limit (default
                                       100000) says where the next page starts (--after);
                                       --all follows to the end
  partner-down NAME [--since TIME]     the partner of relationship NAME is down, last known up at
                                       TIME (RFC 3339 UTC, e.g. 2026-11-22T04:00:00Z, or Unix
                                       seconds; default now), but no earlier than it was last
                                       heard from: the MCLT is waited out from that time
  reload [--json]                      re-reads the daemon's configuration file and applies what
                                       changed without a restart (options, lease times, pools and
                                       exclusions, reservations, relays, rate limits, log
                                       level), or refuses
                                       the whole file with every reason (also: SIGHUP)
  failover list [--json]               every failover relationship: roles, mode, states, link,
                                       scopes, and whether the partner is configured alike
  failover show NAME [--json]          one relationship: every setting, own and partner state,
                                       the link and since when, unacknowledged updates, the
                                       partner's settings as it showed them and how they differ
                                       from ours, and each scope's leases by state
  failover resync NAME [--wait]        asks the partner for every binding it has (UPDREQALL, in
                                       normal); --wait shows the bindings as they arrive until
                                       the partner's UPDDONE (at most 10 minutes)
  replicate scope PREFIX | relationship NAME | server [--json]
                                       the scope's (or every scope's of the relationship, or
                                       of every tandem relationship) options, lease times,
                                       pools, exclusions and reservations replace the tandem
                                       partner's: written into its file and applied live, or
                                       refused whole (leases travel by failover, not here)
  audit [--json] [--limit N]           the last N changes asked of the daemon (default 100):
                                       when, who (uid, or the TCP peer), what, and the answer
  import isc|kea --conf FILE [--leases FILE] --output FILE [--interface IF]...
         [--shared-secret-file FILE] [--no-leases] [--dry-run]
                                       migration: reads ISC dhcpd's dhcpd.conf and dhcpd.leases
                                       (or Kea's kea-dhcp4.conf and kea-leases4.csv), reports
                                       every statement with its line (translated,
                                       approximated, unsupported), writes the tandem
                                       configuration to --output and the leases, with their
                                       states and the failover state, into --data-dir (a new
                                       one; default /var/lib/tandem); the partner is ISC
                                       dhcpd unless --shared-secret-file names tandem's
                                       secret; --no-leases imports none on purpose; a lease
                                       still bound outside the new subnets refuses it all
                                       (needs no daemon)
  token add NAME --role ROLE           makes an HTTP API token (ROLE: read-only, or dhcp-admin for
                                       partner-down and the audit log), prints it once, keeps
                                       only its hash in data_dir (needs no daemon)
  token list | token remove NAME       the tokens by name and role; forget one (at once)
  secret FILE                          writes a new failover shared secret (256 random bits, hex)
                                       to FILE, readable by its owner only; copy it to the
                                       partner and name it in shared_secret_file on both
                                       (needs no daemon)

Where the daemon is found:
  --config FILE    the Unix socket in FILE's server.data_dir
  --data-dir DIR   the Unix socket DIR/tandemd.sock
  --admin ADDR     HOST:PORT (server.admin), the path of a socket, or http://HOST:PORT or
                   https://HOST:PORT, the HTTP API (server.http), with the token in the file
                   TANDEM_TOKEN_FILE names or in TANDEM_TOKEN; HTTPS trusts the certificates in
                   TANDEM_CA_FILE, else the system's
  (default: /var/lib/tandem/tandemd.sock)

Exit status: 0 success, 1 the daemon is unreachable or refused, 2 bad usage.";

/// Where to find the daemon, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// Nothing given: the default data_dir.
    Default,
    /// `--config FILE`.
    Config(PathBuf),
    /// `--data-dir DIR`.
    DataDir(PathBuf),
    /// `--admin ADDR`.
    Admin(String),
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `status [--json]`.
    Status {
        /// Print the raw document.
        json: bool,
    },
    /// `leases [--json | --csv] [--all] [--subnet P] [--state S] [--ip A] [--mac M]
    /// [--client-id C] [--after A] [--limit N]`.
    Leases {
        /// Print the raw list.
        json: bool,
        /// Print comma-separated values with a header.
        csv: bool,
        /// Follow the cursor to the end, a page of `limit` (default the cap) at a time.
        all: bool,
        /// What to list.
        filter: LeaseFilter,
    },
    /// `partner-down NAME [--since TIME]`.
    PartnerDown {
        /// The relationship.
        name: String,
        /// Unix seconds; `None` = now (the daemon's clock).
        since: Option<u64>,
    },
    /// `audit [--json] [--limit N]`.
    Audit {
        /// Print the raw list.
        json: bool,
        /// How many entries (the daemon's default when `None`).
        limit: Option<usize>,
    },
    /// `reload [--json]`.
    Reload {
        /// Print the raw answer.
        json: bool,
    },
    /// `replicate scope PREFIX | relationship NAME | server [--json]`.
    Replicate {
        /// Every scope of this relationship.
        relationship: Option<String>,
        /// Only this scope.
        scope: Option<String>,
        /// Print the raw answer.
        json: bool,
    },
    /// `failover resync NAME [--wait]`.
    Resync {
        /// The relationship.
        name: String,
        /// Follow the progress until the partner's UPDDONE.
        wait: bool,
    },
    /// `failover list [--json]` (`name: None`) or `failover show NAME [--json]`.
    Failover {
        /// `show`'s relationship.
        name: Option<String>,
        /// Print the raw documents.
        json: bool,
    },
    /// `secret FILE`: a new shared secret, written locally.
    Secret {
        /// Where to write it (a new file).
        path: PathBuf,
    },
    /// `import isc|kea --conf FILE ...`: another server's files into a tandem configuration
    /// and lease tables (no daemon; the data directory must be new).
    Import(crate::import::Args),
    /// `token add NAME --role ROLE | token list | token remove NAME`: the HTTP API's tokens,
    /// in `data_dir` (no daemon needed; it rereads the file).
    Token(TokenVerb),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// What `token` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenVerb {
    /// Make one and print it (the only time it is shown).
    Add {
        name: String,
        role: crate::tokens::Role,
    },
    /// Every token's name, role and age (never the token).
    List,
    /// Forget one.
    Remove { name: String },
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Where.
    pub locator: Locator,
    /// What.
    pub verb: Verb,
}

/// What is wrong with a `tandemctl` command line (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("give only one of --config, --data-dir, --admin")]
    TwoLocators,
    #[error("a verb is required (status, leases, partner-down, reload, audit, token, secret)")]
    NoVerb,
    #[error("{0} needs a value")]
    NeedsValue(&'static str),
    #[error("{0}")]
    Import(String),
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    #[error(
        "unknown verb {0:?} (known: status, leases, partner-down, reload, audit, token, secret)"
    )]
    UnknownVerb(String),
    #[error("{verb}: unexpected argument {arg:?}")]
    Unexpected { verb: &'static str, arg: String },
    #[error("leases: --subnet: {0}")]
    Subnet(config::PrefixError),
    #[error("leases: --state {0:?} is not one of {states}", states = LeaseState::ALL.map(LeaseState::as_str).join(", "))]
    State(String),
    #[error("leases: {0:?} is not an IPv4 address")]
    Address(String),
    #[error("leases: --mac {0:?} is not a hardware address (02:00:00:00:00:01)")]
    Mac(String),
    #[error("leases: --client-id {0:?} is not hex bytes (01:02:00:00:00:00:01)")]
    ClientId(String),
    #[error("leases: {0:?} is not a relay id or host name (text, or 0x and hex digits)")]
    RelayId(String),
    #[error("leases: give one of --json and --csv")]
    JsonAndCsv,
    #[error("{0}: --limit {1:?} is not a count")]
    Limit(&'static str, String),
    #[error("partner-down: --since needs a TIME")]
    SinceNeedsTime,
    #[error("partner-down: --since: {0}")]
    Since(TimeError),
    #[error("partner-down: unknown option {0:?}")]
    PartnerDownOption(String),
    #[error("partner-down: give one relationship NAME")]
    TwoNames,
    #[error("partner-down: the relationship NAME is required")]
    NoName,
    #[error("secret: give one FILE to write")]
    SecretFile,
    #[error("token: add NAME --role read-only|dhcp-admin, list, or remove NAME")]
    Token,
}

/// Parses `tandemctl`'s arguments (without the program name).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Invocation, UsageError> {
    let mut args = args.into_iter().peekable();
    let mut locator = Locator::Default;
    let set = |l: Locator, locator: &mut Locator| {
        if *locator != Locator::Default {
            return Err(UsageError::TwoLocators);
        }
        *locator = l;
        Ok(())
    };
    let verb = loop {
        let Some(arg) = args.next() else {
            return Err(UsageError::NoVerb);
        };
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &'static str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(UsageError::NeedsValue(name))
        };
        match flag.as_str() {
            "--help" | "-h" | "help" => {
                return Ok(Invocation {
                    locator,
                    verb: Verb::Help,
                });
            }
            "--version" | "-V" => {
                return Ok(Invocation {
                    locator,
                    verb: Verb::Version,
                });
            }
            "--config" | "-c" => set(Locator::Config(value("--config")?.into()), &mut locator)?,
            "--data-dir" => set(Locator::DataDir(value("--data-dir")?.into()), &mut locator)?,
            "--admin" => set(Locator::Admin(value("--admin")?), &mut locator)?,
            _ if flag.starts_with('-') => return Err(UsageError::UnknownOption(arg)),
            _ => break arg,
        }
    };
    let rest: Vec<String> = args.collect();
    let verb = match verb.as_str() {
        "status" => {
            let mut json = false;
            for a in &rest {
                match a.as_str() {
                    "--json" => json = true,
                    other => {
                        return Err(UsageError::Unexpected {
                            verb: "status",
                            arg: other.to_owned(),
                        });
                    }
                }
            }
            Verb::Status { json }
        }
        "leases" => {
            let (mut json, mut csv, mut all) = (false, false, false);
            let mut filter = LeaseFilter::default();
            let mut it = rest.into_iter();
            while let Some(a) = it.next() {
                let (flag, inline) = match a.split_once('=') {
                    Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                    None => (a.clone(), None),
                };
                let mut value = |name: &'static str| {
                    inline
                        .clone()
                        .or_else(|| it.next())
                        .ok_or(UsageError::NeedsValue(name))
                };
                match flag.as_str() {
                    "--json" => json = true,
                    "--csv" => csv = true,
                    "--all" => all = true,
                    "--ip" => {
                        let a = value("leases: --ip")?;
                        filter.address = Some(a.parse().map_err(|_| UsageError::Address(a))?);
                    }
                    "--after" => {
                        let a = value("leases: --after")?;
                        filter.after = Some(a.parse().map_err(|_| UsageError::Address(a))?);
                    }
                    "--mac" => {
                        let m = value("leases: --mac")?;
                        config::parse_mac(&m).ok_or_else(|| UsageError::Mac(m.clone()))?;
                        filter.mac = Some(m);
                    }
                    "--client-id" => {
                        let c = value("leases: --client-id")?;
                        config::parse_hex(&c)
                            .filter(|b| !b.is_empty())
                            .ok_or_else(|| UsageError::ClientId(c.clone()))?;
                        filter.client_id = Some(c);
                    }
                    "--circuit-id" | "--remote-id" => {
                        let v = value(if flag == "--circuit-id" {
                            "leases: --circuit-id"
                        } else {
                            "leases: --remote-id"
                        })?;
                        crate::status::relay_id_bytes(&v)
                            .ok_or_else(|| UsageError::RelayId(v.clone()))?;
                        if flag == "--circuit-id" {
                            filter.circuit_id = Some(v);
                        } else {
                            filter.remote_id = Some(v);
                        }
                    }
                    "--hostname" => {
                        let h = value("leases: --hostname")?;
                        if h.is_empty() {
                            return Err(UsageError::RelayId(h));
                        }
                        filter.hostname = Some(h);
                    }
                    "--subnet" => {
                        let p = value("leases: --subnet")?;
                        config::parse_prefix(&p).map_err(UsageError::Subnet)?;
                        filter.subnet = Some(p);
                    }
                    "--state" => {
                        let s = value("leases: --state")?;
                        let state = LeaseState::ALL
                            .into_iter()
                            .find(|st| st.as_str() == s)
                            .ok_or(UsageError::State(s))?;
                        filter.state = Some(state);
                    }
                    "--limit" => {
                        let n = value("leases: --limit")?;
                        filter.limit = Some(n.parse().map_err(|_| UsageError::Limit("leases", n))?);
                    }
                    _ => {
                        return Err(UsageError::Unexpected {
                            verb: "leases",
                            arg: a,
                        });
                    }
                }
            }
            if json && csv {
                return Err(UsageError::JsonAndCsv);
            }
            Verb::Leases {
                json,
                csv,
                all,
                filter,
            }
        }
        "partner-down" => {
            let mut name = None;
            let mut since = None;
            let mut it = rest.into_iter();
            while let Some(a) = it.next() {
                if a == "--since" || a.starts_with("--since=") {
                    let v = match a.strip_prefix("--since=") {
                        Some(v) => v.to_owned(),
                        None => it.next().ok_or(UsageError::SinceNeedsTime)?,
                    };
                    since = Some(parse_time(&v).map_err(UsageError::Since)?);
                } else if a.starts_with('-') {
                    return Err(UsageError::PartnerDownOption(a));
                } else if name.replace(a).is_some() {
                    return Err(UsageError::TwoNames);
                }
            }
            Verb::PartnerDown {
                name: name.ok_or(UsageError::NoName)?,
                since,
            }
        }
        "audit" => {
            let mut json = false;
            let mut limit = None;
            let mut it = rest.into_iter();
            while let Some(a) = it.next() {
                let (flag, inline) = match a.split_once('=') {
                    Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                    None => (a.clone(), None),
                };
                match flag.as_str() {
                    "--json" if inline.is_none() => json = true,
                    "--limit" => {
                        let n = inline
                            .or_else(|| it.next())
                            .ok_or(UsageError::NeedsValue("audit: --limit"))?;
                        limit = Some(n.parse().map_err(|_| UsageError::Limit("audit", n))?);
                    }
                    _ => {
                        return Err(UsageError::Unexpected {
                            verb: "audit",
                            arg: a,
                        });
                    }
                }
            }
            Verb::Audit { json, limit }
        }
        "reload" => match rest.as_slice() {
            [] => Verb::Reload { json: false },
            [j] if j == "--json" => Verb::Reload { json: true },
            [_, ..] => {
                return Err(UsageError::Unexpected {
                    verb: "reload",
                    arg: rest.join(" "),
                });
            }
        },
        "failover" => parse_failover(&rest)?,
        "replicate" => {
            let json = rest.iter().any(|a| a == "--json");
            let args: Vec<&str> = rest
                .iter()
                .map(String::as_str)
                .filter(|a| *a != "--json")
                .collect();
            let (relationship, scope) = match args.as_slice() {
                ["scope", p] if !p.starts_with('-') => (None, Some((*p).to_owned())),
                ["relationship", n] if !n.starts_with('-') => (Some((*n).to_owned()), None),
                ["server"] => (None, None),
                _ => {
                    return Err(UsageError::Unexpected {
                        verb: "replicate",
                        arg: if rest.is_empty() {
                            "(nothing: scope PREFIX, relationship NAME or server)".to_owned()
                        } else {
                            rest.join(" ")
                        },
                    });
                }
            };
            Verb::Replicate {
                relationship,
                scope,
                json,
            }
        }
        "secret" => match <[String; 1]>::try_from(rest) {
            Ok([path]) if !path.starts_with('-') => Verb::Secret { path: path.into() },
            _ => return Err(UsageError::SecretFile),
        },
        "token" => Verb::Token(parse_token(&rest).ok_or(UsageError::Token)?),
        "import" => Verb::Import(crate::import::parse_args(&rest).map_err(UsageError::Import)?),
        other => return Err(UsageError::UnknownVerb(other.to_owned())),
    };
    Ok(Invocation { locator, verb })
}

fn parse_failover(args: &[String]) -> Result<Verb, UsageError> {
    let json = args.iter().any(|a| a == "--json");
    let rest: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--json")
        .collect();
    match rest.as_slice() {
        ["list"] => Ok(Verb::Failover { name: None, json }),
        ["show", name] if !name.starts_with('-') => Ok(Verb::Failover {
            name: Some((*name).to_owned()),
            json,
        }),
        ["resync", name] | ["resync", name, "--wait"] if !json && !name.starts_with('-') => {
            Ok(Verb::Resync {
                name: (*name).to_owned(),
                wait: rest.len() == 3,
            })
        }
        _ => Err(UsageError::Unexpected {
            verb: "failover",
            arg: if args.is_empty() {
                "(nothing: list or show NAME)".to_owned()
            } else {
                args.join(" ")
            },
        }),
    }
}

fn parse_token(args: &[String]) -> Option<TokenVerb> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["list"] => Some(TokenVerb::List),
        ["remove", name] if !name.starts_with('-') => Some(TokenVerb::Remove {
            name: (*name).to_owned(),
        }),
        ["add", name, "--role", role] | ["add", "--role", role, name] if !name.starts_with('-') => {
            Some(TokenVerb::Add {
                name: (*name).to_owned(),
                role: crate::tokens::Role::parse(role)?,
            })
        }
        _ => None,
    }
}

/// The data directory a locator names (tokens live there); `None` for `--admin`.
fn data_dir_of(locator: &Locator) -> Result<Option<PathBuf>, ResolveError> {
    Ok(match locator {
        Locator::Default => Some(PathBuf::from(DEFAULT_DATA_DIR)),
        Locator::DataDir(d) => Some(d.clone()),
        Locator::Admin(_) => None,
        Locator::Config(path) => match config::load(path) {
            Ok(c) => Some(c.server.data_dir),
            Err(LoadError::Invalid(errors)) => return Err(ResolveError::InvalidConfig(errors)),
            Err(e) => return Err(ResolveError::ReadConfig(e)),
        },
    })
}

/// `tandemctl token ...`.
fn run_token(locator: &Locator, verb: &TokenVerb, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let dir = match data_dir_of(locator) {
        Ok(Some(d)) => d,
        Ok(None) => {
            let _ = writeln!(
                err,
                "tandemctl: token: tokens live in data_dir: give --data-dir or --config, not --admin"
            );
            return 2;
        }
        Err(e) => {
            let _ = writeln!(err, "tandemctl: {e}");
            return 1;
        }
    };
    let result = match verb {
        TokenVerb::Add { name, role } => crate::tokens::add(&dir, name, *role).map(|token| {
            let _ = writeln!(out, "{token}");
            let _ = writeln!(
                err,
                "token {name:?} ({}) made: give it as \"Authorization: Bearer TOKEN\"; it is not shown again",
                role.as_str()
            );
        }),
        TokenVerb::List => crate::tokens::list(&dir).map(|entries| {
            if entries.is_empty() {
                let _ = writeln!(out, "no tokens");
            }
            for e in entries {
                let _ = writeln!(
                    out,
                    "{:<24} {:<10} made {}",
                    e.name,
                    e.role.as_str(),
                    crate::time::format_rfc3339(e.created)
                );
            }
        }),
        TokenVerb::Remove { name } => match crate::tokens::remove(&dir, name) {
            Ok(true) => {
                let _ = writeln!(out, "token {name:?} removed");
                Ok(())
            }
            Ok(false) => {
                let _ = writeln!(err, "tandemctl: token: no token named {name:?}");
                return 1;
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "tandemctl: token: {e}");
            1
        }
    }
}

/// Why the daemon's admin API could not be located ([`resolve`]).
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The config file names it but is not valid.
    #[error("invalid config:\n{0}")]
    InvalidConfig(config::ConfigErrors),
    /// The config file could not be read.
    #[error("cannot read config {0}")]
    ReadConfig(LoadError),
    /// `TANDEM_TOKEN_FILE` could not be read.
    #[error("TANDEM_TOKEN_FILE {path}: {source}")]
    TokenFile {
        path: String,
        source: std::io::Error,
    },
}

/// The HTTP API token: the file `TANDEM_TOKEN_FILE` names, else `TANDEM_TOKEN`, else none.
fn api_token() -> Result<Option<String>, ResolveError> {
    if let Some(path) = std::env::var_os("TANDEM_TOKEN_FILE") {
        let path = path.to_string_lossy().into_owned();
        return std::fs::read_to_string(&path)
            .map(|t| Some(t.trim().to_owned()))
            .map_err(|source| ResolveError::TokenFile { path, source });
    }
    Ok(std::env::var("TANDEM_TOKEN")
        .ok()
        .map(|t| t.trim().to_owned()))
}

/// Where the daemon's admin API is, for a locator. Reads the config for [`Locator::Config`].
pub fn resolve(locator: &Locator) -> Result<Target, ResolveError> {
    Ok(match locator {
        Locator::Default => Target::Unix(PathBuf::from(DEFAULT_DATA_DIR).join(admin::SOCKET_NAME)),
        Locator::DataDir(d) => Target::Unix(d.join(admin::SOCKET_NAME)),
        Locator::Admin(a) if a.starts_with("http://") => Target::Http {
            addr: a
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            token: api_token()?,
            tls: None,
        },
        Locator::Admin(a) if a.starts_with("https://") => Target::Http {
            addr: a
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_owned(),
            token: api_token()?,
            tls: Some(std::env::var_os("TANDEM_CA_FILE").map(PathBuf::from)),
        },
        Locator::Admin(a) if a.contains('/') => Target::Unix(a.into()),
        Locator::Admin(a) => Target::Tcp(a.clone()),
        Locator::Config(path) => match config::load(path) {
            Ok(c) => Target::Unix(c.admin_socket()),
            Err(LoadError::Invalid(errors)) => return Err(ResolveError::InvalidConfig(errors)),
            Err(e) => return Err(ResolveError::ReadConfig(e)),
        },
    })
}

/// Writes 32 bytes from the kernel's random source, as 64 hex digits and a newline, to a new
/// file `path` (an existing file is never overwritten) readable by its owner only.
fn write_secret(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut raw = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    let mut text: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    text.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// `tandemctl`'s `main`.
pub fn main() -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    ExitCode::from(run(
        std::env::args().skip(1),
        &mut stdout.lock(),
        &mut stderr.lock(),
    ))
}

/// Runs one invocation, printing to `out` and `err`; returns the exit status.
pub fn run<I: IntoIterator<Item = String>>(
    args: I,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let inv = match parse_args(args) {
        Ok(i) => i,
        Err(e) => {
            let _ = writeln!(err, "tandemctl: {e}\n(see tandemctl --help)");
            return 2;
        }
    };
    let request = match &inv.verb {
        Verb::Help => {
            let _ = writeln!(out, "{HELP}");
            return 0;
        }
        Verb::Version => {
            let _ = writeln!(out, "tandemctl {}", crate::daemon::VERSION);
            return 0;
        }
        Verb::Token(t) => return run_token(&inv.locator, t, out, err),
        Verb::Import(args) => {
            let data_dir = match &inv.locator {
                Locator::DataDir(d) => d.clone(),
                Locator::Default => PathBuf::from(DEFAULT_DATA_DIR),
                Locator::Config(_) | Locator::Admin(_) => {
                    let _ = writeln!(
                        err,
                        "tandemctl: import writes a new data directory: give it with --data-dir DIR"
                    );
                    return 2;
                }
            };
            return crate::import::run(args, &data_dir, out, err);
        }
        Verb::Secret { path } => {
            return match write_secret(path) {
                Ok(()) => {
                    let _ = writeln!(
                        out,
                        "wrote a new shared secret to {}: copy it to the partner, and name it in \
                         shared_secret_file on both",
                        path.display()
                    );
                    0
                }
                Err(e) => {
                    let _ = writeln!(err, "tandemctl: secret: {}: {e}", path.display());
                    1
                }
            };
        }
        Verb::Status { .. } => Request::Status,
        Verb::Leases { filter, .. } => Request::Leases(filter.clone()),
        Verb::PartnerDown { name, since } => Request::PartnerDown {
            name: name.clone(),
            since: *since,
        },
        Verb::Audit { limit, .. } => Request::Audit { limit: *limit },
        Verb::Reload { .. } => Request::Reload,
        Verb::Failover { name, .. } => Request::Relationships { name: name.clone() },
        Verb::Resync { name, .. } => Request::Resync { name: name.clone() },
        Verb::Replicate {
            relationship,
            scope,
            ..
        } => Request::Replicate {
            relationship: relationship.clone(),
            scope: scope.clone(),
        },
    };
    let target = match resolve(&inv.locator) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "tandemctl: {e}");
            return 1;
        }
    };
    let response = match &inv.verb {
        Verb::Leases {
            all: true, filter, ..
        } => all_leases(&target, filter, err),
        _ => admin::request(&target, &request),
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "tandemctl: {e}");
            return 1;
        }
    };
    if let (Verb::Leases { all: false, .. }, Some(next)) = (&inv.verb, response.next) {
        let _ = writeln!(
            err,
            "tandemctl: more leases after {next}: --after {next} for the next page, --all for every one"
        );
    }
    if !response.ok {
        let _ = writeln!(
            err,
            "tandemctl: {}",
            response
                .error
                .as_deref()
                .unwrap_or("the daemon refused without a reason")
        );
        return 1;
    }
    let printed = match (&inv.verb, response) {
        (
            Verb::Status { json: true },
            Response {
                status: Some(s), ..
            },
        ) => serde_json::to_string_pretty(&s).map(|j| writeln!(out, "{j}")),
        (
            Verb::Status { json: false },
            Response {
                status: Some(s), ..
            },
        ) => Ok(write!(out, "{}", render_status(&s))),
        (
            Verb::Leases { json: true, .. },
            Response {
                leases: Some(l), ..
            },
        ) => serde_json::to_string_pretty(&l).map(|j| writeln!(out, "{j}")),
        (
            Verb::Leases { csv: true, .. },
            Response {
                leases: Some(l), ..
            },
        ) => Ok(write!(out, "{}", leases_csv(&l))),
        (
            Verb::Leases { .. },
            Response {
                leases: Some(l), ..
            },
        ) => Ok(write!(out, "{}", render_leases(&l))),
        (Verb::Reload { json: true }, r) => {
            serde_json::to_string_pretty(&r).map(|j| writeln!(out, "{j}"))
        }
        (Verb::Reload { json: false }, r) => Ok(write!(out, "{}", render_reload(&r))),
        (Verb::Replicate { json: true, .. }, r) => {
            serde_json::to_string_pretty(&r).map(|j| writeln!(out, "{j}"))
        }
        (Verb::Replicate { json: false, .. }, r) => {
            let mut text = format!("{}\n", r.message.as_deref().unwrap_or("replicated"));
            for c in r.changes.iter().flatten() {
                text.push_str("  ");
                text.push_str(c);
                text.push('\n');
            }
            Ok(write!(out, "{text}"))
        }
        (
            Verb::Failover { name, json: true },
            Response {
                relationships: Some(r),
                ..
            },
        ) => match (name, r.as_slice()) {
            (Some(_), [one]) => serde_json::to_string_pretty(one),
            _ => serde_json::to_string_pretty(&r),
        }
        .map(|j| writeln!(out, "{j}")),
        (
            Verb::Failover { name: None, .. },
            Response {
                relationships: Some(r),
                ..
            },
        ) => Ok(write!(out, "{}", render_failover_list(&r))),
        (
            Verb::Failover { name: Some(_), .. },
            Response {
                relationships: Some(r),
                ..
            },
        ) => Ok(write!(
            out,
            "{}",
            r.iter().map(render_failover_show).collect::<String>()
        )),
        (Verb::PartnerDown { .. }, r) => {
            Ok(writeln!(out, "{}", r.message.as_deref().unwrap_or("done")))
        }
        (Verb::Resync { name, wait }, r) => {
            let _ = writeln!(out, "{}", r.message.as_deref().unwrap_or("asked"));
            if !*wait {
                return 0;
            }
            return follow_resync(&target, name, out, err);
        }
        (Verb::Audit { json: true, .. }, Response { audit: Some(a), .. }) => {
            serde_json::to_string_pretty(&a).map(|j| writeln!(out, "{j}"))
        }
        (Verb::Audit { json: false, .. }, Response { audit: Some(a), .. }) => {
            Ok(write!(out, "{}", render_audit(&a)))
        }
        _ => {
            let _ = writeln!(
                err,
                "tandemctl: the daemon's answer lacks the expected document"
            );
            return 1;
        }
    };
    match printed {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            let _ = writeln!(err, "tandemctl: cannot print: {e}");
            1
        }
        Err(e) => {
            let _ = writeln!(err, "tandemctl: cannot encode: {e}");
            1
        }
    }
}

/// A reload's answer: a line, then each change applied.
fn render_reload(r: &Response) -> String {
    let changes = r.changes.as_deref().unwrap_or_default();
    let mut s = match changes.len() {
        0 => "configuration unchanged: nothing to apply\n".to_owned(),
        n => format!(
            "configuration reloaded: {n} change{} applied\n",
            if n == 1 { "" } else { "s" }
        ),
    };
    for c in changes {
        s.push_str("  ");
        s.push_str(c);
        s.push('\n');
    }
    s
}

/// How long `failover resync --wait` follows a resync.
const RESYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// `failover resync NAME --wait`: the bindings received, a line each time the count moves
/// (at most one a second), until the partner's UPDDONE, the link's loss, or [`RESYNC_WAIT`].
fn follow_resync(target: &Target, name: &str, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let start = std::time::Instant::now();
    let mut shown = None;
    loop {
        let request = Request::Relationships {
            name: Some(name.to_owned()),
        };
        let resync = match admin::request(target, &request) {
            Ok(r) if r.ok => r
                .relationships
                .and_then(|mut v| v.pop())
                .and_then(|d| d.status)
                .and_then(|s| s.resync),
            Ok(r) => {
                let _ = writeln!(err, "tandemctl: {}", r.error.unwrap_or_default());
                return 1;
            }
            Err(e) => {
                let _ = writeln!(err, "tandemctl: {e}");
                return 1;
            }
        };
        let Some(r) = resync else {
            let _ = writeln!(err, "tandemctl: the daemon shows no resync of {name}");
            return 1;
        };
        if shown != Some(r.bindings) && r.progress == "running" {
            let _ = writeln!(out, "resync of {name}: {} bindings received", r.bindings);
            shown = Some(r.bindings);
        }
        match r.progress.as_str() {
            "done" => {
                let secs = r.ended.unwrap_or(r.asked).saturating_sub(r.asked);
                let _ = writeln!(
                    out,
                    "resync of {name} done: {} bindings received in {}",
                    r.bindings,
                    format_duration(secs)
                );
                return 0;
            }
            "interrupted" => {
                let _ = writeln!(
                    err,
                    "tandemctl: resync of {name} interrupted by the peer link's loss after {} \
                     bindings; ask again once it is up",
                    r.bindings
                );
                return 1;
            }
            _ => {}
        }
        if start.elapsed() > RESYNC_WAIT {
            let _ = writeln!(
                err,
                "tandemctl: resync of {name} still running after {}: {} bindings so far \
                 (`tandemctl failover show {name}` follows it)",
                format_duration(RESYNC_WAIT.as_secs()),
                r.bindings
            );
            return 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// A relationship's configuration check in a word or two: `in step`, `DIFFERS`, `unknown`.
///
/// Against a tandem partner both comparisons count (the protocol's, and the scopes' over the
/// management channel); an ISC partner has only the protocol's.
fn config_word(r: &RelationshipDetail) -> &'static str {
    let Some(st) = &r.status else {
        return "unknown";
    };
    let checks: &[ConfigCheck] = if r.settings.partner_software == "isc-dhcpd" {
        &[st.config_check]
    } else {
        &[st.config_check, st.scopes_check]
    };
    if checks.contains(&ConfigCheck::Differs) {
        "DIFFERS"
    } else if checks.iter().all(|c| *c == ConfigCheck::InStep) {
        "in step"
    } else {
        "unknown"
    }
}

/// The link as `up since TIME` or `down since TIME` (`down` alone: not up since start).
fn link_words(s: &RelationshipStatus) -> String {
    match (s.link_up, s.link_since) {
        (up, 0) => (if up { "up" } else { "down" }).to_owned(),
        (up, t) => format!(
            "{} since {}",
            if up { "up" } else { "down" },
            format_rfc3339(t)
        ),
    }
}

/// `failover list`: one line per relationship.
pub fn render_failover_list(rels: &[RelationshipDetail]) -> String {
    if rels.is_empty() {
        return "no failover relationships configured\n".to_owned();
    }
    let rows: Vec<Vec<String>> = rels
        .iter()
        .map(|r| {
            let (state, partner, link) = match &r.status {
                Some(s) => (
                    s.state.to_string(),
                    s.partner_state.to_string(),
                    (if s.link_up { "up" } else { "down" }).to_owned(),
                ),
                None => ("not running".to_owned(), "-".to_owned(), "-".to_owned()),
            };
            vec![
                r.name.clone(),
                r.settings.role.as_str().to_owned(),
                r.settings.mode.as_str().to_owned(),
                r.settings.partner.clone(),
                state,
                partner,
                link,
                if r.empty {
                    "empty".to_owned()
                } else {
                    r.scopes.len().to_string()
                },
                config_word(r).to_owned(),
            ]
        })
        .collect();
    table(
        &[
            "RELATIONSHIP",
            "ROLE",
            "MODE",
            "PARTNER",
            "STATE",
            "PARTNER-STATE",
            "LINK",
            "SCOPES",
            "CONFIG",
        ],
        &rows,
    )
}

/// `failover show NAME`: every setting, the state, the partner's settings, the scopes.
pub fn render_failover_show(r: &RelationshipDetail) -> String {
    use std::fmt::Write as _;
    let c = &r.settings;
    let mut s = String::new();
    let _ = writeln!(s, "relationship {}", r.name);
    let _ = writeln!(s, "  role                      {}", c.role.as_str());
    let mode = match (
        c.load_balance_percent,
        c.split,
        c.reserve_percent,
        &c.standby_is,
    ) {
        (Some(p), Some(split), _, _) => format!(
            "load-balance, the primary answers {p} % of clients ({split} of 256 hash buckets)"
        ),
        (_, _, Some(reserve), Some(standby)) => format!(
            "hot-standby, the standby is the {standby} server and holds {reserve} % of free addresses"
        ),
        _ => c.mode.as_str().to_owned(),
    };
    let _ = writeln!(s, "  mode                      {mode}");
    let _ = writeln!(s, "  address                   {}", c.address);
    let _ = writeln!(
        s,
        "  partner                   {} ({})",
        c.partner, c.partner_software
    );
    let _ = writeln!(
        s,
        "  mclt                      {} ({} s)",
        format_duration(u64::from(c.mclt)),
        c.mclt
    );
    let _ = writeln!(
        s,
        "  safe period               {}",
        match c.safe_period {
            0 => "off (partner-down by hand)".to_owned(),
            p => format!("{} ({p} s)", format_duration(u64::from(p))),
        }
    );
    let _ = writeln!(
        s,
        "  load balance max seconds  {}",
        c.load_balance_max_seconds
    );
    let _ = writeln!(s, "  max response delay        {} s", c.max_response_delay);
    let _ = writeln!(s, "  max unacked updates       {}", c.max_unacked_updates);
    if let Some(m) = c.max_lease_time {
        let _ = writeln!(s, "  max lease time            {m} s");
    }
    let _ = writeln!(
        s,
        "  shared secret             {}",
        if c.shared_secret { "set" } else { "none" }
    );
    match &r.status {
        None => s.push_str("  state                     not running\n"),
        Some(st) => {
            let _ = writeln!(
                s,
                "  state                     {} since {}",
                st.state,
                format_rfc3339(st.state_since)
            );
            let _ = writeln!(s, "  partner state             {}", st.partner_state);
            let _ = writeln!(s, "  link                      {}", link_words(st));
            if st.last_heard > 0 {
                let _ = writeln!(
                    s,
                    "  last heard                {}",
                    format_rfc3339(st.last_heard)
                );
            }
            let _ = writeln!(
                s,
                "  updates                   {} unacknowledged, {} sent, {} refused, {} received",
                st.unacked_updates, st.updates_sent, st.updates_refused, st.updates_received
            );
            if let Some(r) = &st.resync {
                let _ = writeln!(
                    s,
                    "  resync                    {}: {} bindings received since {}{}",
                    r.progress,
                    r.bindings,
                    format_rfc3339(r.asked),
                    r.ended
                        .map(|t| format!(", ended {}", format_rfc3339(t)))
                        .unwrap_or_default()
                );
            }
            let _ = writeln!(
                s,
                "  in force                  mclt {} s, the primary on {}",
                st.mclt,
                crate::failover::consistency::buckets(st.primary_buckets)
            );
            match &st.partner_settings {
                None => s.push_str("  partner's settings        not heard yet\n"),
                Some(p) => {
                    let mut parts = Vec::new();
                    if let Some(m) = p.mclt {
                        parts.push(format!("mclt {m} s"));
                    }
                    if let Some(b) = p.primary_buckets {
                        parts.push(format!(
                            "the primary on {}",
                            crate::failover::consistency::buckets(b)
                        ));
                    }
                    parts.push(format!("max unacked {}", p.max_unacked_updates));
                    parts.push(format!("max response delay {} s", p.max_response_delay));
                    let _ = writeln!(
                        s,
                        "  partner's settings        {} ({}, {})",
                        parts.join(", "),
                        p.software
                            .as_deref()
                            .unwrap_or("no vendor class: ISC dhcpd"),
                        format_rfc3339(p.at)
                    );
                }
            }
            let _ = writeln!(
                s,
                "  configuration             {}",
                match st.config_check {
                    ConfigCheck::InStep => "in step with the partner".to_owned(),
                    ConfigCheck::Differs => "DIFFERS from the partner's:".to_owned(),
                    ConfigCheck::Unknown =>
                        "unknown (the partner has shown nothing to compare)".to_owned(),
                }
            );
            for d in &st.config_differences {
                let _ = writeln!(s, "    {d}");
            }
            if c.partner_software != "isc-dhcpd" {
                let when = if st.scopes_checked > 0 {
                    format!(" (compared {})", format_rfc3339(st.scopes_checked))
                } else {
                    String::new()
                };
                let line = match st.scopes_check {
                    ConfigCheck::InStep => format!("in step with the partner's{when}"),
                    ConfigCheck::Differs => format!("DIFFER from the partner's{when}:"),
                    ConfigCheck::Unknown => format!(
                        "unknown{when}: {}",
                        st.scopes_check_error
                            .as_deref()
                            .unwrap_or("not compared yet")
                    ),
                };
                let _ = writeln!(s, "  scope definitions         {line}");
                for d in &st.scope_differences {
                    let _ = writeln!(s, "    {d}");
                }
            }
        }
    }
    if r.empty {
        s.push_str(
            "  scopes                    none: the relationship is empty until a scope joins\n",
        );
    } else {
        s.push_str("  scopes\n");
        let rows: Vec<Vec<String>> = r
            .scopes
            .iter()
            .map(|sc| {
                let n = |st: LeaseState| sc.leases.get(&st).copied().unwrap_or(0).to_string();
                vec![
                    format!("    {}", sc.subnet),
                    n(LeaseState::Free),
                    n(LeaseState::Backup),
                    n(LeaseState::Active),
                    n(LeaseState::Expired),
                    n(LeaseState::Released),
                    n(LeaseState::Abandoned),
                ]
            })
            .collect();
        s.push_str(&table(
            &[
                "    SUBNET",
                "FREE",
                "BACKUP",
                "ACTIVE",
                "EXPIRED",
                "RELEASED",
                "ABANDONED",
            ],
            &rows,
        ));
    }
    s
}

/// Left-aligned columns separated by two spaces.
/// A counter map as `total (reason n, reason n)`, or `0`.
fn by_reason(counts: &std::collections::BTreeMap<String, u64>) -> String {
    let total: u64 = counts.values().sum();
    if counts.is_empty() {
        return total.to_string();
    }
    let reasons: Vec<String> = counts.iter().map(|(r, n)| format!("{r} {n}")).collect();
    format!("{total} ({})", reasons.join(", "))
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(cell);
            l.extend(std::iter::repeat_n(
                ' ',
                w.saturating_sub(cell.chars().count()),
            ));
        }
        s.push_str(l.trim_end());
        s.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    s
}

/// The human form of `status`.
pub fn render_status(s: &Status) -> String {
    let mut out = format!(
        "tandemd {}, up {}, datapath {}\n\n",
        s.version,
        format_duration(s.uptime),
        s.datapath
    );
    if s.relationships.is_empty() {
        out.push_str("Failover: no relationships active\n");
    } else {
        let rows: Vec<Vec<String>> = s
            .relationships
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.role.as_str().to_owned(),
                    r.mode.as_str().to_owned(),
                    r.state.to_string(),
                    r.partner_state.to_string(),
                    format_rfc3339(r.state_since),
                    r.unacked_updates.to_string(),
                    r.updates_sent.to_string(),
                    r.updates_refused.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "RELATIONSHIP",
                "ROLE",
                "MODE",
                "STATE",
                "PARTNER-STATE",
                "SINCE",
                "UNACKED",
                "SENT",
                "REFUSED",
            ],
            &rows,
        ));
    }
    out.push('\n');
    if s.workers.is_empty() {
        out.push_str("Workers: none running\n");
    } else {
        let rows: Vec<Vec<String>> = s
            .workers
            .iter()
            .map(|w| {
                vec![
                    w.id.to_string(),
                    w.datapath.clone(),
                    w.rx.to_string(),
                    w.dispatched.to_string(),
                    w.tx.to_string(),
                    by_reason(&w.dropped),
                    by_reason(&w.silent),
                    by_reason(&w.ignored),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "WORKER",
                "DATAPATH",
                "RX",
                "DISPATCHED",
                "TX",
                "DROPPED",
                "SILENT",
                "IGNORED",
            ],
            &rows,
        ));
    }
    out.push('\n');
    if !s.xdp.is_empty() {
        let rows: Vec<Vec<String>> = s
            .xdp
            .iter()
            .map(|x| {
                vec![
                    x.interface.clone(),
                    x.mode.clone(),
                    x.pass.to_string(),
                    x.redirect.to_string(),
                    x.no_xsk.to_string(),
                    x.rate_mac.to_string(),
                    x.rate_circuit.to_string(),
                    x.rate_relay.to_string(),
                    x.lb_drop.to_string(),
                    if x.lb_filter { "on" } else { "off" }.to_owned(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "XDP",
                "MODE",
                "PASS",
                "REDIRECT",
                "NO-XSK",
                "RATE-MAC",
                "RATE-CIRCUIT",
                "RATE-RELAY",
                "LB-DROP",
                "LB-FILTER",
            ],
            &rows,
        ));
        out.push('\n');
    }
    if s.leases.is_empty() {
        out.push_str("Leases: no subnets\n");
    } else {
        let mut header = vec!["SUBNET"];
        header.extend(LeaseState::ALL.iter().map(|st| st.as_str()));
        let rows: Vec<Vec<String>> = s
            .leases
            .iter()
            .map(|(subnet, counts)| {
                let mut row = vec![subnet.clone()];
                row.extend(
                    LeaseState::ALL
                        .iter()
                        .map(|st| counts.get(st).copied().unwrap_or(0).to_string()),
                );
                row
            })
            .collect();
        let header: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        out.push_str(&table(&header, &rows));
    }
    out
}

/// The human form of `leases`.
pub fn render_leases(leases: &[LeaseInfo]) -> String {
    if leases.is_empty() {
        return "no leases\n".to_owned();
    }
    let rows: Vec<Vec<String>> = leases
        .iter()
        .map(|l| {
            vec![
                l.address.to_string(),
                l.state.to_string(),
                l.chaddr.clone(),
                l.client_id.clone().unwrap_or_else(|| "-".into()),
                l.circuit_id.clone().unwrap_or_else(|| "-".into()),
                l.remote_id.clone().unwrap_or_else(|| "-".into()),
                l.hostname.as_deref().map_or_else(|| "-".into(), printable),
                format_rfc3339(l.ends),
            ]
        })
        .collect();
    table(
        &[
            "ADDRESS",
            "STATE",
            "CHADDR",
            "CLIENT-ID",
            "CIRCUIT-ID",
            "REMOTE-ID",
            "HOSTNAME",
            "ENDS",
        ],
        &rows,
    )
}

/// Every lease the filter matches, page after page along the `next` cursor; progress on
/// `err` every ten pages. A refusal ends it with the daemon's answer.
fn all_leases(
    target: &Target,
    filter: &LeaseFilter,
    err: &mut dyn Write,
) -> Result<Response, admin::ClientError> {
    let mut filter = filter.clone();
    let mut leases = Vec::new();
    for page in 1u64.. {
        let r = admin::request(target, &Request::Leases(filter.clone()))?;
        if !r.ok {
            return Ok(r);
        }
        leases.extend(r.leases.unwrap_or_default());
        match r.next {
            Some(next) => filter.after = Some(next),
            None => break,
        }
        if page % 10 == 0 {
            let _ = writeln!(err, "tandemctl: {} leases so far", leases.len());
        }
    }
    Ok(Response {
        ok: true,
        leases: Some(leases),
        ..Response::default()
    })
}

/// Leases as comma-separated values: a header, then one line each (`ends` in RFC 3339).
pub fn leases_csv(leases: &[LeaseInfo]) -> String {
    let mut s = String::from("address,state,chaddr,client_id,circuit_id,remote_id,hostname,ends\n");
    for l in leases {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            l.address,
            l.state,
            l.chaddr,
            l.client_id.as_deref().unwrap_or(""),
            csv_field(l.circuit_id.as_deref().unwrap_or("")),
            csv_field(l.remote_id.as_deref().unwrap_or("")),
            csv_field(l.hostname.as_deref().unwrap_or("")),
            format_rfc3339(l.ends)
        ));
    }
    s
}

/// `s` safe for a terminal: control characters (a client chose a host name) as `\xNN`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\x{:02x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A CSV field: quoted (RFC 4180) when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The audit log as a table, oldest first.
pub fn render_audit(entries: &[AuditEntry]) -> String {
    if entries.is_empty() {
        return "no changes recorded\n".to_owned();
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                format_rfc3339(e.time),
                e.who.clone(),
                e.from.clone(),
                e.verb.clone(),
                if e.ok { "ok" } else { "refused" }.to_owned(),
                e.result.clone(),
            ]
        })
        .collect();
    table(&["TIME", "WHO", "FROM", "VERB", "RESULT", "ANSWER"], &rows)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn parse(a: &[&str]) -> Result<Invocation, UsageError> {
        parse_args(a.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn host_names_never_reach_the_terminal_raw() {
        assert_eq!(printable("pc-7"), "pc-7");
        assert_eq!(printable("x\u{1b}[2Jy\r\n"), "x\\x1b[2Jy\\x0d\\x0a");
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            parse(&["status"]),
            Ok(Invocation {
                locator: Locator::Default,
                verb: Verb::Status { json: false }
            })
        );
        assert_eq!(
            parse(&["--data-dir", "/d", "status", "--json"]).map(|i| (i.locator, i.verb)),
            Ok((Locator::DataDir("/d".into()), Verb::Status { json: true }))
        );
        assert_eq!(
            parse(&[
                "--admin=127.0.0.1:1",
                "partner-down",
                "x",
                "--since",
                "2025-11-22T04:00:00Z"
            ])
            .map(|i| i.verb),
            Ok(Verb::PartnerDown {
                name: "x".into(),
                since: Some(1_763_784_000)
            })
        );
        assert_eq!(
            parse(&["leases", "--state", "expired", "--limit=5"]).map(|i| i.verb),
            Ok(Verb::Leases {
                json: false,
                csv: false,
                all: false,
                filter: LeaseFilter {
                    state: Some(LeaseState::Expired),
                    limit: Some(5),
                    ..LeaseFilter::default()
                }
            })
        );
        assert_eq!(
            parse(&[
                "leases",
                "--csv",
                "--all",
                "--ip=10.0.0.5",
                "--mac",
                "02-00-00-00-00-01",
                "--client-id",
                "01:02",
                "--after",
                "10.0.0.1"
            ])
            .map(|i| i.verb),
            Ok(Verb::Leases {
                json: false,
                csv: true,
                all: true,
                filter: LeaseFilter {
                    address: Some(Ipv4Addr::new(10, 0, 0, 5)),
                    mac: Some("02-00-00-00-00-01".into()),
                    client_id: Some("01:02".into()),
                    after: Some(Ipv4Addr::new(10, 0, 0, 1)),
                    ..LeaseFilter::default()
                }
            })
        );
        for bad in [
            &[][..],
            &["frob"],
            &["--config", "a", "--data-dir", "b", "status"],
            &["status", "--jsn"],
            &["partner-down"],
            &["partner-down", "a", "b"],
            &["partner-down", "a", "--since", "yesterday"],
            &["leases", "--state", "bound"],
            &["leases", "--json", "--csv"],
            &["leases", "--mac", "02:00:00:00:01"],
            &["leases", "--client-id", "xyz"],
            &["leases", "--ip", "10.0.0"],
            &["leases", "--after"],
            &["--data-dir"],
            &["--bogus", "status"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
