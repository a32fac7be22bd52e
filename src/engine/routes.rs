//! Where a group's frames go: the driver peers of the views its stack
//! installed, and the compact-format cookies that name those views.

use std::collections::VecDeque;
use std::sync::Arc;

use tutti_drivers::{Driver, Msg, PeerId};

use crate::event::{Rank, View};
use crate::wire::{com, fast};

/// Where a group's frames go: driver peers of the views its stack
/// installed.
pub(super) struct Routes {
    /// Tag of the current view (frames carry it).
    pub(super) tag: u32,
    /// Driver peer of each rank of the current view (None for own rank).
    pub(super) peers: Vec<Option<PeerId>>,
    /// Peers of the views before, newest first: frames made before a view
    /// change still go to that view's members.
    pub(super) older: VecDeque<(u32, Vec<Option<PeerId>>)>,
    /// Compact-format cookies of every rank of the current view, then of
    /// each older view (compact frames name their view by these).
    pub(super) cookies: Vec<u32>,
    pub(super) older_cookies: Vec<Vec<u32>>,
    /// The stack's view generation `peers` and `older` reflect.
    pub(super) gen: u64,
    /// How many distinct driver peers `peers` names: when that is every
    /// peer the driver has, a multicast goes out as one `To::All`.
    pub(super) npeers: usize,
}

impl Routes {
    /// Whether a compact frame with this cookie belongs here.
    pub(super) fn knows(&self, cookie: u32) -> bool {
        self.cookies.contains(&cookie) || self.older_cookies.iter().any(|v| v.contains(&cookie))
    }

    /// The peers of an older view a frame was made in (its header carries
    /// the view's tag); `None` for the current view.
    #[inline]
    pub(super) fn of(&self, frame: &Msg) -> Option<&Vec<Option<PeerId>>> {
        let b = frame.front();
        if fast::is_compact(b) {
            let c = u32::from_be_bytes(b.get(..4)?.try_into().ok()?);
            if self.cookies.contains(&c) {
                return None;
            }
            let i = self.older_cookies.iter().position(|v| v.contains(&c))?;
            return self.older.get(i).map(|(_, p)| p);
        }
        let tag = b.get(com::LEN - 4..com::LEN)?;
        let tag = u32::from_be_bytes([tag[0], tag[1], tag[2], tag[3]]);
        if tag == self.tag {
            return None;
        }
        self.older.iter().find(|(t, _)| *t == tag).map(|(_, p)| p)
    }

    /// Takes the views the stack installed (generation `gen`, newest
    /// first); maps their members to driver peers when they carry
    /// addresses (membership changes them). Returns whether the peers
    /// changed.
    pub(super) fn update(
        &mut self,
        gen: u64,
        views: &VecDeque<Arc<View>>,
        gid: u32,
        sid: u16,
        driver: &mut dyn Driver,
    ) -> bool {
        self.gen = gen;
        // Compact frames name their view by cookie (static views without
        // addresses too: demux needs them).
        let cookies = |v: &View| -> Vec<u32> {
            let tag = v.id.tag();
            (0..v.size())
                .map(|r| fast::cookie(gid, sid, tag, r as Rank))
                .collect()
        };
        self.cookies = views.front().map(|v| cookies(v)).unwrap_or_default();
        self.older_cookies = views.iter().skip(1).map(|v| cookies(v)).collect();
        if views.front().is_none_or(|v| v.addrs.len() != v.size()) {
            return false;
        }
        let mut map = |v: &View| -> Vec<Option<PeerId>> {
            v.addrs
                .iter()
                .enumerate()
                .map(|(r, a)| {
                    if r == v.rank as usize {
                        None
                    } else {
                        driver.add_peer(a).ok()
                    }
                })
                .collect()
        };
        let mut it = views.iter();
        if let Some(cur) = it.next() {
            self.tag = cur.id.tag();
            self.peers = map(cur);
        }
        self.older = it.map(|v| (v.id.tag(), map(v))).collect();
        true
    }
}
