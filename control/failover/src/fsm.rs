//! The failover state machine of one relationship (draft §9), as ISC dhcpd 4.4 runs it
//! (`server/failover.c`; `reference/failover-protocol.md` §1.1, §1.6).
//!
//! Sans-IO, in quinn-proto's shape. The driver owns the TCP link and the clocks and:
//! * calls [`Fsm::handle_connected`] when a TCP link to the peer is up (either direction),
//!   [`Fsm::handle_disconnected`] when it is gone, [`Fsm::handle_frame`] with every frame of
//!   the [`msg::StreamDecoder`] (it checks the digest, parses, and calls
//!   [`Fsm::handle_message`]), and [`Fsm::handle_timeout`] once [`Fsm::poll_timeout`]'s
//!   instant has passed;
//! * after **every** `handle_*` or local-event call, drains [`Fsm::poll_event`] and
//!   [`Fsm::poll_transmit`] until they return `None`, and asks [`Fsm::poll_timeout`] again;
//! * stores [`Event::Persist`] durably before writing any transmit polled after it (ISC
//!   records each state change before acting on it, `failover.c:1822-1829`);
//! * on [`Event::CloseLink`], writes its `last_words` and closes the TCP link; the machine has
//!   already treated the link as gone.
//!
//! Lease traffic (BNDUPD, BNDACK, pool balancing) is the driver's: it reads those messages
//! from the same parsed [`Repr`] and sends its own with [`Fsm::send`], which keeps the
//! keepalive timer right. The machine tells it when to (re)send ([`Event::SendUpdates`],
//! [`Event::UpdateRequest`]) and is told when an update run is complete
//! ([`Fsm::update_done`]).
//!
//! Architecture invariant: nothing here reads a clock or touches a socket.

use std::collections::VecDeque;
use std::time::Duration;

use lease_record::UnixTime;

use super::digest;
use super::hash::Hba;
use super::msg::{self, MessageType, RejectReason, Repr, ServerState};
use super::{Instant, Now, Role};

/// A state without its data: the wire [`ServerState`] serves as the kind.
pub type StateKind = ServerState;

/// How long STARTUP lasts without news from the peer (`failover.c:1990-2000`, 15 s).
pub const STARTUP_TIME: Duration = Duration::from_secs(15);
/// How long a new TCP link may wait for CONNECT or CONNECTACK (`failover.c:335-347`).
pub const LINK_STARTUP_TIME: Duration = Duration::from_secs(15);
/// Longest MCLT a CONNECT may carry (seven days): a partner's MCLT bounds how long an
/// address waits before reuse, and a rogue one could otherwise make that forever.
pub const MAX_MCLT: u32 = 7 * 86_400;
/// Largest accepted difference between the peer's header time and ours (`failover.c:573-580`).
pub const DEFAULT_MAX_CLOCK_SKEW: u32 = 60;
/// How often the last time of operation (draft §9.3.2 step 5) is recorded while operating,
/// besides every state change and the orderly stop: a crash loses at most this much of it.
pub const OPERATION_RECORD_INTERVAL: Duration = Duration::from_secs(5);
/// Seconds by which the partner's entry into PARTNER-DOWN must follow our recorded last time
/// of operation for STARTUP to go to RECOVER: the record interval a crash may lose, plus
/// slack for whole-second times and the STATE's transit, which the skew estimate
/// ([`Fsm`]'s `partner_down_after_our_operation`) cannot see.
pub const PARTNER_DOWN_MARGIN: u32 = OPERATION_RECORD_INTERVAL.as_secs() as u32 + 5;

/// Settings of one relationship (DESIGN.md §6 `[[failover]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The relationship name, sent in CONNECT and CONNECTACK (option 22).
    pub name: Vec<u8>,
    pub role: Role,
    /// Seconds. The primary's value is sent in CONNECT; a secondary uses it until it learns
    /// the primary's.
    pub mclt: u32,
    /// Whether `mclt` is the operator's own setting (a secondary may leave it to the
    /// primary). A tandem secondary shows its `mclt` to a tandem primary only then
    /// ([`PartnerSettings`]).
    pub mclt_configured: bool,
    /// The primary's bucket assignment, sent in CONNECT. A secondary learns it.
    pub hba: Hba,
    /// Seconds; sent as receive-timer, and our own timeout for hearing from the peer.
    pub max_response_delay: u32,
    /// Sent as max-unacked-bndupd.
    pub max_unacked_updates: u32,
    /// The safe period (draft §10): seconds in COMMUNICATIONS-INTERRUPTED before going to
    /// PARTNER-DOWN by itself. `None` = off (the default, as ISC). Enabling it on **both**
    /// sides lets a partition longer than it put both in PARTNER-DOWN (draft §10's warning);
    /// enable it on one side only, or not at all.
    pub auto_partner_down: Option<u32>,
    /// Sent as vendor-class-identifier.
    pub vendor_class: Vec<u8>,
    /// Seconds of clock difference accepted in CONNECT/CONNECTACK.
    pub max_clock_skew: u32,
    /// Shared secret of a tandem-to-tandem link: every message is signed and every message
    /// received must carry a valid HMAC-SHA256 digest ([`super::digest`]). `None` for ISC
    /// peers, which have no digest.
    pub shared_secret: Option<Vec<u8>>,
    /// Drawn from the operating system's random source by the driver: with the secret, it
    /// makes each link's nonce unpredictable ([`super::digest::nonce`]).
    pub nonce_seed: [u8; 32],
}

impl Config {
    /// ISC's defaults: max-response-delay 20 s, max-unacked-updates 100, MCLT 3600 s,
    /// `split 128`, no safe period.
    pub fn new(name: &str, role: Role) -> Self {
        Self {
            name: name.as_bytes().to_vec(),
            role,
            mclt: 3600,
            mclt_configured: true,
            hba: Hba::split(128),
            max_response_delay: 20,
            max_unacked_updates: 100,
            auto_partner_down: None,
            vendor_class: format!("tandem-{}", env!("CARGO_PKG_VERSION")).into_bytes(),
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            shared_secret: None,
            nonce_seed: [0; 32],
        }
    }
}

/// A [`Config`] that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("relationship name must be 1..=255 bytes")]
    Name,
    #[error("vendor class must be at most 255 bytes")]
    VendorClass,
    #[error("mclt must be 1 s to 7 days on the primary")]
    Mclt,
    #[error("max_response_delay must be at least 1 s")]
    MaxResponseDelay,
    #[error("max_unacked_updates must be at least 1 (0 stops the peer sending updates)")]
    MaxUnacked,
    #[error("shared secret is empty")]
    EmptySecret,
}

impl Config {
    /// Checks what the machine relies on: every message it builds then fits in 2048 bytes,
    /// and the peer gets usable timers (ISC misbehaves on zeros, reference §1.3).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() || self.name.len() > 255 {
            return Err(ConfigError::Name);
        }
        if self.vendor_class.len() > 255 {
            return Err(ConfigError::VendorClass);
        }
        if self.role == Role::Primary && (self.mclt == 0 || self.mclt > MAX_MCLT) {
            return Err(ConfigError::Mclt);
        }
        if self.max_response_delay == 0 {
            return Err(ConfigError::MaxResponseDelay);
        }
        if self.max_unacked_updates == 0 {
            return Err(ConfigError::MaxUnacked);
        }
        if self.shared_secret.as_ref().is_some_and(Vec::is_empty) {
            return Err(ConfigError::EmptySecret);
        }
        Ok(())
    }
}

/// The server's own state, with what each state needs to know (draft §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Just started: tells the peer `saved` with the STARTUP flag, and goes back to it on
    /// the peer's first STATE or at `until`.
    Startup {
        saved: StateKind,
        until: Instant,
    },
    Normal,
    /// Lost the peer; `auto_partner_down_at` is the end of the safe period, if configured.
    CommunicationsInterrupted {
        auto_partner_down_at: Option<Instant>,
    },
    /// The peer is down; it is known silent since `since` (wall clock): the partner's free
    /// addresses may be taken `MCLT` after it ([`super::mclt::may_reallocate`]).
    PartnerDown {
        since: UnixTime,
    },
    PotentialConflict,
    ResolutionInterrupted,
    ConflictDone,
    Recover,
    /// UPDDONE received in RECOVER; waits until `start-time-of-state + MCLT`.
    RecoverWait {
        until: Instant,
    },
    RecoverDone,
    Paused,
    Shutdown,
}

