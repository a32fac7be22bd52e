//! HCPI events: what travels down a stack (toward the wire) and up (toward
//! the application).
//!
//! Below the reliability layer (`nak`) every message is *raw*: unsequenced,
//! unreliable. `nak` turns raw arrivals into sequenced `Cast`/`Send`
//! deliveries, and lets layers above it send raw messages of their own
//! (gossip, heartbeats) that bypass sequencing.

use std::fmt;
use std::sync::Arc;

use tutti_drivers::Msg;

pub use crate::secure::{GroupKey, PubKey};

/// A member's position in a view's member list. Rank 0 coordinates.
pub type Rank = u16;

/// Largest number of members a view may hold (ranks fit in 16 bits and
/// 0xFFFF marks "everyone" on the wire).
pub const MAX_MEMBERS: usize = 0xFFFE;

/// Virtual or real time in nanoseconds. The protocol core never reads a
/// clock: whoever drives a stack passes the time in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

impl Time {
    /// Time zero.
    pub const ZERO: Time = Time(0);

    /// This time plus `ns` nanoseconds (saturating).
    #[inline]
    pub fn plus_ns(self, ns: u64) -> Time {
        Time(self.0.saturating_add(ns))
    }

    /// Nanoseconds since `earlier`, zero if `earlier` is later.
    #[inline]
    pub fn since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}ms", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// Names one incarnation of a process: a restarted process is a new
/// endpoint.
pub type EndpointId = u64;

/// View identifier: ordered by logical time, then coordinator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewId {
    /// Logical time of the view.
    pub ltime: u64,
    /// Endpoint that installed it.
    pub coord: EndpointId,
}

/// FNV-1a starting value.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `bytes`, continuing from `h` (start with [`FNV_OFFSET`]):
/// ids from names, view tags, payload digests.
pub fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl ViewId {
    /// 32-bit tag of this view carried in every frame header: frames of
    /// another view (an older one, or a concurrent one in another
    /// partition with the same logical time) do not match.
    pub fn tag(&self) -> u32 {
        let h = fnv1a(
            fnv1a(FNV_OFFSET, &self.ltime.to_le_bytes()),
            &self.coord.to_le_bytes(),
        );
        (h ^ (h >> 32)) as u32
    }
}

/// An agreed list of members, as one member sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// Identifier.
    pub id: ViewId,
    /// Members in rank order.
    pub members: Vec<EndpointId>,
    /// Transport address of each member, in rank order (empty for a
    /// static view whose addresses the caller already knows).
    pub addrs: Vec<Addr>,
    /// Own rank in `members`.
    pub rank: Rank,
    /// The views this one merged (a merge after a partition healed);
    /// empty for an ordinary view change.
    pub merged: Vec<ViewId>,
    /// In primary-partition mode, whether this view holds a majority of
    /// the last primary view (a minority view blocks: no casts). Always
    /// true otherwise.
    pub primary: bool,
    /// Secure groups: each member's long-term public key, in rank order
    /// (empty otherwise).
    pub keys: Vec<PubKey>,
    /// Secure groups: the view's group key, fresh for every view (`crypt`
    /// encrypts the view's frames under it). `None` otherwise.
    pub key: Option<GroupKey>,
}

/// A transport address, opaque to the protocol layers (a shm name, an
/// `ip:port`, a node name in the simulator).
pub type Addr = Arc<str>;

impl View {
    /// A view, checked: own rank inside the list, no duplicate members,
    /// size within [`MAX_MEMBERS`].
    pub fn new(id: ViewId, members: Vec<EndpointId>, rank: Rank) -> Result<View, &'static str> {
        if members.is_empty() {
            return Err("a view needs at least one member");
        }
        if members.len() > MAX_MEMBERS {
            return Err("too many members for one view");
        }
        if rank as usize >= members.len() {
            return Err("own rank is outside the member list");
        }
        let mut sorted = members.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err("a member appears twice in the view");
        }
        Ok(View {
            id,
            members,
            addrs: Vec::new(),
            rank,
            merged: Vec::new(),
            primary: true,
            keys: Vec::new(),
            key: None,
        })
    }

    /// The same view with member addresses (one per member).
    pub fn with_addrs(mut self, addrs: Vec<Addr>) -> Result<View, &'static str> {
        if addrs.len() != self.members.len() {
            return Err("one address per member");
        }
        self.addrs = addrs;
        Ok(self)
    }

    /// Own endpoint id.
    pub fn me(&self) -> EndpointId {
        self.members[self.rank as usize]
    }

    /// Rank of `id`, if a member.
    pub fn rank_of(&self, id: EndpointId) -> Option<Rank> {
        self.members
            .iter()
            .position(|m| *m == id)
            .map(|r| r as Rank)
    }

    /// Number of members.
    #[inline]
    pub fn size(&self) -> usize {
        self.members.len()
    }
}

/// Where a frame goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// Every other member of the view.
    All,
    /// One member.
    Rank(Rank),
    /// A transport address, member or not (membership control: joins,
    /// views to joiners, merge beacons).
    Addr(Addr),
}

/// A stability vector: for each sender (by rank), how many of its casts
/// every member holds (sequence numbers below it are stable).
pub type StableVec = Arc<[u64]>;

