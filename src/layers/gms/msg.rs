//! `gms` control messages, rkyv-encoded and validated before use.
//!
//! Two families: [`Ctrl`] travels inside a view over the reliable
//! point-to-point channels (after the one-byte `gms` tag), [`Outside`]
//! travels in `com` control frames between endpoints that share no view
//! (joins, views for joiners and stragglers, their acknowledgements).
//! Decoding copies the bytes into an aligned buffer, lets bytecheck
//! validate the archive, then checks what the types cannot say (vector
//! lengths against the view, ranks in range) in the layer.

use rkyv::rancor::Error as RkyvError;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::event::{View, ViewId};

/// Largest encoded control message accepted, bytes (a view of 65,534
/// members with addresses is far below it).
pub const MAX_CTRL: usize = 4 << 20;

/// A flush attempt: the view it flushes, the coordinating rank, and the
/// coordinator's attempt number (a restart after a failure counts up).
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Flushed view: logical time.
    pub ltime: u64,
    /// Flushed view: coordinator id.
    pub vcoord: u64,
    /// Coordinating rank in the flushed view.
    pub coord: u16,
    /// Attempt number of that coordinator.
    pub n: u32,
}

/// Control messages inside a view.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Ctrl {
    /// Coordinator to participants: stop, report what you delivered.
    Flush {
        /// Which flush.
        at: Attempt,
        /// Ranks that will not be in the next view because they failed.
        failed: Vec<u16>,
        /// Ranks that take part (they answer `FlushOk`).
        participants: Vec<u16>,
    },
    /// Participant to coordinator: per sender, one past the highest
    /// sequence number delivered in the view.
    FlushOk {
        /// Which flush.
        at: Attempt,
        /// Delivered vector, one entry per member of the view.
        delivered: Vec<u64>,
        /// The newest primary view this participant knows: id and members.
        last_primary_id: (u64, u64),
        /// Its members.
        last_primary: Vec<u64>,
    },
    /// Coordinator to participants: deliver exactly up to `cut`, fetching
    /// what is missing from `holder`.
    Cut {
        /// Which flush.
        at: Attempt,
        /// Per sender, deliver up to this (exclusive).
        cut: Vec<u64>,
        /// Per sender, a participant that delivered up to the cut.
        holder: Vec<u16>,
    },
    /// Participant to coordinator: delivered up to the cut.
    CutOk {
        /// Which flush.
        at: Attempt,
    },
    /// Member to coordinator: remove me from the group.
    Leave,
    /// Member to rank 0: installed this candidate view.
    Installed {
        /// The view: logical time.
        ltime: u64,
        /// The view: coordinator id.
        vcoord: u64,
    },
    /// Rank 0 to members: members holding a majority of the last primary
    /// view installed this view; it is primary now.
    Primary {
        /// The view: logical time.
        ltime: u64,
        /// The view: coordinator id.
        vcoord: u64,
    },
}

/// Control messages between endpoints that share no view.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Outside {
    /// A process asks to join.
    Join {
        /// Its endpoint id.
        id: u64,
        /// Its transport address.
        addr: String,
        /// Secure groups: its public key (the frame is signed with it).
        key: Option<[u8; 32]>,
    },
    /// Secure groups: the coordinator refuses a joiner.
    Refused {
        /// Why, for the joiner's log.
        why: String,
    },
    /// A member that does not coordinate names the coordinator.
    Redirect {
        /// Coordinator's address.
        coord: String,
    },
    /// A new view.
    View(ViewMsg),
    /// A coordinator announces its view to processes outside it (merge
    /// discovery); a member that does not coordinate answers with its
    /// coordinator's beacon.
    Beacon {
        /// The view: logical time.
        ltime: u64,
        /// The view: coordinator id.
        vcoord: u64,
        /// Address of the view's acting coordinator.
        coord: String,
    },
    /// Coordinator of the smaller view to the other: may we merge?
    MergeRequest {
        /// Asker's view: logical time.
        ltime: u64,
        /// Asker's view: coordinator id.
        vcoord: u64,
        /// Asker's address.
        reply_to: String,
    },
    /// Yes: flush your view and send `MergeReady`.
    MergeGrant {
        /// Granter's view: logical time.
        ltime: u64,
        /// Granter's view: coordinator id.
        vcoord: u64,
    },
    /// The asker's view is flushed; its members wait for the merged view.
    MergeReady {
        /// The flush that ended the asker's view.
        at: Attempt,
        /// Members moving over, in rank order.
        members: Vec<u64>,
        /// Their addresses.
        addrs: Vec<String>,
        /// Secure groups: their public keys (empty otherwise).
        keys: Vec<[u8; 32]>,
        /// The last primary view the asker's side knows: id and members.
        last_primary_id: (u64, u64),
        /// Its members.
        last_primary: Vec<u64>,
    },
    /// A member installed a view.
    ViewAck {
        /// Installed view: logical time.
        ltime: u64,
        /// Installed view: coordinator id.
        vcoord: u64,
        /// Who installed it.
        id: u64,
    },
}