impl State {
    pub fn kind(&self) -> StateKind {
        match self {
            Self::Startup { .. } => StateKind::Startup,
            Self::Normal => StateKind::Normal,
            Self::CommunicationsInterrupted { .. } => StateKind::CommunicationsInterrupted,
            Self::PartnerDown { .. } => StateKind::PartnerDown,
            Self::PotentialConflict => StateKind::PotentialConflict,
            Self::ResolutionInterrupted => StateKind::ResolutionInterrupted,
            Self::ConflictDone => StateKind::ConflictDone,
            Self::Recover => StateKind::Recover,
            Self::RecoverWait { .. } => StateKind::RecoverWait,
            Self::RecoverDone => StateKind::RecoverDone,
            Self::Paused => StateKind::Paused,
            Self::Shutdown => StateKind::Shutdown,
        }
    }
}

/// The settings the partner showed in its last CONNECT or CONNECTACK, for the
/// operator's check that both servers are configured alike. A primary sends its MCLT and
/// bucket assignment in CONNECT (draft §7.2, and the secondary takes them); a tandem
/// secondary answers a tandem primary's CONNECT with its own in the CONNECTACK (ISC's
/// never does, so against an ISC secondary the primary learns none of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerSettings {
    /// When they were received.
    pub at: UnixTime,
    /// The partner's MCLT, seconds.
    pub mclt: Option<u32>,
    /// The partner's bucket assignment (the buckets the primary serves).
    pub hba: Option<Hba>,
    /// Its max-unacked-bndupd.
    pub max_unacked: u32,
    /// Its receive-timer (`max_response_delay`), seconds.
    pub receive_timer: u32,
    /// Its vendor class (`tandem-0.1.0`; ISC dhcpd sends none).
    pub vendor_class: Option<String>,
}

impl PartnerSettings {
    fn of(at: UnixTime, o: &msg::Options<'_>) -> Self {
        PartnerSettings {
            at,
            mclt: o.mclt,
            hba: o.hba.and_then(Hba::from_bytes),
            max_unacked: o.max_unacked.unwrap_or(0),
            receive_timer: o.receive_timer.unwrap_or(0),
            vendor_class: o
                .vendor_class
                .map(|v| String::from_utf8_lossy(v).into_owned()),
        }
    }
}

/// What must survive a restart (ISC writes `failover peer "X" state { my state S at T;
/// partner state S at T; mclt N; }`, `db.c:766-812`). A plain value the driver stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersistedState {
    /// Never STARTUP: the state STARTUP would go back to.
    pub my_state: StateKind,
    pub my_stos: UnixTime,
    /// `None` until the peer's first STATE.
    pub partner_state: Option<StateKind>,
    pub partner_stos: UnixTime,
    /// The MCLT in force (a secondary's is learned from CONNECT).
    pub mclt: u32,
    /// The primary's HBA as last learned (a secondary's; the primary's own from config).
    pub hba: Hba,
    /// In PARTNER-DOWN: since when the partner is known silent.
    pub partner_down_since: UnixTime,
    /// This server's last recorded time of operation (draft §9.3.2 step 5): the last time it
    /// ran the relationship outside STARTUP, recorded on every state change, every
    /// [`OPERATION_RECORD_INTERVAL`] and at the orderly stop. `None` when unknown (a new
    /// relationship, or a state file from before it was kept): then a partner found in
    /// PARTNER-DOWN is never taken to have entered it after we stopped, and STARTUP goes to
    /// POTENTIAL-CONFLICT, which exchanges both sides' updates, rather than RECOVER.
    pub last_operation: Option<UnixTime>,
}

/// Whether and how this server answers DHCP clients of the relationship (ISC
/// `dhcp_failover_set_service_state`, `failover.c:1655-1744`). Workers read it through the
/// driver's state snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// Answer nobody.
    NotResponding,
    /// STARTUP: not yet answering.
    Startup,
    /// NORMAL: the clients the HBA gives us, from our own free pool, MCLT-limited times.
    Cooperating,
    /// COMMUNICATIONS-INTERRUPTED: every client, but only our own FREE/BACKUP addresses and
    /// MCLT-limited times.
    NotCooperating,
    /// PARTNER-DOWN: every client, and the partner's addresses once reclaimable.
    PartnerDown,
}

/// Something the driver must know or do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Our state changed; `at` is the new start-time-of-state.
    StateChanged {
        from: StateKind,
        to: StateKind,
        at: UnixTime,
    },
    /// The peer reported a new state.
    PartnerStateChanged {
        from: Option<StateKind>,
        to: StateKind,
        startup: bool,
    },
    /// Store this before sending anything polled after it.
    Persist(PersistedState),
    /// CONNECT/CONNECTACK done: the link carries failover traffic now.
    Connected,
    /// Close the TCP link after writing `last_words`; the machine already counts it gone.
    CloseLink {
        reason: CloseReason,
        last_words: Vec<Transmit>,
    },
    /// The peer refused our CONNECT or sent DISCONNECT.
    RejectedByPeer {
        reason: Option<RejectReason>,
        message: Option<String>,
    },
    /// Send every pending BNDUPD (entering NORMAL; ISC `dhcp_failover_send_updates`).
    SendUpdates,
    /// Move every unacknowledged BNDUPD back to the send queue (ISC
    /// `dhcp_failover_rescind_updates`, on leaving NORMAL, POTENTIAL-CONFLICT, PARTNER-DOWN
    /// and on losing the link in CONFLICT-DONE).
    RescindUpdates,
    /// The peer asked for updates: all bindings (`all`, UPDREQALL) or the unacknowledged
    /// ones (UPDREQ). Send them, then call [`Fsm::update_done`] once they are acknowledged.
    UpdateRequest { all: bool },
    /// The peer has sent everything we asked for (UPDDONE).
    UpdatesReceived,
    /// POOLREQ: rebalance and answer with [`Fsm::send_pool_response`].
    PoolRequest { xid: u32 },
    /// POOLRESP: the peer moved this many addresses.
    PoolResponse { addresses: u32 },
}

/// Why the machine closed the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// We refused the peer's CONNECT or CONNECTACK.
    Rejected(RejectReason),
    /// The peer refused us or sent DISCONNECT.
    PeerRejected,
    /// No CONNECT/CONNECTACK within [`LINK_STARTUP_TIME`].
    StartupTimeout,
    /// Nothing heard for max-response-delay.
    ReceiveTimeout,
    /// A frame that does not parse ([`msg::ParseError`]): ISC drops the link too.
    ProtocolError,
}

/// One message to write to the peer link, encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub msg_type: MessageType,
    pub bytes: Vec<u8>,
}

/// Local events that are refused in the current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LocalEventError {
    #[error(
        "partner-down is only allowed from communications-interrupted or resolution-interrupted, not {0:?}"
    )]
    PartnerDownNotAllowed(StateKind),
    #[error(
        "a resync is asked in normal only, not {0:?} (recovery asks for every binding by itself)"
    )]
    ResyncNotAllowed(StateKind),
    #[error("the peer link is down: there is no partner to ask")]
    NotConnected,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Down,
    /// TCP up; waiting for CONNECT (secondary) or CONNECTACK (primary).
    Starting {
        deadline: Instant,
    },
    Up {
        rx_deadline: Instant,
        contact_at: Instant,
    },
}

/// A link's message authentication between tandem peers ([`super::digest`]'s replay
/// protection): our nonce, then the link's key and each direction's sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct LinkAuth {
    ours: Option<[u8; digest::NONCE_LEN]>,
    key: Option<[u8; 32]>,
    sent: u64,
    received: u64,
}