/// Events going down, from the application toward the wire.
#[derive(Debug)]
pub enum Down {
    /// Reliable multicast to the view.
    Cast(Msg),
    /// Reliable point-to-point message to one member.
    Send(Rank, Msg),
    /// Unsequenced multicast (layer gossip, heartbeats). May be lost,
    /// duplicated or reordered.
    CastRaw(Msg),
    /// Unsequenced point-to-point message.
    SendRaw(Rank, Msg),
    /// Install a view: layers reset their per-view state. Travels through
    /// every layer to the bottom.
    View(Arc<View>),
    /// This member wants to leave the group.
    Leave,
    /// The application (or a layer) suspects these members.
    Suspect(Arc<[Rank]>),
    /// The application has stopped sending after a `Block`.
    BlockOk,
    /// The application's state, answering `Up::GetState` (taken when it
    /// handled that event).
    State(Arc<[u8]>),
    /// The application has processed `src`'s casts up to and including
    /// `seq` (application-level stability, for `stable` in ack mode).
    Ack {
        /// Sender.
        src: Rank,
        /// Highest processed sequence number.
        seq: u64,
    },
    /// Stability vector computed above, for layers below to collect
    /// garbage (retransmit buffers).
    Stable(StableVec),
    /// A timer armed by the layer receiving it expired. Delivered only to
    /// that layer, with the token it armed the timer with.
    Timer(u64),
    /// Membership control outside any view, to a transport address:
    /// unsequenced and unreliable (the sender retries). Passes every layer
    /// unchanged down to `com`.
    Ctl(Addr, Msg),
    /// Start membership: join the group through these contacts (or found
    /// it). Handled by `gms`.
    Join(Arc<JoinReq>),
    /// Ask the layer holding cast stream `orig` to fetch its messages up to
    /// `upto` (exclusive) from member `from` rather than from `orig` (a
    /// flush repairs a failed sender's messages from a survivor).
    Repair {
        /// Original sender.
        orig: Rank,
        /// Deliver up to this sequence number (exclusive).
        upto: u64,
        /// Member that holds them.
        from: Rank,
    },
}

/// What a member needs to join a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinReq {
    /// This endpoint's id (one incarnation).
    pub me: EndpointId,
    /// This endpoint's transport address.
    pub addr: Addr,
    /// Where to look for the group (any member's address will do; the
    /// coordinator answers).
    pub contacts: Vec<Addr>,
}

/// Events going up, from the wire toward the application.
#[derive(Debug)]
pub enum Up {
    /// A multicast from `src`, delivered in FIFO order per sender.
    Cast {
        /// Sender's rank.
        src: Rank,
        /// Sender's sequence number (of the last frame, for fragmented
        /// messages).
        seq: u64,
        /// Payload.
        msg: Msg,
    },
    /// A point-to-point message from `src`.
    Send {
        /// Sender's rank.
        src: Rank,
        /// Sequence number on the `src` -> own rank channel.
        seq: u64,
        /// Payload.
        msg: Msg,
    },
    /// Unsequenced multicast (see [`Down::CastRaw`]).
    CastRaw {
        /// Sender's rank.
        src: Rank,
        /// Payload with the headers of layers above the receiver.
        msg: Msg,
    },
    /// Unsequenced point-to-point message.
    SendRaw {
        /// Sender's rank.
        src: Rank,
        /// Payload.
        msg: Msg,
    },
    /// A new view is installed.
    View(Arc<View>),
    /// Stop sending: a view change is under way. Answer with `BlockOk`.
    Block,
    /// New stability vector.
    Stable(StableVec),
    /// Members suspected of having failed.
    Suspect(Arc<[Rank]>),
    /// This member has left the group; the stack is finished.
    Exit,
    /// Primary-partition mode: the current view, installed as a candidate,
    /// is now primary (members holding a majority of the last primary view
    /// installed it): casts may go.
    Primary,
    /// A joiner needs the application's state: answer with `Down::State`,
    /// taken now (after everything delivered so far, before anything
    /// delivered later).
    GetState,
    /// A joiner's state, before its first view: what the members had
    /// delivered up to the point where its deliveries begin. `None`: no
    /// member that held state survived to give it.
    State(Option<Arc<[u8]>>),
    /// Messages `from..to` (exclusive) of `src` cannot be recovered and
    /// were skipped.
    Lost {
        /// Sender.
        src: Rank,
        /// First lost sequence number.
        from: u64,
        /// One past the last lost sequence number.
        to: u64,
    },
    /// Internal, into the bottom layer: a frame from the wire.
    Recv(Msg),
    /// Internal: casts of `src` below sequence number `next` are held by
    /// this member although not yet delivered whole (fragments in
    /// reassembly). Lets stability advance under a message with more
    /// fragments than the window. Never reaches the application.
    Progress {
        /// Sender.
        src: Rank,
        /// One past the highest held sequence number.
        next: u64,
    },
    /// Internal: a membership control frame from outside the view (see
    /// [`Down::Ctl`]); `com` checked group and stack, `sign` (in a secure
    /// stack) its signature, `gms` reads it. (The signer is boxed: inline,
    /// its key would make every event 80 bytes instead of 56, and events
    /// are moved several times on the way to the application.)
    Ctl(Msg, Option<Box<Signer>>),
    /// Secure groups: a process was refused (a joiner whose key is not
    /// authorized, on the coordinator's side; a refusal from the group, on
    /// the joiner's side). A line for the log.
    Refused(Arc<str>),
}

impl Up {
    /// An event the application takes as it is (`Stack::poll_event` has
    /// nothing to do for it): data, stability, suspicions, losses, state,
    /// refusals.
    #[inline]
    pub fn plain(&self) -> bool {
        matches!(
            self,
            Up::Cast { .. }
                | Up::Send { .. }
                | Up::Stable(_)
                | Up::Suspect(_)
                | Up::Primary
                | Up::State(_)
                | Up::Lost { .. }
                | Up::Refused(_)
        )
    }
}

/// Who signed a control frame (see [`Up::Ctl`]): the signature was valid
/// for this key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signer {
    /// The signer's public key.
    pub key: PubKey,
    /// Whether the key is among the group's authorized keys.
    pub authorized: bool,
}