/// A view as the coordinator sends it.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ViewMsg {
    /// The flushes that made it: one per view it replaces (none for a
    /// founding view, two or more for a merge).
    pub from: Vec<Attempt>,
    /// Logical time.
    pub ltime: u64,
    /// Coordinator (installer) id.
    pub vcoord: u64,
    /// Member ids in rank order.
    pub members: Vec<u64>,
    /// Member addresses in rank order.
    pub addrs: Vec<String>,
    /// Views merged into this one: (ltime, coordinator id).
    pub merged: Vec<(u64, u64)>,
    /// Where acknowledgements go (the installer's address).
    pub reply_to: String,
    /// Primary-partition mode: the view is a candidate to be primary (it
    /// holds a majority of `last_primary`); it becomes primary on
    /// `Ctrl::Primary`.
    pub primary: bool,
    /// The newest primary view this view descends from: id, and members.
    pub last_primary_id: (u64, u64),
    /// Its members.
    pub last_primary: Vec<u64>,
    /// Secure groups: member public keys in rank order (empty otherwise).
    pub keys: Vec<[u8; 32]>,
    /// Secure groups: the view's fresh group key sealed for each member,
    /// in rank order (empty otherwise).
    pub sealed: Vec<Vec<u8>>,
    /// Secure groups: the public key of the coordinator that made the
    /// view and sealed its key (it may be leaving, so not a member).
    pub sealer: Option<[u8; 32]>,
}

impl ViewMsg {
    /// The message for an installed view.
    pub fn of(v: &View, from: Vec<Attempt>, reply_to: &str) -> ViewMsg {
        ViewMsg {
            from,
            ltime: v.id.ltime,
            vcoord: v.id.coord,
            members: v.members.clone(),
            addrs: v.addrs.iter().map(|a| a.to_string()).collect(),
            merged: v.merged.iter().map(|m| (m.ltime, m.coord)).collect(),
            reply_to: reply_to.to_string(),
            primary: v.primary,
            last_primary_id: (v.id.ltime, v.id.coord),
            last_primary: v.members.clone(),
            keys: v.keys.clone(),
            sealed: Vec::new(),
            sealer: None,
        }
    }

    /// Checks what the types cannot: one address per member, no duplicate
    /// member, a size that fits a view.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.addrs.len() != self.members.len() {
            return Err("one address per member");
        }
        if !self.keys.is_empty() && self.keys.len() != self.members.len() {
            return Err("one key per member");
        }
        if !self.sealed.is_empty() && self.sealed.len() != self.members.len() {
            return Err("one sealed key per member");
        }
        View::new(
            ViewId {
                ltime: self.ltime,
                coord: self.vcoord,
            },
            self.members.clone(),
            0,
        )
        .map(|_| ())
    }
}

/// State-transfer control messages (`xfer`), inside a view. The state's
/// bytes themselves travel in raw chunks.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum XferCtrl {
    /// Joiner to rank 0: the state, please.
    Request,
    /// Rank 0 to joiner: a state of `len` bytes follows, taken when rank
    /// 0 had delivered, per sender, the casts below `vector`.
    Begin {
        /// Bytes of state.
        len: u64,
        /// Delivery vector of the state.
        vector: Vec<u64>,
    },
}