/// The failover state machine of one relationship.
#[derive(Debug)]
pub struct Fsm {
    config: Config,
    state: State,
    my_stos: UnixTime,
    partner_state: Option<StateKind>,
    partner_stos: UnixTime,
    partner_startup: bool,
    /// Since when the partner is known silent, for PARTNER-DOWN (persisted).
    saved_partner_down_since: UnixTime,
    /// When a message from the partner last passed the digest check and parsed, this run:
    /// the floor of an operator's partner-down time.
    last_heard: Option<UnixTime>,
    /// Our last recorded time of operation ([`PersistedState::last_operation`]); in STARTUP
    /// the stored one, untouched until STARTUP ends.
    last_operation: Option<UnixTime>,
    /// When the last time of operation is next recorded (outside STARTUP).
    next_record: Instant,
    mclt: u32,
    hba: Hba,
    link: Link,
    partner_max_unacked: u32,
    partner_receive_timer: u32,
    /// What the partner last showed of its settings (kept over link losses).
    partner_settings: Option<PartnerSettings>,
    /// The peer's vendor class says tandem: it takes batched BNDUPDs ([`msg::BindingBatch`]).
    partner_batches: bool,
    next_xid: u32,
    /// xid of the peer's UPDREQ/UPDREQALL, echoed in our UPDDONE.
    upd_xid: Option<u32>,
    /// The update request we have outstanding (ISC `curUPD`).
    cur_upd: Option<MessageType>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// The budget of the lines a peer's refused messages cause (one per connection, and
    /// connections can come in a flood).
    refusal_log: super::loglimit::LogLimit,
    auth: LinkAuth,
    /// Nonces drawn so far.
    nonces: u64,
}

impl Fsm {
    /// A machine at start-up: in STARTUP, going back to the persisted state; a relationship
    /// never seen before (`persisted == None`) starts from RECOVER (`confpars.c:1197-1201`).
    /// `config` should pass [`Config::validate`].
    pub fn new(config: Config, persisted: Option<PersistedState>, now: Now) -> Self {
        let p = persisted.unwrap_or(PersistedState {
            my_state: StateKind::Recover,
            my_stos: now.wall,
            partner_state: None,
            partner_stos: now.wall,
            mclt: config.mclt,
            hba: config.hba,
            partner_down_since: now.wall,
            last_operation: None,
        });
        let (mclt, hba) = match config.role {
            Role::Primary => (config.mclt, config.hba),
            Role::Secondary => (p.mclt, p.hba),
        };
        let saved = match p.my_state {
            StateKind::Startup => StateKind::Recover,
            s => s,
        };
        let fsm = Self {
            config,
            state: State::Startup {
                saved,
                until: now.instant + STARTUP_TIME,
            },
            my_stos: p.my_stos,
            partner_state: p.partner_state,
            partner_stos: p.partner_stos,
            partner_startup: false,
            saved_partner_down_since: p.partner_down_since,
            last_heard: None,
            last_operation: p.last_operation,
            next_record: now.instant + OPERATION_RECORD_INTERVAL,
            mclt,
            hba,
            link: Link::Down,
            partner_max_unacked: 0,
            partner_receive_timer: 0,
            partner_settings: None,
            partner_batches: false,
            next_xid: 1,
            upd_xid: None,
            cur_upd: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            refusal_log: super::loglimit::LogLimit::new(),
            auth: LinkAuth::default(),
            nonces: 0,
        };
        tracing::info!(relationship = %fsm.name(), state = saved.name(), "failover: starting up");
        fsm
    }

    // ---- accessors ----

    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn state(&self) -> State {
        self.state
    }
    /// Our state's kind; STARTUP while starting up (the peer is told the saved state, see
    /// [`PersistedState::my_state`] through [`Fsm::persisted`]).
    pub fn kind(&self) -> StateKind {
        self.state.kind()
    }
    pub fn partner_state(&self) -> Option<StateKind> {
        self.partner_state
    }
    /// Start time of our state.
    pub fn stos(&self) -> UnixTime {
        self.my_stos
    }
    pub fn mclt(&self) -> u32 {
        self.mclt
    }
    pub fn hba(&self) -> Hba {
        self.hba
    }
    /// Whether CONNECT/CONNECTACK has completed on the current link.
    pub fn is_connected(&self) -> bool {
        matches!(self.link, Link::Up { .. })
    }
    /// Whether the peer's last STATE carried the STARTUP flag.
    pub fn partner_in_startup(&self) -> bool {
        self.partner_startup
    }

    /// How many BNDUPDs may be outstanding toward the peer: its max-unacked-bndupd, at
    /// least 1 (0 would stall replication) and at most our own `max_unacked_updates`, so a
    /// peer cannot make us keep an unbounded amount in flight.
    pub fn partner_max_unacked(&self) -> u32 {
        self.partner_max_unacked
            .clamp(1, self.config.max_unacked_updates.max(1))
    }

    /// The settings the partner showed when the link last came up; `None` before it first
    /// did.
    pub fn partner_settings(&self) -> Option<&PartnerSettings> {
        self.partner_settings.as_ref()
    }

    /// Whether the peer takes several bindings per BNDUPD and BNDACK ([`msg::BindingBatch`]):
    /// its CONNECT or CONNECTACK named a tandem vendor class. ISC drops the link on a
    /// batch, so it gets one binding per message.
    pub fn partner_batches(&self) -> bool {
        self.partner_batches && self.is_connected()
    }

    /// How to serve DHCP clients now. A peer known to be in PARTNER-DOWN or resolving
    /// conflicts silences us whatever our own state (`failover.c:1718-1742`).
    pub fn service(&self) -> Service {
        let own = match self.state.kind() {
            StateKind::Normal => Service::Cooperating,
            StateKind::CommunicationsInterrupted => Service::NotCooperating,
            StateKind::PartnerDown => Service::PartnerDown,
            StateKind::Startup => Service::Startup,
            _ => Service::NotResponding,
        };
        let peer_demands_silence = matches!(
            self.partner_state,
            Some(
                StateKind::PartnerDown
                    | StateKind::PotentialConflict
                    | StateKind::ConflictDone
                    | StateKind::ResolutionInterrupted
            )
        );
        if own != Service::NotResponding && peer_demands_silence {
            Service::NotResponding
        } else {
            own
        }
    }

    /// What to store so a restart resumes here.
    pub fn persisted(&self) -> PersistedState {
        let my_state = match self.state {
            State::Startup { saved, .. } => saved,
            s => s.kind(),
        };
        PersistedState {
            my_state,
            my_stos: self.my_stos,
            partner_state: self.partner_state,
            partner_stos: self.partner_stos,
            mclt: self.mclt,
            hba: self.hba,
            partner_down_since: self.partner_down_since(),
            last_operation: self.last_operation,
        }
    }

    /// Our last recorded time of operation (draft §9.3.2 step 5).
    pub fn last_operation(&self) -> Option<UnixTime> {
        self.last_operation
    }

    /// Asks the driver to store the state ([`Event::Persist`]), with `now` as the last time
    /// of operation unless in STARTUP, which is not operating and must keep the stored one
    /// for its own decision (draft §9.3.2 step 5). Restarts the periodic record.
    fn persist(&mut self, now: Now) {
        if !matches!(self.state, State::Startup { .. }) {
            self.last_operation = Some(now.wall);
            self.next_record = now.instant + OPERATION_RECORD_INTERVAL;
        }
        self.events.push_back(Event::Persist(self.persisted()));
    }

    /// Records `now` as the last time of operation at once (the orderly stop: the session
    /// stores it before SHUTDOWN, which it does not store). Nothing in STARTUP.
    pub fn record_operation(&mut self, now: Now) {
        if !matches!(self.state, State::Startup { .. }) {
            self.persist(now);
        }
    }

    fn partner_down_since(&self) -> UnixTime {
        match self.state {
            State::PartnerDown { since } => since,
            _ => self.saved_partner_down_since,
        }
    }

    fn name(&self) -> String {
        String::from_utf8_lossy(&self.config.name).into_owned()
    }

    /// The state the peer-state table and the disconnect rules look at: STARTUP's saved one.
    fn effective(&self) -> StateKind {
        match self.state {
            State::Startup { saved, .. } => saved,
            s => s.kind(),
        }
    }

    // ---- pollers ----

