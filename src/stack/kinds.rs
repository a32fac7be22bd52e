//! The layer kinds a stack is built from: how each is made from a
//! [`StackConfig`], boxed for a dynamic stack ([`make_layer`]) or inline
//! in a static one ([`StaticLayer`]), and the static stacks of the presets.

use super::{LayerKind, StackConfig, StaticLayer};
use crate::layer::Layer;
use crate::layers::com::Com;
use crate::layers::crypt::Crypt;
use crate::layers::frag::Frag;
use crate::layers::gms::Gms;
use crate::layers::nak::Nak;
use crate::layers::pass::Pass;
use crate::layers::sign::Sign;
use crate::layers::stable::Stable;
use crate::layers::suspect::Suspect;
use crate::layers::token::Token;
use crate::layers::total::Total;
use crate::layers::xfer::Xfer;

impl StaticLayer for Com {
    const KIND: LayerKind = LayerKind::Com;
    fn make(cfg: &StackConfig, id: u16) -> Self {
        Com::new(cfg.group, id)
    }
}

impl StaticLayer for Nak {
    const KIND: LayerKind = LayerKind::Nak;
    fn make(cfg: &StackConfig, _id: u16) -> Self {
        Nak::new(cfg.nak)
    }
}

impl StaticLayer for Frag {
    const KIND: LayerKind = LayerKind::Frag;
    fn make(cfg: &StackConfig, _id: u16) -> Self {
        Frag::new(cfg.max_msg)
    }
}

impl StaticLayer for Stable {
    const KIND: LayerKind = LayerKind::Stable;
    fn make(cfg: &StackConfig, _id: u16) -> Self {
        Stable::new(cfg.stable)
    }
}

impl StaticLayer for Suspect {
    const KIND: LayerKind = LayerKind::Suspect;
    fn make(cfg: &StackConfig, _id: u16) -> Self {
        Suspect::new(cfg.suspect)
    }
}

impl StaticLayer for Gms {
    const KIND: LayerKind = LayerKind::Gms;
    fn make(cfg: &StackConfig, _id: u16) -> Self {
        Gms::new(cfg.gms).secured(cfg.group, cfg.secure.clone())
    }
}

impl StaticLayer for Sign {
    const KIND: LayerKind = LayerKind::Sign;
    fn make(cfg: &StackConfig, id: u16) -> Self {
        Sign::new(cfg.secure.clone(), cfg.group, id)
    }
}

impl StaticLayer for Crypt {
    const KIND: LayerKind = LayerKind::Crypt;
    fn make(cfg: &StackConfig, id: u16) -> Self {
        Crypt::new(cfg.group, id)
    }
}

impl StaticLayer for Total {
    const KIND: LayerKind = LayerKind::Total;
    fn make(_cfg: &StackConfig, _id: u16) -> Self {
        Total::new()
    }
}

impl StaticLayer for Xfer {
    const KIND: LayerKind = LayerKind::Xfer;
    fn make(_cfg: &StackConfig, _id: u16) -> Self {
        Xfer::new()
    }
}

impl StaticLayer for Pass {
    const KIND: LayerKind = LayerKind::Pass;
    fn make(_cfg: &StackConfig, _id: u16) -> Self {
        Pass
    }
}

impl StaticLayer for Token {
    const KIND: LayerKind = LayerKind::Token;
    fn make(_cfg: &StackConfig, _id: u16) -> Self {
        Token::new()
    }
}

/// Builds one boxed layer of kind `k`.
pub fn make_layer(k: LayerKind, cfg: &StackConfig, id: u16) -> Box<dyn Layer> {
    match k {
        LayerKind::Com => Box::new(Com::make(cfg, id)),
        LayerKind::Nak => Box::new(Nak::make(cfg, id)),
        LayerKind::Frag => Box::new(Frag::make(cfg, id)),
        LayerKind::Stable => Box::new(Stable::make(cfg, id)),
        LayerKind::Suspect => Box::new(Suspect::make(cfg, id)),
        LayerKind::Gms => Box::new(Gms::make(cfg, id)),
        LayerKind::Total => Box::new(Total::make(cfg, id)),
        LayerKind::Xfer => Box::new(Xfer::make(cfg, id)),
        LayerKind::Token => Box::new(Token::make(cfg, id)),
        LayerKind::Sign => Box::new(Sign::make(cfg, id)),
        LayerKind::Crypt => Box::new(Crypt::make(cfg, id)),
        LayerKind::Pass => Box::new(Pass),
    }
}

/// Type of a static stack, layers listed top first:
/// `stack_type![Stable, Frag, Nak, Com]` is `com:nak:frag:stable`.
#[macro_export]
macro_rules! stack_type {
    ($top:ty) => { $crate::stack::Cons<$top, $crate::stack::Nil> };
    ($top:ty, $($rest:ty),+) => { $crate::stack::Cons<$top, $crate::stack_type!($($rest),+)> };
}

/// Static `com:nak:stable` (preset `reliable`).
pub type ReliableStatic = stack_type![Stable, Nak, Com];
/// Static `com:nak:frag:stable` (preset `fifo`).
pub type FifoStatic = stack_type![Stable, Frag, Nak, Com];
/// Static `com:nak:frag:stable:suspect:gms:xfer` (preset `vsync`).
pub type VsyncStatic = stack_type![Xfer, Gms, Suspect, Stable, Frag, Nak, Com];
/// Static `com:nak:frag:stable:suspect:gms:total:xfer` (preset
/// `vsync-total`).
pub type VsyncTotalStatic = stack_type![Xfer, Total, Gms, Suspect, Stable, Frag, Nak, Com];
/// Static `com:sign:crypt:nak:frag:stable:suspect:gms:xfer` (preset
/// `vsync-secure`).
pub type VsyncSecureStatic = stack_type![Xfer, Gms, Suspect, Stable, Frag, Nak, Crypt, Sign, Com];
/// Static `com:sign:crypt:nak:frag:stable:suspect:gms:total:xfer` (preset
/// `vsync-total-secure`).
pub type VsyncTotalSecureStatic =
    stack_type![Xfer, Total, Gms, Suspect, Stable, Frag, Nak, Crypt, Sign, Com];
