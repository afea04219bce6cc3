//! The numbers of the protocol: message types, server states, binding status and reject
//! reasons, and which options ISC uses in which message type.

use super::opt;

/// An enum of protocol numbers from a table of `Variant = number => "name",` rows, with
/// `ALL` (in table order), `from_u8` and `name`.
macro_rules! codes {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $n:literal => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $v = $n,)* }

        impl $name {
            /// Every value, in code order.
            pub const ALL: [$name; [$($n),*].len()] = [$(Self::$v,)*];

            pub fn from_u8(v: u8) -> Option<Self> {
                match v {
                    $($n => Some(Self::$v),)*
                    _ => None,
                }
            }

            /// The name in logs and `tandemctl status`.
            pub fn name(self) -> &'static str {
                match self { $(Self::$v => $s,)* }
            }
        }
    };
}

codes! {
    /// Message types, draft §6.1 and `failover.h:150-164`; the names are the draft's. UPDREQALL
    /// is 7 and UPDREQ is 9.
    MessageType {
        PoolReq = 1 => "POOLREQ",
        PoolResp = 2 => "POOLRESP",
        BndUpd = 3 => "BNDUPD",
        BndAck = 4 => "BNDACK",
        Connect = 5 => "CONNECT",
        ConnectAck = 6 => "CONNECTACK",
        UpdReqAll = 7 => "UPDREQALL",
        UpdDone = 8 => "UPDDONE",
        UpdReq = 9 => "UPDREQ",
        State = 10 => "STATE",
        Contact = 11 => "CONTACT",
        Disconnect = 12 => "DISCONNECT",
    }
}

codes! {
    /// Server states on the wire (option 24), draft §12.24 and `failover.h:287-309`; the names
    /// are the draft's in lower case with hyphens, as `tandemctl status --json` shows them.
    ServerState {
        /// Never sent by ISC: it sends the saved state with
        /// [`SERVER_FLAG_STARTUP`](super::SERVER_FLAG_STARTUP) instead.
        Startup = 1 => "startup",
        Normal = 2 => "normal",
        CommunicationsInterrupted = 3 => "communications-interrupted",
        PartnerDown = 4 => "partner-down",
        PotentialConflict = 5 => "potential-conflict",
        Recover = 6 => "recover",
        Paused = 7 => "paused",
        Shutdown = 8 => "shutdown",
        RecoverDone = 9 => "recover-done",
        ResolutionInterrupted = 10 => "resolution-interrupted",
        ConflictDone = 11 => "conflict-done",
        /// No number in the draft; ISC uses 254.
        RecoverWait = 254 => "recover-wait",
    }
}

impl MessageType {
    /// Options ISC stores for this type (`fto_allowed[]`, `stables.c:108-131`); any other
    /// known option is read and dropped. The digest is allowed everywhere, and the
    /// vendor-specific options in CONNECT and CONNECTACK (tandem's connection nonce,
    /// [`crate::digest::nonce_option`]), and MCLT and the bucket assignment in CONNECTACK (a
    /// tandem secondary shows a tandem primary its settings, [`crate::fsm::PartnerSettings`];
    /// ISC reads and drops them there).
    pub fn allows(self, code: u16) -> bool {
        use opt::*;
        if code == MESSAGE_DIGEST {
            return true;
        }
        let binding: &[u16] = &[
            ASSIGNED_IP_ADDRESS,
            BINDING_STATUS,
            CLIENT_IDENTIFIER,
            CLIENT_HARDWARE_ADDRESS,
            DDNS,
            IP_FLAGS,
            LEASE_EXPIRATION_TIME,
            POTENTIAL_EXPIRATION_TIME,
            START_TIME_OF_STATE,
            CLTT,
            CLIENT_REQUEST_OPTIONS,
            CLIENT_REPLY_OPTIONS,
        ];
        match self {
            Self::PoolReq | Self::UpdReqAll | Self::UpdDone | Self::UpdReq | Self::Contact => false,
            Self::PoolResp => code == ADDRESSES_TRANSFERRED,
            Self::BndUpd => binding.contains(&code),
            Self::BndAck => binding.contains(&code) || code == REJECT_REASON || code == MESSAGE,
            Self::Connect => [
                RELATIONSHIP_NAME,
                MAX_UNACKED_BNDUPD,
                RECEIVE_TIMER,
                VENDOR_CLASS,
                PROTOCOL_VERSION,
                TLS_REQUEST,
                MCLT,
                HASH_BUCKET_ASSIGNMENT,
                VENDOR_SPECIFIC_OPTIONS,
            ]
            .contains(&code),
            Self::ConnectAck => [
                RELATIONSHIP_NAME,
                MAX_UNACKED_BNDUPD,
                RECEIVE_TIMER,
                VENDOR_CLASS,
                PROTOCOL_VERSION,
                TLS_REPLY,
                REJECT_REASON,
                MESSAGE,
                MCLT,
                HASH_BUCKET_ASSIGNMENT,
                VENDOR_SPECIFIC_OPTIONS,
            ]
            .contains(&code),
            Self::State => [SERVER_STATE, SERVER_FLAGS, START_TIME_OF_STATE].contains(&code),
            Self::Disconnect => code == REJECT_REASON || code == MESSAGE,
        }
    }