/// Decodes and validates an [`XferCtrl`].
pub fn decode_xfer(b: &[u8]) -> Result<XferCtrl, DecodeError> {
    let a = aligned(b)?;
    rkyv::from_bytes::<XferCtrl, RkyvError>(&a).map_err(|_| DecodeError::Invalid)
}

/// Why a control message was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Larger than [`MAX_CTRL`].
    TooLarge,
    /// Not a valid archive.
    Invalid,
}

/// Encodes a control value.
pub fn encode<T>(v: &T) -> Vec<u8>
where
    T: for<'a> Serialize<
        rkyv::api::high::HighSerializer<
            AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            RkyvError,
        >,
    >,
{
    // Serializing plain owned data into a growable buffer cannot fail.
    rkyv::to_bytes::<RkyvError>(v)
        .map(|b| b.to_vec())
        .unwrap_or_default()
}

/// Decodes and validates a [`Ctrl`].
pub fn decode_ctrl(b: &[u8]) -> Result<Ctrl, DecodeError> {
    let a = aligned(b)?;
    rkyv::from_bytes::<Ctrl, RkyvError>(&a).map_err(|_| DecodeError::Invalid)
}

/// Decodes and validates an [`Outside`].
pub fn decode_outside(b: &[u8]) -> Result<Outside, DecodeError> {
    let a = aligned(b)?;
    rkyv::from_bytes::<Outside, RkyvError>(&a).map_err(|_| DecodeError::Invalid)
}

fn aligned(b: &[u8]) -> Result<AlignedVec, DecodeError> {
    if b.len() > MAX_CTRL {
        return Err(DecodeError::TooLarge);
    }
    let mut a = AlignedVec::with_capacity(b.len());
    a.extend_from_slice(b);
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at() -> Attempt {
        Attempt {
            ltime: 3,
            vcoord: 7,
            coord: 1,
            n: 2,
        }
    }

    #[test]
    fn round_trip() {
        let msgs = [
            Ctrl::Flush {
                at: at(),
                failed: vec![0],
                participants: vec![1, 2],
            },
            Ctrl::FlushOk {
                at: at(),
                delivered: vec![1, 2, 3],
                last_primary_id: (2, 7),
                last_primary: vec![7, 8],
            },
            Ctrl::Primary {
                ltime: 4,
                vcoord: 7,
            },
            Ctrl::Installed {
                ltime: 4,
                vcoord: 7,
            },
            Ctrl::Cut {
                at: at(),
                cut: vec![4, 5, 6],
                holder: vec![1, 1, 2],
            },
            Ctrl::CutOk { at: at() },
            Ctrl::Leave,
        ];
        for m in msgs {
            assert_eq!(decode_ctrl(&encode(&m)).unwrap(), m);
        }
        for x in [
            XferCtrl::Request,
            XferCtrl::Begin {
                len: 5,
                vector: vec![1, 2],
            },
        ] {
            assert_eq!(decode_xfer(&encode(&x)).unwrap(), x);
        }
        let o = Outside::View(ViewMsg {
            from: vec![at()],
            ltime: 4,
            vcoord: 9,
            members: vec![9, 10],
            addrs: vec!["a".into(), "b".into()],
            merged: vec![(3, 7)],
            reply_to: "a".into(),
            primary: true,
            last_primary_id: (4, 9),
            last_primary: vec![9],
            keys: vec![[1; 32], [2; 32]],
            sealed: vec![vec![3; 60], vec![4; 60]],
            sealer: Some([1; 32]),
        });
        assert_eq!(decode_outside(&encode(&o)).unwrap(), o);
    }

    proptest! {
        #[test]
        fn garbage_is_refused_not_panicked(b in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_ctrl(&b);
            let _ = decode_outside(&b);
            let _ = decode_xfer(&b);
        }

        #[test]
        fn mutated_messages_never_panic(i in 0usize..64, x in any::<u8>()) {
            let mut b = encode(&Outside::Join { id: 5, addr: "node-a".into(), key: Some([7; 32]) });
            let n = b.len();
            b[i % n] ^= x;
            let _ = decode_outside(&b);
        }
    }
}
