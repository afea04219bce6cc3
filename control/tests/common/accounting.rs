//! The server's own account of the frames it received, from `tandemctl status --json`: the
//! verdict of a load test is what the server controls, never a generator's view of time.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::server::Server;

/// Drop reasons the kernel counts for frames no worker ever read.
const KERNEL_DROPS: &[&str] = &["xsk-rx-dropped", "xsk-rx-ring-full", "rx-queue-full"];

/// The server's frame accounting, summed over workers and XDP interfaces.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accounting {
    /// Frames workers read from the wire (`rx - dispatched`, summed).
    pub read: u64,
    /// Replies sent.
    pub sent: u64,
    /// Dropped by a worker, by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Dropped by the kernel before a worker read them, by reason.
    pub kernel: BTreeMap<String, u64>,
    /// Left unanswered on purpose, by reason.
    pub silent: BTreeMap<String, u64>,
    /// Frames the XDP program redirected to AF_XDP sockets (`None` on the packet datapath).
    pub redirected: Option<u64>,
}

impl Accounting {
    pub fn from_status(s: &Value) -> Self {
        let mut a = Accounting::default();
        let count = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a counter: {v}"));
        for w in s["workers"].as_array().expect("status.workers") {
            a.read += count(&w["rx"]) - w["dispatched"].as_u64().unwrap_or(0);
            a.sent += count(&w["tx"]);
            for (reason, n) in w["dropped"].as_object().expect("worker.dropped") {
                let into = if KERNEL_DROPS.contains(&reason.as_str()) {
                    &mut a.kernel
                } else {
                    &mut a.dropped
                };
                *into.entry(reason.clone()).or_default() += count(n);
            }
            for (reason, n) in w["silent"].as_object().expect("worker.silent") {
                *a.silent.entry(reason.clone()).or_default() += count(n);
            }
        }
        if let Some(xdp) = s["xdp"].as_array().filter(|x| !x.is_empty()) {
            a.redirected = Some(xdp.iter().map(|x| count(&x["redirect"])).sum());
        }
        a
    }

    /// Frames a worker read but neither answered, dropped nor silenced: must be zero.
    pub fn unaccounted(&self) -> i128 {
        let sum = |m: &BTreeMap<String, u64>| m.values().map(|&n| i128::from(n)).sum::<i128>();
        i128::from(self.read) - i128::from(self.sent) - sum(&self.dropped) - sum(&self.silent)
    }

    /// The server's accounting once its counters stop moving (the workers finish what is
    /// queued), waiting at most 60 s.
    pub fn settled(server: &Server) -> Self {
        super::wait_until(Duration::from_secs(60), "the counters to settle", || {
            let a = Accounting::from_status(&server.status_json()?);
            std::thread::sleep(Duration::from_millis(500));
            let b = Accounting::from_status(&server.status_json()?);
            (a == b).then_some(b)
        })
    }

    /// Asserts that every frame a worker read was answered, dropped or silenced for a counted
    /// reason, and (XDP) that every frame the program redirected reached a worker or is in
    /// the kernel's drop counters.
    pub fn assert_complete(&self) {
        assert_eq!(
            self.unaccounted(),
            0,
            "frames read but neither answered nor counted: {self:?}"
        );
        if let Some(redirected) = self.redirected {
            let kernel: u64 = self.kernel.values().sum();
            assert_eq!(
                redirected,
                self.read + kernel,
                "frames the XDP program redirected vs read by workers + dropped by the kernel: \
                 {self:?}"
            );
        }
    }
}
