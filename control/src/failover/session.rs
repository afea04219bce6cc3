//! One relationship's protocol and replication, sans IO: the [`Fsm`] plus everything binding
//! replication keeps per relationship (updates in flight, the update-request run, pool
//! balancing), driven with `(now, input)` calls and never touching a socket or a clock.
//!
//! The mio [`super::driver`] owns the TCP link and feeds a [`Session`]: every whole frame
//! to [`Session::on_frame`], then [`Session::flush_acks`] once per read batch (one group
//! commit, then the BNDACKs); every event of [`Session::poll_event`] to
//! [`Session::on_event`] before acting on it itself (persisting, closing the link); a lost
//! link to [`Session::link_lost`]; timers to [`Session::tick`]; and after every turn
//! [`Session::pump`] and the machine's transmits. The deterministic lease-level tests
//! (`tests/failover_leases.rs`) drive two of these, two engines and two stores on a
//! virtual clock the same way.
//!
//! Rules (what the driver's module docs describe in full):
//! * a received BNDUPD is checked as ISC checks it, judged against our record
//!   ([`super::replicate::judge`]), installed by CAS and journaled; its BNDACK leaves only
//!   after the read batch's commit;
//! * outbound, each binding is read from its record when its BNDUPD is built; one per
//!   BNDUPD toward ISC, as many as fit toward a tandem peer ([`Fsm::partner_batches`]);
//!   at most the peer's window of messages in flight; in NORMAL, or while answering an
//!   update request;
//! * a BNDACK writes `atsfp`/`tsfp` back; a refusal is counted; what the link loses is
//!   queued again.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;

use lease_mmap::{BindingState, CommitError, Lease, Slot, TableId};

use super::binding::{Binding, BindingError};
use super::fsm::{Event, Fsm, StateKind, Transmit};
use super::msg::{BindingBatch, MessageType, Options, RejectReason, Repr};
use super::pool;
use super::replicate::{Replicator, Verdict, judge};
use super::{Instant, Now, Role, UnixTime};
use crate::config::{self, FailoverConfig, FailoverMode};

/// The bindings of a relationship (by name) an update request is answered with, without
/// replication: address and record of every lease that is not FREE.
pub type BindingSource = Arc<dyn Fn(&str) -> Vec<(Ipv4Addr, Lease)> + Send + Sync>;

/// A binding sent in a BNDUPD and not yet acknowledged.
#[derive(Clone, Copy, Debug)]
struct Flight {
    ip: Ipv4Addr,
    /// The record it came from (`None`: a snapshot, without replication).
    slot: Option<(TableId, Slot)>,
    state: BindingState,
    tstp: UnixTime,
}

/// The answers owed for the BNDUPDs of one read batch: each update's xid and, per binding
/// it carried, the address and the reject (if refused).
type Acks = (u32, Vec<(Ipv4Addr, Option<BindingError>)>);

/// Counters of a session, for status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bindings sent and not yet acknowledged.
    pub unacked: u64,
    /// Bindings sent in BNDUPDs.
    pub sent: u64,
    /// BNDUPD messages they went in.
    pub messages: u64,
    /// Bindings the partner refused.
    pub refused: u64,
}

/// One relationship's failover protocol and binding replication (module docs).
pub struct Session {
    /// The relationship's index in the [`Replicator`] (its place in the config).
    index: usize,
    name: String,
    mode: FailoverMode,
    fsm: Fsm,
    /// Bindings still to send for the peer's update request, without replication (with it,
    /// the [`Replicator`]'s send queue holds addresses instead).
    to_send: VecDeque<Binding>,
    /// BNDUPDs sent and not yet acknowledged, by xid: the bindings each carried.
    in_flight: HashMap<u32, Vec<Flight>>,
    /// UPDDONE is due once everything queued is sent and acknowledged.
    done_pending: bool,
    /// BNDACK answers owed for the BNDUPDs received since the last [`Session::flush_acks`].
    acks: Vec<Acks>,
    counters: Counters,
    /// Pool balancing ([`pool`]): this relationship's share rule and its next run.
    pool: pool::Policy,
    balance: pool::Schedule,
    /// When bindings that ran out are next moved to EXPIRED ([`Session::expire`]).
    next_sweep: UnixTime,
}