    /// The order ISC writes options in (`failover.c` `dhcp_failover_send_*`), so re-emitting
    /// a message ISC built gives the same bytes. Options not listed follow in code order; the
    /// digest is always last.
    pub(super) fn emit_order(self) -> &'static [u16] {
        use opt::*;
        match self {
            Self::PoolResp => &[ADDRESSES_TRANSFERRED],
            Self::BndUpd | Self::BndAck => &[
                ASSIGNED_IP_ADDRESS,
                BINDING_STATUS,
                CLIENT_IDENTIFIER,
                CLIENT_HARDWARE_ADDRESS,
                LEASE_EXPIRATION_TIME,
                POTENTIAL_EXPIRATION_TIME,
                START_TIME_OF_STATE,
                CLTT,
                IP_FLAGS,
                REJECT_REASON,
                MESSAGE,
            ],
            Self::Connect => &[
                RELATIONSHIP_NAME,
                MAX_UNACKED_BNDUPD,
                RECEIVE_TIMER,
                VENDOR_CLASS,
                PROTOCOL_VERSION,
                TLS_REQUEST,
                MCLT,
                HASH_BUCKET_ASSIGNMENT,
            ],
            Self::ConnectAck => &[
                RELATIONSHIP_NAME,
                MAX_UNACKED_BNDUPD,
                RECEIVE_TIMER,
                VENDOR_CLASS,
                PROTOCOL_VERSION,
                TLS_REPLY,
                REJECT_REASON,
                MESSAGE,
            ],
            Self::State => &[SERVER_STATE, SERVER_FLAGS, START_TIME_OF_STATE],
            Self::Disconnect => &[REJECT_REASON, MESSAGE],
            _ => &[],
        }
    }
}

/// Binding status (option 3), draft §12.3 and ISC `FTS_*` (`dhcpd.h:533-543`). Note the wire
/// numbers start at 1, unlike [`lease_record::BindingState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BindingStatus {
    Free = 1,
    Active = 2,
    Expired = 3,
    Released = 4,
    Abandoned = 5,
    Reset = 6,
    Backup = 7,
}

impl BindingStatus {
    pub fn from_u8(v: u8) -> Option<Self> {
        use lease_record::BindingState as B;
        Self::from_lease(B::from_u8(v.checked_sub(1)?)?)
    }

    /// The wire status of a lease record's state; `None` for OFFERED, which never travels.
    pub fn from_lease(s: lease_record::BindingState) -> Option<Self> {
        use lease_record::BindingState as B;
        Some(match s {
            B::Free => Self::Free,
            B::Active => Self::Active,
            B::Expired => Self::Expired,
            B::Released => Self::Released,
            B::Abandoned => Self::Abandoned,
            B::Reset => Self::Reset,
            B::Backup => Self::Backup,
            B::Offered => return None,
        })
    }

