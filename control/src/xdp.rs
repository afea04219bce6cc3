//! The daemon's side of the XDP programs: who fills each interface's load-balancing filter
//! from the failover state, and what `tandemctl status` reports of the verdict counters.
//!
//! **Which relationship an interface's filter follows.** The XDP program holds one
//! [`LbConfig`] per interface and drops a DHCPDISCOVER before any subnet is chosen: it knows
//! neither the giaddr's subnet nor the scope. A relayed request may arrive on any interface
//! for any `[[subnet]]` (`interface` pins only directly attached clients), so dropping in the
//! kernel is only right when every subnet of the config belongs to one relationship R: then
//! every interface follows R ([`lb_plan`]). With several relationships, or with subnets
//! served standalone, the filter stays off everywhere and the engine's gate balances in user
//! space (counted as the `partner-serves` outcome), which is correct but costs the copy.
//!
//! The updater ([`spawn_lb_updater`]) polls the relationship's published
//! [`RelationshipView`] every [`LB_POLL`] and writes the filter when it changes: on only in
//! NORMAL in load-balance mode ([`RelationshipView::xdp_filter`]), off in every other state
//! and in hot standby. Between a state change and the next poll the kernel may drop a
//! DISCOVER the engine would now answer (for at most [`LB_POLL`]); clients retransmit.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use dataplane::xdp::{LB_ON, LbConfig, XdpPort};

use crate::config::Config;
use crate::daemon::Shutdown;
use crate::failover::gate::RelationshipView;
use crate::status::XdpStatus;

/// How often the updater looks at the relationships' published state.
pub const LB_POLL: Duration = Duration::from_millis(100);

/// The index (in `config.failover`) of the relationship whose load-balancing filter the XDP
/// programs follow: `Some` when every `[[subnet]]` belongs to that one relationship.
pub fn lb_plan(config: &Config) -> Option<usize> {
    let first = config.subnets.first()?.failover.as_deref()?;
    if config
        .subnets
        .iter()
        .any(|s| s.failover.as_deref() != Some(first))
    {
        return None;
    }
    config.failover.iter().position(|f| f.name == first)
}

/// The XDP ports of a running daemon (one per interface, in config order), shared by the
/// load-balance updater, the admin backend and the teardown.
#[derive(Debug)]
pub struct XdpPorts {
    interfaces: Vec<String>,
    ports: Mutex<Vec<XdpPort>>,
    /// The filter last written to every port.
    current: Mutex<LbConfig>,
}

impl XdpPorts {
    /// `ports[i]` is attached to `interfaces[i]`; their filters start off.
    pub fn new(interfaces: Vec<String>, ports: Vec<XdpPort>) -> Self {
        XdpPorts {
            interfaces,
            ports: Mutex::new(ports),
            current: Mutex::new(LbConfig::OFF),
        }
    }

    /// Writes `cfg` to every port's filter if it differs from the last one written.
    /// Returns whether it wrote.
    pub fn set_lb(&self, cfg: &LbConfig) -> bool {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if *current == *cfg {
            return false;
        }
        let mut ports = self.ports.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ok = true;
        for (name, port) in self.interfaces.iter().zip(ports.iter_mut()) {
            if let Err(e) = port.program_mut().set_lb(cfg) {
                tracing::error!(interface = %name, error = %e, "writing the XDP load-balancing filter");
                ok = false;
            }
        }
        if ok {
            *current = *cfg;
            tracing::info!(
                on = cfg.mode == LB_ON,
                primary = cfg.primary == 1,
                "XDP load-balancing filter {}",
                if cfg.mode == LB_ON { "on" } else { "off" }
            );
        }
        ok
    }