    /// The next message to write to the peer link. Call until `None` after every input.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing the driver must know. Call until `None` after every input.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Fsm::handle_timeout`] must next be called; ask again after every input.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let state = match self.state {
            State::Startup { until, .. } | State::RecoverWait { until } => Some(until),
            State::CommunicationsInterrupted {
                auto_partner_down_at,
            } => auto_partner_down_at,
            _ => None,
        };
        let record = match self.state {
            State::Startup { .. } => None,
            _ => Some(self.next_record),
        };
        let link = match self.link {
            Link::Down => None,
            Link::Starting { deadline } => Some(deadline),
            Link::Up {
                rx_deadline,
                contact_at,
            } => Some(rx_deadline.min(contact_at)),
        };
        [state, record, link].into_iter().flatten().min()
    }

    // ---- inputs ----

    /// A TCP link to the peer is up. The primary sends CONNECT (`failover.c:325-333`).
    pub fn handle_connected(&mut self, now: Now) {
        if self.link != Link::Down {
            // A second link while one exists: the driver keeps one; restart on the new one.
            self.drop_link(now);
        }
        self.link = Link::Starting {
            deadline: now.instant + LINK_STARTUP_TIME,
        };
        self.auth = LinkAuth::default();
        if self.config.role == Role::Primary {
            self.auth.ours = self.fresh_nonce(now);
            let nonce = self.auth.ours.map(|n| digest::nonce_option(&n));
            let mut r = Repr::new(MessageType::Connect, now.wall, self.take_xid());
            let vendor = self.config.vendor_class.clone();
            let name = self.config.name.clone();
            let hba = self.hba;
            let o = &mut r.options;
            o.relationship_name = Some(&name);
            o.max_unacked = Some(self.config.max_unacked_updates);
            o.receive_timer = Some(self.config.max_response_delay);
            o.vendor_class = Some(&vendor);
            o.protocol_version = Some(msg::PROTOCOL_VERSION);
            o.tls_request = Some(0);
            o.mclt = Some(self.mclt);
            o.hba = Some(hba.as_bytes());
            o.vendor_options = nonce.as_ref().map(|v| &v[..]);
            self.push(now, &r);
        }
    }

    /// A nonce for a new link when a secret is configured.
    fn fresh_nonce(&mut self, now: Now) -> Option<[u8; digest::NONCE_LEN]> {
        let secret = self.config.shared_secret.as_ref()?;
        self.nonces += 1;
        let mut seed = self.config.nonce_seed.to_vec();
        seed.extend_from_slice(&now.wall.0.to_be_bytes());
        seed.extend_from_slice(&now.instant.as_millis().to_be_bytes());
        Some(digest::nonce(secret, &seed, self.nonces))
    }

    /// The TCP link is gone (closed by either side). ISC's "disconnect" transition
    /// (`failover.c:1536-1591`).
    pub fn handle_disconnected(&mut self, now: Now) {
        if self.link == Link::Down {
            return;
        }
        self.drop_link(now);
    }

    fn drop_link(&mut self, now: Now) {
        self.link = Link::Down;
        self.auth = LinkAuth::default();
        self.transmits.clear();
        self.cur_upd = None;
        self.upd_xid = None;
        self.partner_startup = false;
        tracing::info!(relationship = %self.name(), "failover: peer disconnected");
        self.disconnect_transition(now);
    }

    fn disconnect_transition(&mut self, now: Now) {
        let in_startup = matches!(self.state, State::Startup { .. });
        match self.effective() {
            StateKind::ConflictDone => {
                self.events.push_back(Event::RescindUpdates);
                if in_startup {
                    self.transition(StateKind::ConflictDone, now);
                }
            }
            StateKind::PotentialConflict => self.transition(StateKind::ResolutionInterrupted, now),
            StateKind::Normal => self.transition(StateKind::CommunicationsInterrupted, now),
            s => {
                if in_startup {
                    self.transition(s, now);
                }
            }
        }
    }

    /// Closes the link from our side: queues `farewell` after anything pending and hands all
    /// of it to the driver in [`Event::CloseLink`].
    fn close_link(&mut self, now: Now, reason: CloseReason, farewell: Option<Repr<'_>>) {
        if let Some(r) = farewell {
            self.push(now, &r);
        }
        let last_words: Vec<Transmit> = self.transmits.drain(..).collect();
        self.events
            .push_back(Event::CloseLink { reason, last_words });
        if self.link != Link::Down {
            self.drop_link(now);
        }
    }

    /// Timers: link startup and receive timeouts, CONTACT, STARTUP's end, the safe period,
    /// RECOVER-WAIT's end, the periodic record of the last time of operation. Call when
    /// [`Fsm::poll_timeout`]'s instant has passed (early calls are harmless).
    pub fn handle_timeout(&mut self, now: Now) {
        match self.link {
            Link::Starting { deadline } if now.instant >= deadline => {
                tracing::info!(relationship = %self.name(), "failover: link startup timeout");
                self.close_link(now, CloseReason::StartupTimeout, None);
            }
            Link::Up { rx_deadline, .. } if now.instant >= rx_deadline => {
                tracing::warn!(relationship = %self.name(), "failover: timeout waiting for peer");
                // Draft §8.3 asks for DISCONNECT 17; ISC just closes. The message is harmless.
                let mut r = Repr::new(MessageType::Disconnect, now.wall, self.take_xid());
                r.options.reject_reason = Some(RejectReason::NoTraffic);
                r.options.message = Some(RejectReason::NoTraffic.text().as_bytes());
                self.close_link(now, CloseReason::ReceiveTimeout, Some(r));
            }
            Link::Up { contact_at, .. } if now.instant >= contact_at => {
                let r = Repr::new(MessageType::Contact, now.wall, self.take_xid());
                self.push(now, &r);
            }
            _ => {}
        }
        match self.state {
            State::Startup { until, .. } if now.instant >= until => {
                // ISC's startup timeout runs the disconnect transition (`failover.c:3162-3171`).
                self.disconnect_transition(now);
            }
            State::CommunicationsInterrupted {
                auto_partner_down_at: Some(at),
            } if now.instant >= at => {
                tracing::warn!(relationship = %self.name(), "failover: safe period over, partner down");
                self.saved_partner_down_since = now.wall;
                self.transition(StateKind::PartnerDown, now);
            }
            State::RecoverWait { until } if now.instant >= until => {
                self.transition(StateKind::RecoverDone, now);
            }
            _ => {}
        }
        if now.instant >= self.next_record {
            self.record_operation(now);
        }
    }

    /// One whole frame from the peer link ([`msg::StreamDecoder`]): checks the digest when a
    /// shared secret is configured, parses, and handles it. Returns the message for the
    /// session's own processing (BNDUPD, BNDACK) when it came on a link through
    /// CONNECT/CONNECTACK. `None` when it came before (dropped, as ISC drops it) or was
    /// refused; then the link is being closed ([`Event::CloseLink`], with DISCONNECT and the
    /// reject reason when the digest was wrong or missing).
    pub fn handle_frame<'a>(&mut self, now: Now, frame: &'a [u8]) -> Option<Repr<'a>> {
        if self.link == Link::Down {
            return None;
        }
        if let Err(e) = self.check_digest(frame) {
            if let Some(held) = self.refusal_log.allow(now.instant) {
                tracing::warn!(relationship = %self.name(), error = %e, held_back = held, "failover: message refused");
            }
            let reason = e.reject_reason();
            let mut r = Repr::new(MessageType::Disconnect, now.wall, self.take_xid());
            r.options.reject_reason = Some(reason);
            r.options.message = Some(reason.text().as_bytes());
            self.close_link(now, CloseReason::Rejected(reason), Some(r));
            return None;
        }
        if self.auth.key.is_some() {
            self.auth.received += 1;
        }
        match Repr::parse_bytes(frame) {
            Ok(r) => {
                self.last_heard = Some(now.wall);
                let handshake_done = self.is_connected();
                self.handle_message(now, &r);
                // Lease traffic counts only on a link through CONNECT/CONNECTACK: before it,
                // anyone who reached the port could install bindings.
                handshake_done.then_some(r)
            }
            Err(e) => {
                if let Some(held) = self.refusal_log.allow(now.instant) {
                    tracing::warn!(relationship = %self.name(), error = %e, held_back = held, "failover: bad message");
                }
                self.close_link(now, CloseReason::ProtocolError, None);
                None
            }
        }
    }

    /// The digest of a frame from the peer, when a secret is configured: on an established
    /// link under the link's key, over the direction and the next sequence number; in the
    /// handshake under the secret, a CONNECTACK over our CONNECT's nonce.
    fn check_digest(&self, frame: &[u8]) -> Result<(), digest::DigestError> {
        let Some(secret) = &self.config.shared_secret else {
            return Ok(());
        };
        if let Some(k) = &self.auth.key {
            let from_primary = self.config.role == Role::Secondary;
            let context = digest::link_context(from_primary, self.auth.received);
            return digest::verify_in(frame, k, &context);
        }
        let connectack = frame.get(2) == Some(&(MessageType::ConnectAck as u8));
        match self.auth.ours {
            Some(n) if connectack => digest::verify_in(frame, secret, &n),
            _ => digest::verify(frame, secret),
        }
    }

    /// One parsed message from the peer link (no digest check; see [`Fsm::handle_frame`]).
    pub fn handle_message(&mut self, now: Now, m: &Repr<'_>) {
        match self.link {
            Link::Down => return,
            Link::Starting { .. } => match m.msg_type {
                MessageType::Connect => return self.on_connect(now, m),
                MessageType::ConnectAck => return self.on_connectack(now, m),
                MessageType::Disconnect => return self.on_disconnect(now, m),
                // Nothing else is meaningful before the handshake; ISC has no state bound to
                // the link yet and drops such messages.
                _ => return,
            },
            Link::Up { contact_at, .. } => {
                // Any message re-arms the receive timer (`failover.c:1502-1520`).
                let rx_deadline = now.instant + self.own_delay();
                self.link = Link::Up {
                    rx_deadline,
                    contact_at,
                };
            }
        }
        match m.msg_type {
            MessageType::Connect => {
                // A CONNECT on an established link: ISC answers "duplicate connection".
                let reason = RejectReason::DuplicateConnection;
                let ack = self.build_connectack(now, m, Some((reason, "already connected")));
                self.send_and_close(now, CloseReason::Rejected(reason), ack);
            }
            MessageType::ConnectAck => {
                let mut r = Repr::new(MessageType::Disconnect, now.wall, self.take_xid());
                r.options.reject_reason = Some(RejectReason::DuplicateConnection);
                r.options.message = Some(RejectReason::DuplicateConnection.text().as_bytes());
                self.close_link(
                    now,
                    CloseReason::Rejected(RejectReason::DuplicateConnection),
                    Some(r),
                );
            }
            MessageType::Disconnect => self.on_disconnect(now, m),
            MessageType::State => self.on_state(now, m),
            MessageType::UpdReq | MessageType::UpdReqAll => {
                // ISC discards an older request still being served (`failover.c:5739-5743`).
                self.upd_xid = Some(m.xid);
                let all = m.msg_type == MessageType::UpdReqAll;
                self.events.push_back(Event::UpdateRequest { all });
            }
            MessageType::UpdDone => self.on_upddone(now),
            MessageType::PoolReq => self.events.push_back(Event::PoolRequest { xid: m.xid }),
            MessageType::PoolResp => self.events.push_back(Event::PoolResponse {
                addresses: m.options.addresses_transferred.unwrap_or(0),
            }),
            // Lease traffic is the driver's; CONTACT only proves the peer is alive.
            MessageType::BndUpd | MessageType::BndAck | MessageType::Contact => {}
        }
    }

    fn own_delay(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.max_response_delay.max(1)))
    }

    fn skew_too_large(&self, now: Now, m: &Repr<'_>) -> bool {
        now.wall.0.abs_diff(m.time.0) > self.config.max_clock_skew
    }

    /// CONNECT, as ISC's secondary checks it (`failover.c:524-612`, `:1319-1365`).
    fn on_connect(&mut self, now: Now, m: &Repr<'_>) {
        let o = &m.options;
        let reject = if self.config.role == Role::Primary {
            // Both ends configured primary; ISC does not check, the brief's role check does.
            Some((
                RejectReason::InvalidFailoverPartner,
                "both servers are primary",
            ))
        } else if o.relationship_name != Some(&self.config.name[..]) {
            Some((
                RejectReason::InvalidFailoverPartner,
                "unknown failover relationship name",
            ))
        } else if self.skew_too_large(now, m) {
            Some((RejectReason::TimeMismatch, "time offset too large"))
        } else if o.hba.map(<[u8]>::len) != Some(32) {
            Some((RejectReason::HashBucketAssignmentConflict, "invalid HBA"))
        } else if o.mclt.is_none_or(|v| v == 0) {
            Some((RejectReason::InvalidMclt, "no MCLT provided"))
        } else if o.mclt.is_some_and(|v| v > MAX_MCLT) {
            Some((RejectReason::InvalidMclt, "MCLT longer than seven days"))
        } else if self.config.shared_secret.is_some()
            && digest::nonce_of(o.vendor_options).is_none()
        {
            Some((RejectReason::DigestFailed, "no connection nonce"))
        } else {
            None
        };
        if let Some((reason, text)) = reject {
            if let Some(held) = self.refusal_log.allow(now.instant) {
                tracing::warn!(relationship = %self.name(), reason = text, held_back = held, "failover: CONNECT refused");
            }
            let ack = self.build_connectack(now, m, Some((reason, text)));
            return self.send_and_close(now, CloseReason::Rejected(reason), ack);
        }
        self.auth.ours = self.fresh_nonce(now);
        let ack = self.build_connectack(now, m, None);
        self.push_owned(ack);
        if let (Some(secret), Some(theirs), Some(ours)) = (
            &self.config.shared_secret,
            digest::nonce_of(o.vendor_options),
            self.auth.ours,
        ) {
            self.auth.key = Some(digest::link_key(secret, &theirs, &ours));
        }
        self.partner_max_unacked = o.max_unacked.unwrap_or(0);
        self.partner_receive_timer = o.receive_timer.unwrap_or(0);
        self.partner_batches = is_tandem(o.vendor_class);
        self.partner_settings = Some(PartnerSettings::of(now.wall, o));
        // The secondary takes the primary's MCLT and HBA (`failover.c:592-599`, `:1362`).
        self.mclt = o.mclt.unwrap_or(self.mclt);
        if let Some(h) = o.hba.and_then(Hba::from_bytes) {
            self.hba = h;
        }
        self.link_up(now);
        self.persist(now);
        self.send_state(now);
        self.resume_recovery(now);
    }

    /// In RECOVER with a new link and no request outstanding, ask for everything again. ISC
    /// asks only on entering RECOVER or on some peer states (`failover.c:2180-2215`), so a
    /// server that entered RECOVER while disconnected waits forever when its peer is in
    /// RECOVER-DONE or RECOVER-WAIT (found by the randomized run).
    fn resume_recovery(&mut self, now: Now) {
        if self.state.kind() == StateKind::Recover && self.cur_upd.is_none() {
            self.send_update_request_all(now);
        }
    }

    fn build_connectack(
        &mut self,
        now: Now,
        m: &Repr<'_>,
        reject: Option<(RejectReason, &str)>,
    ) -> Transmit {
        let mut r = Repr::new(MessageType::ConnectAck, now.wall, m.xid);
        let name = self.config.name.clone();
        let vendor = self.config.vendor_class.clone();
        // Our nonce only when we accept; the digest covers the CONNECT's nonce either way.
        let theirs = digest::nonce_of(m.options.vendor_options);
        let ours = match reject {
            None => self.auth.ours.map(|n| digest::nonce_option(&n)),
            Some(_) => None,
        };
        let o = &mut r.options;
        o.vendor_options = ours.as_ref().map(|v| &v[..]);
        o.relationship_name = Some(&name);
        o.max_unacked = Some(self.config.max_unacked_updates);
        o.receive_timer = Some(self.config.max_response_delay);
        o.vendor_class = Some(&vendor);
        o.protocol_version = Some(msg::PROTOCOL_VERSION);
        if m.options.tls_request.is_some() {
            o.tls_reply = Some(0);
        }
        // A tandem primary compares these with its own (`PartnerSettings`); ISC's would not
        // expect them, so only a tandem CONNECT gets them, and only with an acceptance.
        let configured_hba = self.config.hba;
        if reject.is_none() && is_tandem(m.options.vendor_class) {
            o.mclt = self.config.mclt_configured.then_some(self.config.mclt);
            o.hba = Some(configured_hba.as_bytes());
        }
        if let Some((reason, text)) = reject {
            o.reject_reason = Some(reason);
            o.message = Some(text.as_bytes());
        }
        self.encode_handshake(&r, theirs.as_ref().map_or(&[][..], |n| &n[..]))
    }

    /// The CONNECTACK refusing `connect`, a CONNECT that arrived on a second TCP link while
    /// this one is established: reject 7, duplicate connection (ISC `failover.c:1326-1333`).
    /// The established link is untouched; the caller writes the bytes and closes the other.
    pub fn duplicate_connectack(&mut self, now: Now, connect: &Repr<'_>) -> Vec<u8> {
        let reason = Some((RejectReason::DuplicateConnection, "already connected"));
        self.build_connectack(now, connect, reason).bytes
    }

    fn send_and_close(&mut self, now: Now, reason: CloseReason, t: Transmit) {
        self.transmits.push_back(t);
        self.close_link(now, reason, None);
    }

    /// CONNECTACK, as ISC's primary checks it (`failover.c:1366-1470`).
    fn on_connectack(&mut self, now: Now, m: &Repr<'_>) {
        let o = &m.options;
        if let Some(reason) = o.reject_reason {
            tracing::warn!(relationship = %self.name(), ?reason, "failover: CONNECT rejected by peer");
            self.events.push_back(Event::RejectedByPeer {
                reason: Some(reason),
                message: o.message.map(|b| String::from_utf8_lossy(b).into_owned()),
            });
            return self.close_link(now, CloseReason::PeerRejected, None);
        }
        let reject = if self.config.role == Role::Secondary {
            Some((
                RejectReason::InvalidFailoverPartner,
                "both servers are secondary",
            ))
        } else if o.relationship_name != Some(&self.config.name[..]) {
            Some((
                RejectReason::InvalidFailoverPartner,
                "relationship name does not match",
            ))
        } else if self.skew_too_large(now, m) {
            Some((RejectReason::TimeMismatch, "time offset too large"))
        } else if self.config.shared_secret.is_some()
            && digest::nonce_of(o.vendor_options).is_none()
        {
            Some((RejectReason::DigestFailed, "no connection nonce"))
        } else {
            None
        };
        if let Some((reason, text)) = reject {
            let mut r = Repr::new(MessageType::Disconnect, now.wall, self.take_xid());
            r.options.reject_reason = Some(reason);
            r.options.message = Some(text.as_bytes());
            return self.close_link(now, CloseReason::Rejected(reason), Some(r));
        }
        if let (Some(secret), Some(ours), Some(theirs)) = (
            &self.config.shared_secret,
            self.auth.ours,
            digest::nonce_of(o.vendor_options),
        ) {
            self.auth.key = Some(digest::link_key(secret, &ours, &theirs));
        }
        self.partner_max_unacked = o.max_unacked.unwrap_or(0);
        self.partner_receive_timer = o.receive_timer.unwrap_or(0);
        self.partner_batches = is_tandem(o.vendor_class);
        self.partner_settings = Some(PartnerSettings::of(now.wall, o));
        self.link_up(now);
        // STARTUP ends on the partner's STATE, not here (draft §9.3.2 step 5: "including the
        // receipt of a STATE message"): its state decides where we go, and the saved state
        // (NORMAL, say) may be the wrong one to serve in even for a moment. ISC keeps its
        // going back to the saved state here under `#if 0` (`failover.c:1427-1437`).
        self.send_state(now);
        self.resume_recovery(now);
    }

    fn on_disconnect(&mut self, now: Now, m: &Repr<'_>) {
        self.events.push_back(Event::RejectedByPeer {
            reason: m.options.reject_reason,
            message: m
                .options
                .message
                .map(|b| String::from_utf8_lossy(b).into_owned()),
        });
        self.close_link(now, CloseReason::PeerRejected, None);
    }

    fn link_up(&mut self, now: Now) {
        self.link = Link::Up {
            rx_deadline: now.instant + self.own_delay(),
            contact_at: now.instant + self.contact_interval(),
        };
        self.events.push_back(Event::Connected);
        tracing::info!(relationship = %self.name(), "failover: connected to peer");
    }

    /// CONTACT every partner max-response-delay / 3 (`failover.c:4335-4351`); a partner that
    /// sent no receive-timer gets ours, and never less than a second (ISC would flood).
    fn contact_interval(&self) -> Duration {
        let t = if self.partner_receive_timer > 0 {
            self.partner_receive_timer
        } else {
            self.config.max_response_delay
        };
        Duration::from_millis((u64::from(t) * 1000 / 3).max(1000))
    }

    /// The peer's STATE: ISC `dhcp_failover_peer_state_changed` (`failover.c:2024-2441`).
    fn on_state(&mut self, now: Now, m: &Repr<'_>) {
        let Some(raw) = m.options.server_state else {
            return;
        };
        let startupp = m.options.server_flags.unwrap_or(0) & msg::SERVER_FLAG_STARTUP != 0;
        self.partner_startup = startupp;
        let Some(new) = ServerState::from_u8(raw) else {
            tracing::error!(relationship = %self.name(), state = raw, "failover: invalid peer state");
            return self.transition(StateKind::Shutdown, now);
        };
        let previous = self.partner_state;
        let in_startup = matches!(self.state, State::Startup { .. });
        // ISC ignores a STATE that repeats the peer's known state in these states. In STARTUP
        // it jumps back to the saved state without looking at the peer (`failover.c:2034-2048`),
        // which leaves a restarted COMMUNICATIONS-INTERRUPTED server there for good when the
        // peer (still NORMAL in our record) says NORMAL again; we run the table instead.
        if previous == Some(new)
            && matches!(
                self.state.kind(),
                StateKind::Normal
                    | StateKind::PotentialConflict
                    | StateKind::RecoverDone
                    | StateKind::Shutdown
                    | StateKind::Paused
                    | StateKind::RecoverWait
            )
        {
            return;
        }
        self.partner_state = Some(new);
        self.partner_stos = now.wall;
        tracing::info!(relationship = %self.name(), peer = new.name(), "failover: peer state");
        self.events.push_back(Event::PartnerStateChanged {
            from: previous,
            to: new,
            startup: startupp,
        });
        self.persist(now);

        use StateKind as S;
        let me = self.effective();
        // Draft §9.3.2 step 5: a partner that entered PARTNER-DOWN after our last time of
        // operation has served alone since we stopped: RECOVER, whatever state we saved. If
        // it entered it before (or we cannot tell), we may have served beside it, and the
        // table below runs, which takes the states that served to POTENTIAL-CONFLICT. ISC
        // goes to RECOVER from a saved NORMAL only, without comparing (`failover.c:2130-2137`).
        let step5 =
            in_startup && new == S::PartnerDown && self.partner_down_after_our_operation(now, m);
        let target: Option<S> = match me {
            _ if step5 => None,
            S::Normal => match new {
                S::PartnerDown => Some(S::PotentialConflict),
                // ISC shuts down here (`failover.c:2138-2149`). The draft (§9.8.4) says to go
                // through COMMUNICATIONS-INTERRUPTED, whose table sends these to
                // POTENTIAL-CONFLICT; we do that. It happens for real when an operator's
                // partner-down races a reconnect (found by the randomized run, seed 6939).
                S::PotentialConflict | S::ResolutionInterrupted | S::ConflictDone => {
                    Some(S::PotentialConflict)
                }
                S::Recover | S::Shutdown => Some(S::PartnerDown),
                S::Paused => Some(S::CommunicationsInterrupted),
                _ => None,
            },
            S::Recover => match new {
                S::Recover | S::PartnerDown | S::CommunicationsInterrupted => {
                    // ISC sends another UPDREQALL even with one outstanding, which restarts
                    // the peer's update run; one per link is enough (a new link resets it).
                    if !in_startup && self.cur_upd != Some(MessageType::UpdReqAll) {
                        self.send_update_request_all(now);
                    }
                    None
                }
                S::PotentialConflict | S::ResolutionInterrupted | S::ConflictDone | S::Normal => {
                    Some(S::PotentialConflict)
                }
                S::Shutdown => Some(S::PartnerDown),
                _ => None,
            },
            S::PotentialConflict => match new {
                // ISC panics and shuts down (`failover.c:2230-2236`). A NORMAL that was sent
                // before the peer saw our state is stale, and the peer follows us into
                // POTENTIAL-CONFLICT when it does (see the NORMAL row); wait for it.
                S::Normal => None,
                S::ConflictDone => {
                    if previous == Some(S::PotentialConflict) {
                        self.send_update_request(now);
                    }
                    None
                }
                S::Recover => Some(S::Recover),
                S::Shutdown => Some(S::PartnerDown),
                _ => None,
            },
            S::ConflictDone => match new {
                S::Normal | S::Shutdown => Some(new),
                S::PotentialConflict | S::ResolutionInterrupted => None,
                // ISC calls log_fatal for the rest (`failover.c:2269-2274`): the process exits
                // and comes back in CONFLICT-DONE to the same peer. Our bindings are resolved,
                // so we answer as NORMAL would: a peer that lost its database (RECOVER) is
                // served from ours; a peer in PARTNER-DOWN needs conflict resolution again.
                S::Recover => Some(S::PartnerDown),
                S::PartnerDown => Some(S::PotentialConflict),
                S::ConflictDone => Some(S::Shutdown),
                _ => None,
            },
            S::PartnerDown if startupp => None,
            S::PartnerDown => match new {
                S::RecoverDone => Some(S::Normal),
                S::Normal
                | S::PotentialConflict
                | S::PartnerDown
                | S::CommunicationsInterrupted
                | S::ResolutionInterrupted
                | S::ConflictDone => Some(S::PotentialConflict),
                _ => None,
            },
            S::CommunicationsInterrupted => match new {
                S::Recover => Some(S::PartnerDown),
                // ISC sends its queued updates here; entering NORMAL asks the driver to.
                S::Normal | S::CommunicationsInterrupted | S::RecoverDone | S::RecoverWait => {
                    Some(S::Normal)
                }
                S::PotentialConflict
                | S::PartnerDown
                | S::ResolutionInterrupted
                | S::ConflictDone => Some(S::PotentialConflict),
                S::Shutdown => Some(S::PartnerDown),
                _ => None,
            },
            S::ResolutionInterrupted => match new {
                S::Shutdown => Some(S::PartnerDown),
                S::Paused | S::Startup => None,
                _ => Some(S::PotentialConflict),
            },
            S::RecoverDone => match new {
                S::RecoverDone | S::Normal => Some(S::Normal),
                S::Shutdown => Some(S::PartnerDown),
                _ => None,
            },
            S::RecoverWait | S::Shutdown | S::Paused | S::Startup => None,
        };
        if step5 {
            // RECOVER-WAIT counts the MCLT from when we went down, which is known: by the
            // last record of operation plus the time to the next one, and slack
            // (PARTNER_DOWN_MARGIN; draft §9.6.2 and its DISCUSSION). ISC moves `stos` back
            // so for a server that shut down (`failover.c:1831-1839`). Keeping the saved
            // state's start time, as ISC does here, would count from when NORMAL began.
            let down = self
                .last_operation
                .map_or(now.wall, |t| t.saturating_add(PARTNER_DOWN_MARGIN))
                .min(now.wall);
            self.transition_at(S::Recover, now, down);
        } else if let Some(to) = target {
            if to == S::PartnerDown {
                self.saved_partner_down_since = now.wall;
            }
            self.transition(to, now);
        }
        if let State::Startup { saved, .. } = self.state {
            self.transition(saved, now);
        }
    }

    /// Whether the partner, whose STATE `m` says PARTNER-DOWN, entered it after our last
    /// recorded time of operation by more than [`PARTNER_DOWN_MARGIN`] (draft §9.3.2 step
    /// 5). Its start-time-of-state is on its clock; the STATE's header time against ours
    /// moves it to our clock (draft §5.10's skew estimate). Unknown times answer no.
    fn partner_down_after_our_operation(&self, now: Now, m: &Repr<'_>) -> bool {
        let (Some(last), Some(stos)) = (self.last_operation, m.options.stos) else {
            tracing::info!(relationship = %self.name(), "failover: partner in partner-down, our last operation unknown");
            return false;
        };
        let ours = i64::from(stos.0) + i64::from(now.wall.0) - i64::from(m.time.0);
        let after = ours > i64::from(last.0) + i64::from(PARTNER_DOWN_MARGIN);
        tracing::info!(
            relationship = %self.name(),
            partner_down_at = ours,
            last_operation = last.0,
            after,
            "failover: partner in partner-down since (our clock)"
        );
        after
    }

    /// UPDDONE: ISC `dhcp_failover_process_update_done` (`failover.c:5804-5880`).
    fn on_upddone(&mut self, now: Now) {
        self.cur_upd = None;
        self.events.push_back(Event::UpdatesReceived);
        match self.state.kind() {
            StateKind::PotentialConflict => {
                if self.partner_state == Some(StateKind::ConflictDone) {
                    match self.config.role {
                        Role::Secondary => self.transition(StateKind::Normal, now),
                        Role::Primary => {
                            tracing::error!(relationship = %self.name(), "failover: secondary in conflict-done");
                            self.transition(StateKind::Shutdown, now)
                        }
                    }
                } else if self.config.role == Role::Primary {
                    self.transition(StateKind::ConflictDone, now);
                }
            }
            StateKind::Recover => {
                let end = self.my_stos.saturating_add(self.mclt);
                let partner_fresh = matches!(
                    self.partner_state,
                    Some(StateKind::Recover | StateKind::RecoverDone)
                );
                if end > now.wall && !partner_fresh {
                    self.transition(StateKind::RecoverWait, now);
                } else {
                    self.transition(StateKind::RecoverDone, now);
                }
            }
            _ => {}
        }
    }

    // ---- local events ----

    /// The operator's resync: ask the partner for every binding it has (UPDREQALL, as a
    /// server in RECOVER does); it answers with BNDUPDs, then UPDDONE
    /// ([`Event::UpdatesReceived`]). In NORMAL only, where an UPDDONE moves no state; an
    /// update request already outstanding is replaced by this one (the partner restarts its
    /// run, `failover.c:5739-5743`).
    pub fn request_all_updates(&mut self, now: Now) -> Result<(), LocalEventError> {
        match self.state.kind() {
            StateKind::Normal if self.is_connected() => {
                self.send_update_request_all(now);
                Ok(())
            }
            StateKind::Normal => Err(LocalEventError::NotConnected),
            k => Err(LocalEventError::ResyncNotAllowed(k)),
        }
    }

    /// The operator says the partner is down, last known up at `since`. Allowed from
    /// COMMUNICATIONS-INTERRUPTED and RESOLUTION-INTERRUPTED (draft §9.5). Returns the time
    /// put in force: `since` clamped to now and floored at [`Fsm::last_heard`], so a
    /// backdated time cannot cut short the MCLT the partner's leases are waited out for.
    pub fn partner_down(&mut self, now: Now, since: UnixTime) -> Result<UnixTime, LocalEventError> {
        match self.state.kind() {
            StateKind::CommunicationsInterrupted | StateKind::ResolutionInterrupted => {
                let since = since.max(self.last_heard()).min(now.wall);
                self.saved_partner_down_since = since;
                self.transition(StateKind::PartnerDown, now);
                Ok(since)
            }
            k => Err(LocalEventError::PartnerDownNotAllowed(k)),
        }
    }

    /// No earlier than the partner was last heard from: the time of its last message this
    /// run or, when nothing was heard since the start, the start of the current state (an
    /// interrupted state is entered when the partner falls silent, or after a restart).
    pub fn last_heard(&self) -> UnixTime {
        self.last_heard.unwrap_or(self.my_stos)
    }

    /// A short, planned stop: PAUSED, told to the peer (draft §9.10), which goes to
    /// COMMUNICATIONS-INTERRUPTED rather than PARTNER-DOWN. The restart resumes from the
    /// persisted state (PAUSED), and the peer's STATE then decides.
    pub fn pause(&mut self, now: Now) {
        self.transition(StateKind::Paused, now);
    }

    /// Orderly stop: SHUTDOWN, told to the peer (draft §9.9); the peer may go PARTNER-DOWN.
    pub fn shutdown(&mut self, now: Now) {
        self.transition(StateKind::Shutdown, now);
    }

    /// The driver has sent (and had acknowledged) every BNDUPD of the peer's UPDREQ or
    /// UPDREQALL: send UPDDONE with the request's xid (`failover.c:5054-5104`).
    pub fn update_done(&mut self, now: Now) {
        if let Some(xid) = self.upd_xid.take() {
            let r = Repr::new(MessageType::UpdDone, now.wall, xid);
            self.push(now, &r);
        }
    }

    /// Answers a POOLREQ (`failover.c:4911`).
    pub fn send_pool_response(&mut self, now: Now, xid: u32, addresses: u32) {
        let mut r = Repr::new(MessageType::PoolResp, now.wall, xid);
        r.options.addresses_transferred = Some(addresses);
        self.push(now, &r);
    }

    /// Sends a driver-built message (BNDUPD, BNDACK, POOLREQ). Requests (`xid == None`) get a
    /// fresh non-zero xid, which is returned; replies pass the request's. The header time is
    /// set to `now`. Nothing is sent, and `None` returned, unless connected and the message
    /// fits in 2048 bytes.
    pub fn send(&mut self, now: Now, m: &Repr<'_>, xid: Option<u32>) -> Option<u32> {
        if !self.is_connected() {
            return None;
        }
        let xid = xid.unwrap_or_else(|| self.take_xid());
        let mut r = *m;
        r.xid = xid;
        r.time = now.wall;
        // What does not fit in a message is refused here, before it takes a sequence number.
        let digest = if self.config.shared_secret.is_some() {
            4 + 1 + digest::DIGEST_LEN
        } else {
            0
        };
        if r.buffer_len() + digest > usize::from(msg::MAX_MESSAGE_LEN) {
            return None;
        }
        self.push(now, &r);
        Some(xid)
    }

    // ---- the one transition ----

    /// Moves to `to`: ISC `dhcp_failover_set_state` (`failover.c:1746-2020`). Logs, sets the
    /// start time of state, emits [`Event::StateChanged`] and [`Event::Persist`], tells the
    /// peer, and runs the new state's entry actions.
    fn transition(&mut self, to: StateKind, now: Now) {
        let from = self.state.kind();
        // The start time is kept into RECOVER-WAIT and into and out of STARTUP
        // (`failover.c:1826-1829`).
        let stos = if to != StateKind::RecoverWait
            && to != StateKind::Startup
            && from != StateKind::Startup
        {
            now.wall
        } else {
            self.my_stos
        };
        self.transition_at(to, now, stos);
    }

    /// [`Fsm::transition`] with the new state's start time given.
    fn transition_at(&mut self, to: StateKind, now: Now, stos: UnixTime) {
        let from = self.state.kind();
        if matches!(
            from,
            StateKind::Normal | StateKind::PotentialConflict | StateKind::PartnerDown
        ) {
            self.events.push_back(Event::RescindUpdates);
        }
        self.my_stos = stos;
        self.state = match to {
            StateKind::Startup => State::Startup {
                saved: self.effective(),
                until: now.instant + STARTUP_TIME,
            },
            StateKind::Normal => State::Normal,
            StateKind::CommunicationsInterrupted => State::CommunicationsInterrupted {
                auto_partner_down_at: self
                    .config
                    .auto_partner_down
                    .map(|s| now.instant + Duration::from_secs(u64::from(s))),
            },
            StateKind::PartnerDown => State::PartnerDown {
                since: self.saved_partner_down_since,
            },
            StateKind::PotentialConflict => State::PotentialConflict,
            StateKind::ResolutionInterrupted => State::ResolutionInterrupted,
            StateKind::ConflictDone => State::ConflictDone,
            StateKind::Recover => State::Recover,
            StateKind::RecoverWait => {
                let end = self.my_stos.saturating_add(self.mclt);
                let wait = Duration::from_secs(u64::from(now.wall.until(end)));
                State::RecoverWait {
                    until: now.instant + wait,
                }
            }
            StateKind::RecoverDone => State::RecoverDone,
            StateKind::Paused => State::Paused,
            StateKind::Shutdown => State::Shutdown,
        };
        tracing::info!(
            relationship = %self.name(),
            from = from.name(),
            to = to.name(),
            "failover: state change"
        );
        self.events.push_back(Event::StateChanged {
            from,
            to,
            at: self.my_stos,
        });
        self.persist(now);
        if self.is_connected() {
            self.send_state(now);
        }
        match to {
            StateKind::Normal => self.events.push_back(Event::SendUpdates),
            StateKind::PotentialConflict
                if self.config.role == Role::Primary
                    || self.partner_state == Some(StateKind::ConflictDone) =>
            {
                self.send_update_request(now);
            }
            StateKind::Recover => self.send_update_request_all(now),
            StateKind::RecoverWait => {
                if let State::RecoverWait { until } = self.state
                    && until <= now.instant
                {
                    self.transition(StateKind::RecoverDone, now);
                }
            }
            _ => {}
        }
    }

    // ---- sending ----

    fn take_xid(&mut self) -> u32 {
        if self.next_xid == 0 {
            self.next_xid = 1;
        }
        let x = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        x
    }

    fn push(&mut self, now: Now, r: &Repr<'_>) {
        let t = self.encode(r);
        self.push_owned(t);
        if let Link::Up { rx_deadline, .. } = self.link {
            self.link = Link::Up {
                rx_deadline,
                contact_at: now.instant + self.contact_interval(),
            };
        }
    }

    fn push_owned(&mut self, t: Transmit) {
        self.transmits.push_back(t);
    }

    /// STATE: our state (STARTUP's saved one) with the STARTUP flag, and start time of state
    /// (`failover.c:4431-4481`).
    fn send_state(&mut self, now: Now) {
        let startup = matches!(self.state, State::Startup { .. });
        let mut r = Repr::new(MessageType::State, now.wall, self.take_xid());
        r.options.server_state = Some(self.effective() as u8);
        r.options.server_flags = Some(if startup { msg::SERVER_FLAG_STARTUP } else { 0 });
        r.options.stos = Some(self.my_stos);
        self.push(now, &r);
    }

    /// UPDREQ, or UPDREQALL again if one is outstanding (`failover.c:4952-5002`).
    fn send_update_request(&mut self, now: Now) {
        if !self.is_connected() {
            return;
        }
        if self.cur_upd == Some(MessageType::UpdReqAll) {
            return self.send_update_request_all(now);
        }
        let r = Repr::new(MessageType::UpdReq, now.wall, self.take_xid());
        self.push(now, &r);
        self.cur_upd = Some(MessageType::UpdReq);
    }

    fn send_update_request_all(&mut self, now: Now) {
        if !self.is_connected() {
            return;
        }
        let r = Repr::new(MessageType::UpdReqAll, now.wall, self.take_xid());
        self.push(now, &r);
        self.cur_upd = Some(MessageType::UpdReqAll);
    }
}

