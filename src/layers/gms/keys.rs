//! Secure groups in `gms`: who may sign which membership message, and the
//! group key that every view carries sealed for each member.
//!
//! The coordinator that makes a view draws a fresh group key and seals it
//! for each member under the X25519 secret it shares with that member
//! alone (see [`crate::secure`]); a member that left is not among them,
//! so it cannot read the next view. A member accepts a view only from a
//! frame signed by the view's sealer, only when every member's key is
//! authorized, and only when its own sealed key opens.

use std::sync::Arc;

use super::msg::ViewMsg;
use crate::event::{EndpointId, GroupKey, PubKey, Signer};
use crate::secure::{short, SealFor, Secure};

/// A `gms` layer's security context.
pub(super) struct SecCtx {
    pub secure: Arc<Secure>,
    pub group: u32,
}

impl SecCtx {
    fn seal_for(&self, vm: &ViewMsg, member: EndpointId) -> SealFor {
        SealFor {
            group: self.group,
            ltime: vm.ltime,
            vcoord: vm.vcoord,
            member,
        }
    }

    /// Fills in `vm`'s sealer and sealed keys: a fresh group key for the
    /// view, sealed for each member. `vm.keys` must name every member's
    /// key.
    pub fn seal_view(&self, vm: &mut ViewMsg) -> Result<(), &'static str> {
        if vm.keys.len() != vm.members.len() {
            return Err("a member of the view has no key");
        }
        let gk = self.secure.fresh_key();
        let mut sealed = Vec::with_capacity(vm.members.len());
        for (id, k) in vm.members.iter().zip(&vm.keys) {
            let s = self
                .secure
                .seal(&gk, k, &self.seal_for(vm, *id))
                .ok_or("a member's key is unusable")?;
            sealed.push(s);
        }
        vm.sealed = sealed;
        vm.sealer = Some(self.secure.public());
        Ok(())
    }

    /// Checks a view that arrived signed by `signer` (or that this member
    /// made: `None`) and opens the group key sealed for member `me`.
    pub fn open_view(
        &self,
        vm: &ViewMsg,
        me: EndpointId,
        signer: Option<&Signer>,
    ) -> Result<GroupKey, &'static str> {
        let sealer = vm.sealer.ok_or("view without a sealer")?;
        if let Some(s) = signer {
            if s.key != sealer {
                return Err("view signed by another key than its sealer's");
            }
        }
        if !self.secure.is_authorized(&sealer) {
            return Err("view sealed by a key that is not authorized");
        }
        if vm.keys.len() != vm.members.len() || vm.sealed.len() != vm.members.len() {
            return Err("view without one key per member");
        }
        if !vm.keys.iter().all(|k| self.secure.is_authorized(k)) {
            return Err("view names a member whose key is not authorized");
        }
        let rank = vm
            .members
            .iter()
            .position(|m| *m == me)
            .ok_or("not a member of the view")?;
        if vm.keys[rank] != self.secure.public() {
            return Err("view names this member with another key");
        }
        self.secure
            .open(&vm.sealed[rank], &sealer, &self.seal_for(vm, me))
            .ok_or("the group key sealed for this member does not open")
    }

    /// Whether a join signed by `signer`, claiming `key`, may go on; the
    /// refusal line otherwise.
    pub fn admit(
        &self,
        id: EndpointId,
        addr: &str,
        key: Option<PubKey>,
        signer: &Signer,
    ) -> Result<PubKey, String> {
        if !signer.authorized {
            return Err(format!(
                "refused join of endpoint {id:x} at {addr}: key {} is not authorized",
                short(&signer.key)
            ));
        }
        match key {
            Some(k) if k == signer.key => Ok(k),
            _ => Err(format!(
                "refused join of endpoint {id:x} at {addr}: the join names another key than \
                 the one that signed it"
            )),
        }
    }

    /// Whether every key of a merging view is authorized.
    pub fn all_authorized(&self, keys: &[PubKey]) -> bool {
        keys.iter().all(|k| self.secure.is_authorized(k))
    }
}