/// How often the bindings that ran out are moved to EXPIRED, seconds.
pub const EXPIRY_SWEEP_SECS: u32 = 5;

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("name", &self.name)
            .field("state", &self.fsm.kind())
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session of relationship `index` of the config, around its machine.
    pub fn new(index: usize, cfg: &FailoverConfig, fsm: Fsm) -> Self {
        let role = match cfg.role {
            config::Role::Primary => Role::Primary,
            config::Role::Secondary => Role::Secondary,
        };
        Self {
            index,
            name: cfg.name.clone(),
            mode: cfg.mode,
            fsm,
            to_send: VecDeque::new(),
            in_flight: HashMap::new(),
            done_pending: false,
            acks: Vec::new(),
            counters: Counters::default(),
            pool: pool::Policy::new(role, pool::Share::new(cfg.mode, cfg.reserve_percent)),
            balance: pool::Schedule::default(),
            next_sweep: UnixTime(0),
        }
    }

    /// The state machine (state, partner, timers).
    pub fn fsm(&self) -> &Fsm {
        &self.fsm
    }

    /// The state machine, for the driver's own inputs (link up, operator commands).
    pub fn fsm_mut(&mut self) -> &mut Fsm {
        &mut self.fsm
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn counters(&self) -> Counters {
        Counters {
            unacked: self.in_flight.values().map(|f| f.len() as u64).sum(),
            ..self.counters
        }
    }

    /// The next event of the machine; hand it to [`Session::on_event`].
    pub fn poll_event(&mut self) -> Option<Event> {
        self.fsm.poll_event()
    }

    /// The next message to write to the link.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.fsm.poll_transmit()
    }

    /// The machine's next timer, and the next pool balancing run or expiry sweep (wall
    /// clock; the sweep only with replication).
    pub fn poll_timeout(&self, replicating: bool) -> (Option<Instant>, Option<UnixTime>) {
        let sweep = replicating.then_some(self.next_sweep);
        let wall = [self.balance.next(), sweep].into_iter().flatten().min();
        (self.fsm.poll_timeout(), wall)
    }

    /// Timers: the machine's, a due pool balancing run, and the expiry sweep.
    pub fn tick(&mut self, now: Now, mut repl: Option<&mut Replicator>) -> Result<(), CommitError> {
        if self.fsm.poll_timeout().is_some_and(|t| t <= now.instant) {
            self.fsm.handle_timeout(now);
        }
        if self.balance.is_due(now.wall) {
            self.rebalance(now, repl.as_deref_mut())?;
        }
        if let Some(repl) = repl
            && self.next_sweep <= now.wall
        {
            self.next_sweep = now.wall.saturating_add(EXPIRY_SWEEP_SECS);
            self.expire(now, repl)?;
        }
        Ok(())
    }

    /// Moves every binding of our pool whose lease ran out to EXPIRED, journaled and sent
    /// to the partner (ISC's pool timer does the same). Only once the partner acknowledges
    /// EXPIRED does the address go to a client again ([`super::gate`]): until then the
    /// partner may still renew it. Returns how many moved.
    pub fn expire(&mut self, now: Now, repl: &mut Replicator) -> Result<u64, CommitError> {
        let store = Arc::clone(repl.store());
        let ran_out = |l: &Lease| {
            l.state == BindingState::Active
                && l.owner == lease_mmap::Owner::Us
                && l.ends <= now.wall
        };
        let mut moved = 0;
        for table in store.tables() {
            if repl.rel_of(table.id()) != Some(self.index) {
                continue;
            }
            let mut due = Vec::new();
            table.for_each(|slot, _, l| {
                if ran_out(l) {
                    due.push(slot);
                }
            });
            for slot in due {
                let r = repl.write_record(table.id(), slot, now.wall, |cur| {
                    ran_out(cur).then_some(Lease {
                        state: BindingState::Expired,
                        stos: now.wall,
                        ..*cur
                    })
                });
                match r {
                    Ok(Some(_)) => moved += 1,
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(relationship = %self.name, error = %e, "failover: an expired binding could not be moved to EXPIRED");
                    }
                }
            }
        }
        if repl.pending() > 0 {
            repl.commit()?;
        }
        if moved > 0 {
            tracing::debug!(relationship = %self.name, moved, "failover: bindings expired");
        }
        Ok(moved)
    }

    /// One whole frame from the link. BNDUPDs are installed (their answers wait for
    /// [`Session::flush_acks`]); BNDACKs settle what they answer. Drain
    /// [`Session::poll_event`] after each call.
    pub fn on_frame(&mut self, now: Now, frame: &[u8], mut repl: Option<&mut Replicator>) {
        let Some(m) = self.fsm.handle_frame(now, frame) else {
            // Refused; the machine closes the link (Event::CloseLink).
            return;
        };
        match m.msg_type {
            MessageType::BndAck => self.on_bndack(&m, repl),
            MessageType::BndUpd => {
                let mut answers = Vec::new();
                for o in m.bindings() {
                    if let Some(ip) = o.assigned_ip {
                        answers.push((ip, self.on_bndupd(&o, now.wall, repl.as_deref_mut())));
                    }
                }
                if !answers.is_empty() {
                    self.acks.push((m.xid, answers));
                }
            }
            _ => {}
        }
    }

    /// Makes the updates installed since the last call durable (one commit for the whole
    /// read batch), then acknowledges them: each BNDUPD with one BNDACK naming its bindings.
    /// A failed commit sends no BNDACK; the caller must stop serving.
    pub fn flush_acks(
        &mut self,
        now: Now,
        repl: Option<&mut Replicator>,
    ) -> Result<(), CommitError> {
        if self.acks.is_empty() {
            return Ok(());
        }
        let acks = std::mem::take(&mut self.acks);
        if let Some(repl) = repl
            && repl.pending() > 0
        {
            repl.commit()?;
        }
        let mut batch = BindingBatch::new(MessageType::BndAck);
        for (xid, answers) in acks {
            for (ip, reject) in answers {
                let ack = Binding::ack(ip, reject.as_ref());
                if !batch.push(&ack.options) {
                    // Answers are shorter than the updates they answer; should a batch
                    // still overflow, the rest follows under the same xid.
                    let _ = self.fsm.send(now, &batch.repr(now.wall, xid), Some(xid));
                    batch.clear();
                    batch.push(&ack.options);
                }
            }
            let _ = self.fsm.send(now, &batch.repr(now.wall, xid), Some(xid));
            batch.clear();
        }
        Ok(())
    }

    /// The TCP link is gone (read error, EOF, write error).
    pub fn link_lost(&mut self, now: Now, repl: Option<&mut Replicator>) {
        self.fsm.handle_disconnected(now);
        self.reset_updates(repl);
    }

    /// What replication does on an event of the machine, before the driver acts on it
    /// (the driver persists, logs and closes links). `bindings` answers an update request
    /// without replication. A failed commit (pool balancing) is returned: stop serving.
    pub fn on_event(
        &mut self,
        now: Now,
        e: &Event,
        mut repl: Option<&mut Replicator>,
        bindings: &BindingSource,
    ) -> Result<(), CommitError> {
        match e {
            Event::StateChanged { to, .. } => {
                // Pools are balanced in NORMAL only, at once on entering it (`failover.c:1903`).
                if *to == StateKind::Normal {
                    self.balance.run_now(now.wall);
                } else {
                    self.balance.cancel();
                }
            }
            Event::Connected => {
                // Every update the partner has not acknowledged is sent again (ISC's rule).
                if let Some(repl) = repl {
                    let n = repl.enqueue_unacked(self.index, false);
                    tracing::info!(relationship = %self.name, updates = n, "failover: unacknowledged bindings queued");
                }
            }
            Event::CloseLink { .. } => self.reset_updates(repl),
            Event::UpdateRequest { all } => {
                let n = match repl.as_deref_mut() {
                    // UPDREQ: every record not acknowledged; UPDREQALL: every binding.
                    Some(repl) => repl.enqueue_unacked(self.index, *all),
                    None => {
                        self.to_send = bindings(&self.name)
                            .into_iter()
                            .filter_map(|(ip, l)| Binding::from_lease(ip, &l, 0))
                            .collect();
                        self.to_send.len()
                    }
                };
                tracing::info!(relationship = %self.name, all, bindings = n, "failover: update request");
                self.done_pending = true;
                self.pump(now, repl);
            }
            Event::PoolRequest { xid } => {
                let moved = self.rebalance(now, repl)?;
                tracing::info!(relationship = %self.name, moved, "failover: pool request answered");
                let moved = u32::try_from(moved).unwrap_or(u32::MAX);
                self.fsm.send_pool_response(now, *xid, moved);
            }
            _ => {}
        }
        Ok(())
    }

    /// The link is gone: an update run starts over on the next request; what was in flight
    /// goes back to the send queue.
    fn reset_updates(&mut self, repl: Option<&mut Replicator>) {
        self.to_send.clear();
        if let Some(repl) = repl {
            for f in self.in_flight.values().flatten() {
                if let Some((t, s)) = f.slot {
                    repl.enqueue_update(t, s);
                }
            }
        }
        self.in_flight.clear();
        self.done_pending = false;
    }

    /// Sends queued BNDUPDs within the peer's window (in NORMAL, or while answering an update
    /// request); UPDDONE when all are acknowledged. Each binding is read from its record
    /// now, so the latest state is what leaves. Toward ISC one binding per BNDUPD (it
    /// cannot parse more); toward a tandem peer ([`Fsm::partner_batches`]) as many as fit
    /// in one message ([`BindingBatch`]).
    pub fn pump(&mut self, now: Now, mut repl: Option<&mut Replicator>) {
        if !self.fsm.is_connected() {
            return;
        }
        let sending = self.fsm.kind() == StateKind::Normal || self.done_pending;
        let window = usize::try_from(self.fsm.partner_max_unacked()).unwrap_or(usize::MAX);
        let per_message = if self.fsm.partner_batches() {
            usize::MAX
        } else {
            1
        };
        let mut batch = BindingBatch::new(MessageType::BndUpd);
        // A binding that did not fit in the last message opens the next one.
        let mut carry: Option<Next> = None;
        while sending && self.in_flight.len() < window {
            let mut flights = Vec::new();
            while flights.len() < per_message {
                let next = match carry.take() {
                    Some(c) => Some(c),
                    None => next_binding(&mut self.to_send, repl.as_deref_mut(), self.index),
                };
                let Some((b, slot, tstp)) = next else {
                    break;
                };
                if batch.push(&b.to_repr().options) {
                    flights.push(Flight {
                        ip: b.ip,
                        slot,
                        state: b.status.to_lease(),
                        tstp,
                    });
                } else if flights.is_empty() {
                    // Cannot happen for a valid record (a binding is at most ~330 bytes).
                    tracing::warn!(relationship = %self.name, ip = %b.ip, "failover: binding too long for a BNDUPD; not sent");
                } else {
                    carry = Some((b, slot, tstp));
                    break;
                }
            }
            if flights.is_empty() {
                break;
            }
            match self.fsm.send(now, &batch.repr(now.wall, 0), None) {
                Some(xid) => {
                    self.counters.sent += flights.len() as u64;
                    self.counters.messages += 1;
                    self.in_flight.insert(xid, flights);
                    batch.clear();
                }
                None => {
                    // Not connected any more: the run is over.
                    if let Some(repl) = repl.as_deref_mut() {
                        let lost = flights
                            .iter()
                            .map(|f| f.slot)
                            .chain([carry.and_then(|c| c.1)]);
                        for (t, s) in lost.flatten() {
                            repl.enqueue_update(t, s);
                        }
                    }
                    self.reset_updates(repl);
                    return;
                }
            }
        }
        match carry {
            Some((_, Some((t, s)), _)) => {
                if let Some(repl) = repl.as_deref_mut() {
                    repl.enqueue_update(t, s);
                }
            }
            Some((b, None, _)) => self.to_send.push_front(b),
            None => {}
        }
        let queued = repl
            .and_then(|r| r.queue(self.index))
            .is_some_and(|q| !q.is_empty());
        if self.done_pending && self.to_send.is_empty() && !queued && self.in_flight.is_empty() {
            self.done_pending = false;
            tracing::info!(relationship = %self.name, "failover: update request answered, update done");
            self.fsm.update_done(now);
        }
    }

    /// A BNDACK: the update it answers is no longer in flight. Each binding it names
    /// (one from ISC, the whole batch from tandem) is settled: accepted, its potential expiry
    /// is written back into the record (`atsfp`, `tsfp`); refused, it is logged and counted
    /// (the record stays unacknowledged and is sent again after a reconnect). A binding of
    /// the update that the BNDACK does not name is queued again.
    fn on_bndack(&mut self, m: &Repr<'_>, mut repl: Option<&mut Replicator>) {
        let Some(flights) = self.in_flight.remove(&m.xid) else {
            tracing::debug!(relationship = %self.name, xid = m.xid, "failover: BNDACK for no update in flight");
            return;
        };
        let answers: Vec<Options<'_>> = m.bindings().collect();
        for f in flights {
            let answer = match answers.iter().find(|o| o.assigned_ip == Some(f.ip)) {
                Some(o) => Some(o),
                // A BNDACK without an address answers a single update.
                None if answers.is_empty() => Some(&m.options),
                None => None,
            };
            let Some(o) = answer else {
                tracing::debug!(relationship = %self.name, ip = %f.ip, xid = m.xid, "failover: BNDACK does not name this binding; sending it again");
                if let (Some((t, s)), Some(repl)) = (f.slot, repl.as_deref_mut()) {
                    repl.enqueue_update(t, s);
                }
                continue;
            };
            if let Some(r) = o.reject_reason {
                self.counters.refused += 1;
                let msg = o.message.map(String::from_utf8_lossy);
                tracing::warn!(relationship = %self.name, ip = %f.ip, reason = ?r,
                    message = msg.as_deref().unwrap_or(""), refused = self.counters.refused,
                    "failover: binding update refused by the partner");
                continue;
            }
            if let (Some((t, s)), Some(repl)) = (f.slot, repl.as_deref())
                && f.tstp != UnixTime(0)
                && let Err(e) = repl.acknowledge(t, s, f.state, f.tstp)
            {
                tracing::warn!(relationship = %self.name, ip = %f.ip, error = %e, "failover: acknowledgement not written back");
            }
        }
    }

    /// One binding of a BNDUPD: checked (ISC's rules), judged against our record, installed
    /// by CAS and journaled (committed by [`Session::flush_acks`]). Returns the BNDACK's
    /// reject, if any.
    fn on_bndupd(
        &mut self,
        o: &Options<'_>,
        now: UnixTime,
        repl: Option<&mut Replicator>,
    ) -> Option<BindingError> {
        let b = match Binding::from_options(o) {
            Ok(b) => b,
            Err(e) => {
                tracing::info!(relationship = %self.name, ip = ?o.assigned_ip, error = %e, "failover: BNDUPD refused");
                return Some(e);
            }
        };
        let Some(repl) = repl else {
            tracing::debug!(relationship = %self.name, ip = %b.ip, "failover: BNDUPD refused (not stored)");
            return Some(BindingError {
                reason: RejectReason::Unknown,
                message: "binding updates are not stored by this server",
            });
        };
        let Some((t, s)) = repl.locate(self.index, b.ip) else {
            tracing::info!(relationship = %self.name, ip = %b.ip, "failover: BNDUPD for an address in none of our pools refused");
            return Some(BindingError {
                reason: RejectReason::IllegalIpAddress,
                message: "IP address not in pool",
            });
        };
        let us = self.pool.role;
        let state = self.fsm.kind();
        let ours_in_flight = self.in_flight.values().flatten().any(|f| f.ip == b.ip);
        match repl.install(t, s, &b, |cur| {
            judge(us, state, cur, ours_in_flight, &b, now)
        }) {
            Ok(Verdict::Apply) => {
                // The partner's update beat ours: ours is dropped (ISC `failover.c:5212-5231`).
                for flights in self.in_flight.values_mut() {
                    flights.retain(|f| f.ip != b.ip);
                }
                tracing::debug!(relationship = %self.name, ip = %b.ip, status = ?b.status, "failover: binding update applied");
                None
            }
            Ok(Verdict::KeepOurs) => {
                tracing::info!(relationship = %self.name, ip = %b.ip, status = ?b.status, "failover: our binding wins; sending it");
                repl.enqueue_update(t, s);
                None
            }
            Ok(Verdict::Outdated) => {
                tracing::info!(relationship = %self.name, ip = %b.ip, status = ?b.status, "failover: binding update older than our binding refused; sending ours");
                repl.enqueue_update(t, s);
                Some(BindingError {
                    reason: RejectReason::LessCriticalBindingInformation,
                    message: "our binding of this address is newer",
                })
            }
            Ok(Verdict::Reject(e)) => {
                tracing::info!(relationship = %self.name, ip = %b.ip, status = ?b.status, reason = ?e.reason, "failover: binding update refused");
                Some(e)
            }
            Err(e) => {
                tracing::warn!(relationship = %self.name, ip = %b.ip, error = %e, "failover: binding update not stored");
                Some(BindingError {
                    reason: RejectReason::Unknown,
                    message: "binding not stored",
                })
            }
        }
    }

    /// One pool balancing run over this relationship's tables ([`pool`]): the addresses
    /// given away are written and journaled, made durable, and queued as BNDUPDs; POOLREQ
    /// if this side is short. Returns how many moved. Runs only in NORMAL and with binding
    /// replication (a move the partner never hears of would strand the address).
    pub fn rebalance(
        &mut self,
        now: Now,
        repl: Option<&mut Replicator>,
    ) -> Result<u64, CommitError> {
        let Some(repl) = repl else {
            self.balance.cancel();
            return Ok(0);
        };
        if self.fsm.kind() != StateKind::Normal {
            self.balance.cancel();
            return Ok(0);
        }
        let policy = self.pool;
        let hba = self.fsm.hba();
        let hba = (self.mode == FailoverMode::LoadBalance).then_some(&hba);
        let store = Arc::clone(repl.store());
        let mut total = pool::Outcome::default();
        let mut failed = None;
        for table in store.tables() {
            if repl.rel_of(table.id()) != Some(self.index) {
                continue;
            }
            let id = table.id();
            let own = policy.own_state();
            let mut give = |slot: Slot, _version: u64, _new: &Lease| {
                let r = repl.write_record(id, slot, now.wall, |cur| {
                    (cur.state == own && table.is_allocatable(slot))
                        .then(|| pool::moved(cur, policy.peer_state(), now.wall))
                });
                match r {
                    Ok(written) => written.is_some(),
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            };
            let out = pool::rebalance_table(&policy, hba, table, now.wall, &mut give);
            tracing::info!(relationship = %self.name, table = id.0, free = out.counts.free, backup = out.counts.backup, moved = out.moved, panic = out.panic, "failover: pool balanced");
            total.moved += out.moved;
            total.panic |= out.panic;
            for (t, o) in [
                (&mut total.oldest_free, out.oldest_free),
                (&mut total.oldest_backup, out.oldest_backup),
            ] {
                if let Some(o) = o
                    && t.is_none_or(|t| o < t)
                {
                    *t = Some(o);
                }
            }
        }
        if let Some(e) = failed {
            tracing::warn!(relationship = %self.name, error = %e, "failover: pool balancing could not move an address");
        }
        if repl.pending() > 0 {
            repl.commit()?;
        }
        self.balance.ran(&policy, &total, now.wall);
        if total.panic {
            tracing::info!(relationship = %self.name, "failover: short of addresses: asking the partner to rebalance (POOLREQ)");
            let _ = self
                .fsm
                .send(now, &Repr::new(MessageType::PoolReq, now.wall, 0), None);
        }
        Ok(total.moved)
    }
}

/// A binding to send, the record it came from, and the `tstp` its acknowledgement matches.
type Next = (Binding, Option<(TableId, Slot)>, UnixTime);

/// The next binding to send: from the snapshot of an update request (without replication),
/// else from the relationship's send queue, read from its record now; with the record's
/// `tstp` the acknowledgement is matched against (0: the partner's own binding echoed).
fn next_binding(
    to_send: &mut VecDeque<Binding>,
    repl: Option<&mut Replicator>,
    i: usize,
) -> Option<Next> {
    if let Some(b) = to_send.pop_front() {
        let tstp = b.potential_expiry;
        return Some((b, None, tstp));
    }
    let repl = repl?;
    loop {
        let (t, s) = repl.queue(i)?.pop()?;
        let Some((ip, _, l)) = repl.read(t, s) else {
            continue;
        };
        if let Some(mut b) = Binding::from_lease(ip, &l, 0) {
            // A binding the partner sent us (`tstp` 0 once installed) goes back, on an
            // update request or as the winner of a conflict, with the partner's own
            // potential expiry: a 0 there would erase what the partner knows of it.
            b.potential_expiry = b.potential_expiry.max(l.tsfp);
            return Some((b, Some((t, s)), l.tstp));
        }
    }
}