impl Fsm {
    /// The message as it goes on the wire: signed when a shared secret is configured (on an
    /// established link under the link's key, over our direction and its sequence number).
    fn encode(&mut self, r: &Repr<'_>) -> Transmit {
        // With a validated config every message the machine builds is far below 2048 bytes
        // (the longest is CONNECT: 2 × 255 bytes of text, 32 of HBA, 20 of nonce, 37 of
        // digest). A driver-built message that does not fit is refused by `send` before it
        // gets here.
        let bytes = match (&self.config.shared_secret, self.auth.key) {
            (None, _) => r.to_vec(),
            (Some(_), Some(k)) => {
                let from_primary = self.config.role == Role::Primary;
                let context = digest::link_context(from_primary, self.auth.sent);
                self.auth.sent += 1;
                digest::sign_in(r, &k, &context)
            }
            (Some(secret), None) => digest::sign(r, secret),
        }
        .unwrap_or_default();
        Transmit {
            msg_type: r.msg_type,
            bytes,
        }
    }

    /// A handshake message (CONNECTACK), signed under the secret over `context`.
    fn encode_handshake(&self, r: &Repr<'_>, context: &[u8]) -> Transmit {
        let bytes = match &self.config.shared_secret {
            Some(secret) => digest::sign_in(r, secret, context),
            None => r.to_vec(),
        }
        .unwrap_or_default();
        Transmit {
            msg_type: r.msg_type,
            bytes,
        }
    }
}

/// A vendor class tandem sends (`tandem-<version>`, [`Config::vendor_class`]'s default).
fn is_tandem(vendor_class: Option<&[u8]>) -> bool {
    vendor_class.is_some_and(|v| v.starts_with(b"tandem-"))
}
