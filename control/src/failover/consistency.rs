//! Whether the partner is configured as we are, as far as the failover protocol shows it.
//!
//! A primary sends its MCLT and bucket assignment in every CONNECT, and a secondary serves
//! by them whatever its own file says (draft §7.2, ISC `failover.c:592-599`): a pair whose
//! files disagree works, but not as either operator wrote it, and a role change later
//! would bring the other settings into force. A tandem secondary answers a tandem primary
//! with its own settings ([`PartnerSettings`]), so both sides can tell. Against ISC dhcpd,
//! a tandem secondary compares the primary's CONNECT; a tandem primary learns nothing of an
//! ISC secondary's settings, and says so (`unknown`).

use super::fsm::PartnerSettings;
use super::hash::Hba;
use crate::config::{FailoverConfig, FailoverMode, Role};

/// The bucket assignment a `[[failover]]` section configures: load balance splits the
/// buckets at `split`; in hot standby the primary is the active server and holds them all.
pub fn configured_hba(f: &FailoverConfig) -> Hba {
    match f.mode {
        FailoverMode::LoadBalance => Hba::split(f.split),
        FailoverMode::HotStandby => Hba::ALL,
    }
}

/// A bucket count in the operator's units: `128 of 256 buckets (50 %)`.
pub fn buckets(n: u16) -> String {
    format!("{n} of 256 buckets ({} %)", u32::from(n) * 100 / 256)
}

/// How our configuration and the partner's settings `p` differ, one line per key (empty:
/// in step). `None` when `p` shows nothing to compare (an ISC secondary's CONNECTACK).
pub fn differences(f: &FailoverConfig, p: &PartnerSettings) -> Option<Vec<String>> {
    if p.mclt.is_none() && p.hba.is_none() {
        return None;
    }
    let mut out = Vec::new();
    // A secondary without `mclt` of its own takes the primary's: nothing to compare.
    let own_mclt = (f.role == Role::Primary || f.mclt_set).then_some(f.mclt);
    if let (Some(ours), Some(theirs)) = (own_mclt, p.mclt)
        && ours != theirs
    {
        out.push(format!("mclt: ours {ours} s, the partner's {theirs} s"));
    }
    if let Some(theirs) = p.hba {
        let ours = configured_hba(f);
        if ours != theirs {
            let (o, t) = (ours.primary_buckets(), theirs.primary_buckets());
            let line = match f.mode {
                FailoverMode::HotStandby if t != 256 => format!(
                    "mode: ours hot-standby, the partner's load-balance with the primary on {}",
                    buckets(t)
                ),
                FailoverMode::LoadBalance if t == 256 || t == 0 => format!(
                    "mode: ours load-balance with the primary on {}, the partner's hot-standby",
                    buckets(o)
                ),
                _ if o == t => format!("split: the same share ({}) but other buckets", buckets(o)),
                _ => format!(
                    "split: the primary on {} by ours, on {} by the partner's",
                    buckets(o),
                    buckets(t)
                ),
            };
            out.push(line);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::config::PeerSoftware;
    use crate::failover::UnixTime;

    fn section(role: Role, mode: FailoverMode, mclt: u32, split: u16) -> FailoverConfig {
        FailoverConfig {
            name: "edge".into(),
            role,
            mode,
            address: Ipv4Addr::new(10, 0, 0, 1),
            peer_address: Ipv4Addr::new(10, 0, 0, 2),
            port: 647,
            peer_port: 647,
            manage_port: 8647,
            peer_manage_port: 8647,
            replicate_auto: false,
            mclt,
            mclt_set: true,
            split,
            reserve_percent: 10,
            load_balance_max_seconds: 3,
            max_response_delay: 60,
            max_unacked_updates: 10,
            auto_partner_down: 0,
            peer_software: PeerSoftware::Tandem,
            shared_secret_file: None,
            max_lease_time: None,
        }
    }

    fn shown(mclt: Option<u32>, hba: Option<Hba>) -> PartnerSettings {
        PartnerSettings {
            at: UnixTime(1),
            mclt,
            hba,
            max_unacked: 10,
            receive_timer: 60,
            vendor_class: None,
        }
    }

    #[test]
    fn alike_is_in_step_and_nothing_shown_is_unknown() {
        let f = section(Role::Primary, FailoverMode::LoadBalance, 3600, 128);
        assert_eq!(
            differences(&f, &shown(Some(3600), Some(Hba::split(128)))),
            Some(vec![])
        );
        assert_eq!(differences(&f, &shown(None, None)), None);
    }

    #[test]
    fn each_differing_key_is_named_in_operator_units() {
        let f = section(Role::Secondary, FailoverMode::LoadBalance, 3600, 128);
        assert_eq!(
            differences(&f, &shown(Some(1800), Some(Hba::split(64)))),
            Some(vec![
                "mclt: ours 3600 s, the partner's 1800 s".to_owned(),
                "split: the primary on 128 of 256 buckets (50 %) by ours, on 64 of 256 \
                 buckets (25 %) by the partner's"
                    .to_owned(),
            ])
        );
        let standby = section(Role::Secondary, FailoverMode::HotStandby, 3600, 128);
        assert_eq!(
            differences(&standby, &shown(None, Some(Hba::split(128)))),
            Some(vec![
                "mode: ours hot-standby, the partner's load-balance with the primary on 128 \
                 of 256 buckets (50 %)"
                    .to_owned()
            ])
        );
        assert_eq!(
            differences(&f, &shown(None, Some(Hba::ALL))).map(|d| d.len()),
            Some(1)
        );
    }

    #[test]
    fn a_secondary_without_its_own_mclt_takes_the_primarys() {
        let mut f = section(Role::Secondary, FailoverMode::LoadBalance, 3600, 128);
        f.mclt_set = false;
        assert_eq!(
            differences(&f, &shown(Some(600), Some(Hba::split(128)))),
            Some(vec![])
        );
    }
}
