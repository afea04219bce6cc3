//! Changes written back into a configuration file: the keys changed are replaced, everything
//! else (comments, layout, keys we do not touch, other sections) stays as the operator wrote
//! it. The result is checked by the caller as `tandemd --check` checks a file.

use serde::{Deserialize, Serialize};
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};

use super::{ReservationKey, SubnetConfig, format_hex as hex};

/// What of a scope replication carries (Micetro's and Windows' "replicate scope": the
/// source's definition replaces the destination's): options, lease times, pools, exclusions,
/// reservations. Not the interface, the relationship, or the server's own decline settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeDefinition {
    /// `prefix`, as `10.0.0.0/24`.
    pub prefix: String,
    /// `pools`, each `FIRST-LAST`.
    pub pools: Vec<String>,
    /// `exclude`, each `FIRST-LAST`.
    pub exclude: Vec<String>,
    /// `router`.
    pub router: Vec<String>,
    /// `dns`.
    pub dns: Vec<String>,
    /// `domain_name`.
    pub domain_name: Option<String>,
    /// `lease_time`, seconds.
    pub lease_time: u32,
    /// `renewal_time`, seconds.
    pub renewal_time: Option<u32>,
    /// `rebinding_time`, seconds.
    pub rebinding_time: Option<u32>,
    /// `[[subnet.reservation]]`, each as its keys and string values (`mac`, `client_id`,
    /// `circuit_id_hex`, `remote_id_hex`, `address`, `hostname`).
    pub reservations: Vec<Vec<(String, String)>>,
}

impl ScopeDefinition {
    /// The definition of a configured scope.
    pub fn of(s: &SubnetConfig) -> Self {
        let range = |r: &super::AddrRange| format!("{}-{}", r.first, r.last);
        ScopeDefinition {
            prefix: s.prefix.to_string(),
            pools: s.pools.iter().map(range).collect(),
            exclude: s.exclude.iter().map(range).collect(),
            router: s.router.iter().map(ToString::to_string).collect(),
            dns: s.dns.iter().map(ToString::to_string).collect(),
            domain_name: s.domain_name.clone(),
            lease_time: s.lease_time,
            renewal_time: s.renewal_time,
            rebinding_time: s.rebinding_time,
            reservations: s
                .reservations
                .iter()
                .map(|r| {
                    let key = match &r.key {
                        ReservationKey::Mac(m) => ("mac", hex(m, ":")),
                        ReservationKey::ClientId(b) => ("client_id", hex(b, ":")),
                        ReservationKey::CircuitId(b) => ("circuit_id_hex", hex(b, "")),
                        ReservationKey::RemoteId(b) => ("remote_id_hex", hex(b, "")),
                    };
                    let mut kv = vec![
                        (key.0.to_owned(), key.1),
                        ("address".to_owned(), r.address.to_string()),
                    ];
                    if let Some(h) = &r.hostname {
                        kv.push(("hostname".to_owned(), h.clone()));
                    }
                    kv
                })
                .collect(),
        }
    }
}

/// Why a file could not be edited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// Not TOML.
    #[error("the file is not TOML: {0}")]
    Parse(String),
    /// No `[[subnet]]` has that prefix.
    #[error("no [[subnet]] with prefix {0} in the file")]
    NoSuchScope(String),
}

fn strings(v: &[String]) -> Item {
    let mut a = Array::new();
    for s in v {
        a.push(s.as_str());
    }
    value(a)
}

fn set_or_remove(t: &mut Table, key: &str, item: Option<Item>) {
    match item {
        Some(i) => {
            t.insert(key, i);
        }
        None => {
            t.remove(key);
        }
    }
}