    /// Writes the request rate limits to every port's program (a live configuration
    /// change). On an error the ports already written are put back to `previous`.
    pub fn set_rates(
        &self,
        limits: &dataplane::limit::RateLimits,
        previous: &dataplane::limit::RateLimits,
    ) -> Result<(), String> {
        let mut ports = self.ports.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, (name, port)) in self.interfaces.iter().zip(ports.iter_mut()).enumerate() {
            if let Err(e) = port.program_mut().set_rates(limits) {
                let undo = ports.iter_mut().take(i);
                for port in undo {
                    if let Err(e) = port.program_mut().set_rates(previous) {
                        tracing::error!(error = %e, "putting the XDP rate limits back");
                    }
                }
                return Err(format!("writing the XDP rate limits on {name}: {e}"));
            }
        }
        Ok(())
    }

    /// Per interface: the attach mode, the verdict counters and the filter.
    pub fn status(&self) -> Vec<XdpStatus> {
        let lb = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .mode
            == LB_ON;
        let ports = self.ports.lock().unwrap_or_else(PoisonError::into_inner);
        self.interfaces
            .iter()
            .zip(ports.iter())
            .map(|(name, port)| {
                let prog = port.program();
                let c = prog.counters().unwrap_or_else(|e| {
                    tracing::warn!(interface = %name, error = %e, "reading the XDP counters");
                    Default::default()
                });
                XdpStatus {
                    interface: name.clone(),
                    mode: prog
                        .attached()
                        .map(|(_, m)| m.as_str())
                        .unwrap_or("detached")
                        .to_owned(),
                    pass: c.pass,
                    redirect: c.redirect,
                    no_xsk: c.no_xsk,
                    lb_drop: c.lb_drop,
                    rate_relay: c.rate_relay,
                    rate_circuit: c.rate_circuit,
                    rate_mac: c.rate_mac,
                    lb_filter: lb,
                    rate_limits: prog
                        .rates()
                        .map(|r| {
                            [("mac", r.mac), ("circuit", r.circuit), ("relay", r.relay)]
                                .into_iter()
                                .map(|(k, v)| (k.to_owned(), [v.rate, v.burst]))
                                .collect()
                        })
                        .unwrap_or_else(|e| {
                            tracing::warn!(interface = %name, error = %e, "reading the XDP rate limits");
                            Default::default()
                        }),
                }
            })
            .collect()
    }

    /// Detaches every program (the sockets must be gone: the workers have stopped).
    pub fn detach(&self) {
        self.ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Starts the thread that keeps the filters in step with relationship `view` until
/// `shutdown`; it switches them off before it ends.
pub fn spawn_lb_updater(
    ports: Arc<XdpPorts>,
    view: Arc<RelationshipView>,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("xdp-lb".into())
        .spawn(move || {
            loop {
                ports.set_lb(&view.xdp_filter());
                if shutdown.wait_timeout(LB_POLL) {
                    break;
                }
            }
            ports.set_lb(&LbConfig::OFF);
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(subnets: &[Option<&str>]) -> Config {
        let mut text = String::from(
            "[server]\ninterfaces = [\"eth0\"]\nserver_id = \"192.0.2.1\"\ndata_dir = \"/tmp/x\"\n",
        );
        for (i, f) in subnets.iter().enumerate() {
            text.push_str(&format!(
                "[[subnet]]\nprefix = \"10.0.{i}.0/24\"\npools = [\"10.0.{i}.10-10.0.{i}.20\"]\n"
            ));
            if let Some(f) = f {
                text.push_str(&format!("failover = \"{f}\"\n"));
            }
        }
        for (n, peer) in [("a", "192.0.2.2"), ("b", "192.0.2.3")] {
            text.push_str(&format!(
                "[[failover]]\nname = \"{n}\"\nrole = \"primary\"\naddress = \"192.0.2.1\"\npeer_address = \"{peer}\"\nmclt = \"10m\"\nshared_secret_file = \"/s\"\n"
            ));
        }
        crate::config::parse(&text).expect("config")
    }

    #[test]
    fn the_filter_follows_a_relationship_only_when_it_covers_every_subnet() {
        assert_eq!(lb_plan(&config(&[Some("b")])), Some(1));
        assert_eq!(lb_plan(&config(&[Some("a"), Some("a")])), Some(0));
        assert_eq!(lb_plan(&config(&[Some("a"), Some("b")])), None);
        assert_eq!(lb_plan(&config(&[Some("a"), None])), None);
        assert_eq!(lb_plan(&config(&[None])), None);
    }
}