    pub fn to_lease(self) -> lease_record::BindingState {
        use lease_record::BindingState as B;
        match self {
            Self::Free => B::Free,
            Self::Active => B::Active,
            Self::Expired => B::Expired,
            Self::Released => B::Released,
            Self::Abandoned => B::Abandoned,
            Self::Reset => B::Reset,
            Self::Backup => B::Backup,
        }
    }
}

/// Reject reasons (option 21), draft §12.21 and `failover.h:166-188`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    IllegalIpAddress,
    FatalConflict,
    MissingBindingInformation,
    TimeMismatch,
    InvalidMclt,
    Unknown,
    DuplicateConnection,
    InvalidFailoverPartner,
    TlsNotSupported,
    TlsNotConfigured,
    TlsRequired,
    DigestNotSupported,
    DigestNotConfigured,
    ProtocolVersionMismatch,
    OutdatedBindingInformation,
    LessCriticalBindingInformation,
    NoTraffic,
    HashBucketAssignmentConflict,
    IpNotReserved,
    DigestFailed,
    DigestMissing,
    /// 254, `FTR_UNKNOWN`.
    Unspecified,
    /// Any other value, kept so it re-emits unchanged.
    Other(u8),
}

impl RejectReason {
    const TABLE: [(u8, RejectReason, &'static str); 22] = [
        (1, Self::IllegalIpAddress, "IP address not in pool"),
        (
            2,
            Self::FatalConflict,
            "fatal conflict exists: address in use by other client",
        ),
        (
            3,
            Self::MissingBindingInformation,
            "missing binding information",
        ),
        (
            4,
            Self::TimeMismatch,
            "connection rejected, time mismatch too great",
        ),
        (5, Self::InvalidMclt, "connection rejected, invalid MCLT"),
        (6, Self::Unknown, "connection rejected, unknown reason"),
        (
            7,
            Self::DuplicateConnection,
            "connection rejected, duplicate connection",
        ),
        (
            8,
            Self::InvalidFailoverPartner,
            "connection rejected, invalid failover partner",
        ),
        (9, Self::TlsNotSupported, "TLS not supported"),
        (
            10,
            Self::TlsNotConfigured,
            "TLS supported but not configured",
        ),
        (
            11,
            Self::TlsRequired,
            "TLS required but not supported by partner",
        ),
        (12, Self::DigestNotSupported, "message digest not supported"),
        (
            13,
            Self::DigestNotConfigured,
            "message digest not configured",
        ),
        (
            14,
            Self::ProtocolVersionMismatch,
            "protocol version mismatch",
        ),
        (
            15,
            Self::OutdatedBindingInformation,
            "outdated binding information",
        ),
        (
            16,
            Self::LessCriticalBindingInformation,
            "less critical binding information",
        ),
        (17, Self::NoTraffic, "no traffic within sufficient time"),
        (
            18,
            Self::HashBucketAssignmentConflict,
            "hash bucket assignment conflict",
        ),
        (19, Self::IpNotReserved, "IP not reserved on this server"),
        (20, Self::DigestFailed, "message digest failed to compare"),
        (21, Self::DigestMissing, "missing message digest"),
        (254, Self::Unspecified, "unknown reason"),
    ];

    pub fn from_u8(v: u8) -> Self {
        Self::TABLE
            .iter()
            .find(|(c, _, _)| *c == v)
            .map_or(Self::Other(v), |(_, r, _)| *r)
    }

    pub fn to_u8(self) -> u8 {
        match self {
            Self::Other(v) => v,
            r => Self::TABLE
                .iter()
                .find(|(_, t, _)| *t == r)
                .map_or(254, |(c, _, _)| *c),
        }
    }

    /// Text for the message option, after ISC's `dhcp_failover_reject_reason_print`.
    pub fn text(self) -> &'static str {
        Self::TABLE
            .iter()
            .find(|(_, t, _)| *t == self)
            .map_or("unknown reason", |(_, _, s)| *s)
    }
}