/// `text` with the `[[subnet]]` of `def.prefix` taking `def`'s options, lease times, pools,
/// exclusions and reservations (its other keys, and every other part of the file, as they
/// were).
pub fn replace_scope(text: &str, def: &ScopeDefinition) -> Result<String, EditError> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Parse(e.to_string()))?;
    let wanted = super::parse_prefix(&def.prefix).ok();
    let table = doc
        .get_mut("subnet")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|subnets| {
            subnets.iter_mut().find(|t| {
                t.get("prefix")
                    .and_then(Item::as_str)
                    .is_some_and(|p| super::parse_prefix(p).ok() == wanted && wanted.is_some())
            })
        })
        .ok_or_else(|| EditError::NoSuchScope(def.prefix.clone()))?;
    let nonempty = |v: &[String]| (!v.is_empty()).then(|| strings(v));
    set_or_remove(table, "pools", Some(strings(&def.pools)));
    set_or_remove(table, "exclude", nonempty(&def.exclude));
    set_or_remove(table, "router", nonempty(&def.router));
    set_or_remove(table, "dns", nonempty(&def.dns));
    set_or_remove(table, "domain_name", def.domain_name.as_deref().map(value));
    let secs = |s: u32| value(format!("{s}s"));
    set_or_remove(table, "lease_time", Some(secs(def.lease_time)));
    set_or_remove(table, "renewal_time", def.renewal_time.map(secs));
    set_or_remove(table, "rebinding_time", def.rebinding_time.map(secs));
    table.remove("reservation");
    if !def.reservations.is_empty() {
        let mut all = ArrayOfTables::new();
        for r in &def.reservations {
            let mut t = Table::new();
            for (k, v) in r {
                t.insert(k, value(v.as_str()));
            }
            all.push(t);
        }
        table.insert("reservation", Item::ArrayOfTables(all));
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# the edge pair
[server]
interfaces = ["eth0"]   # the LAN

# The first scope.
[[subnet]]
prefix = "10.0.0.0/24"
pools = ["10.0.0.10-10.0.0.99"]
exclude = ["10.0.0.20"]
router = ["10.0.0.1"]
interface = "eth0"      # kept: not a scope's shared definition
failover = "edge"

[[subnet.reservation]]
mac = "02:00:00:00:00:01"
address = "10.0.0.5"

# Untouched.
[[subnet]]
prefix = "10.0.1.0/24"
pools = ["10.0.1.10-10.0.1.99"]

[[failover]]
name = "edge"
role = "secondary"
address = "192.0.2.2"
peer_address = "192.0.2.1"
shared_secret_file = "/s"
"#;

    #[test]
    fn a_scope_takes_the_definition_and_the_rest_of_the_file_stays() {
        let source = crate::config::parse(
            &FILE
                .replace(
                    "exclude = [\"10.0.0.20\"]\n",
                    "dns = [\"10.0.0.53\"]\nlease_time = \"2h\"\n",
                )
                .replace("02:00:00:00:00:01", "02:00:00:00:00:02"),
        )
        .expect("valid source");
        let def = ScopeDefinition::of(&source.subnets[0]);
        let edited = replace_scope(FILE, &def).expect("edited");
        for kept in [
            "# the edge pair",
            "interfaces = [\"eth0\"]   # the LAN",
            "# The first scope.",
            "interface = \"eth0\"      # kept: not a scope's shared definition",
            "# Untouched.\n[[subnet]]\nprefix = \"10.0.1.0/24\"\npools = [\"10.0.1.10-10.0.1.99\"]\n",
        ] {
            assert!(edited.contains(kept), "lost {kept:?}:\n{edited}");
        }
        let c = crate::config::parse(&edited).expect("still valid");
        assert_eq!(ScopeDefinition::of(&c.subnets[0]), def, "{edited}");
        assert_eq!(c.subnets[0].interface.as_deref(), Some("eth0"));
        assert_eq!(c.subnets[0].failover.as_deref(), Some("edge"));
        assert!(c.subnets[0].exclude.is_empty());
        assert_eq!(c.subnets[1].pools.len(), 1);
        // Applying it again changes nothing.
        assert_eq!(replace_scope(&edited, &def).expect("again"), edited);
    }

    #[test]
    fn a_missing_scope_or_a_broken_file_is_refused() {
        let c = crate::config::parse(FILE).expect("valid");
        let mut def = ScopeDefinition::of(&c.subnets[0]);
        def.prefix = "10.9.0.0/24".into();
        assert_eq!(
            replace_scope(FILE, &def),
            Err(EditError::NoSuchScope("10.9.0.0/24".into()))
        );
        assert!(matches!(
            replace_scope("[server", &def),
            Err(EditError::Parse(_))
        ));
    }
}
