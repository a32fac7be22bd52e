//! Stack specs: `com:nak:frag:stable` (bottom layer first) or a preset
//! name, checked against what each layer needs and provides.

use std::fmt;

use crate::layer::{LayerInfo, Prop};
use crate::layers::{com, crypt, frag, gms, nak, pass, sign, stable, suspect, token, total, xfer};

/// The layers tutti knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// Framing and addressing.
    Com,
    /// Reliable FIFO delivery.
    Nak,
    /// Fragmentation.
    Frag,
    /// Stability.
    Stable,
    /// Failure detection.
    Suspect,
    /// Membership and virtual synchrony.
    Gms,
    /// Total order by a sequencer.
    Total,
    /// State transfer to joiners.
    Xfer,
    /// Total order by a rotating token.
    Token,
    /// Signed membership control frames.
    Sign,
    /// Encrypted, authenticated frames under the view's group key.
    Crypt,
    /// Does nothing (measures layering).
    Pass,
}

impl LayerKind {
    /// Every kind, in registry order.
    pub const ALL: [LayerKind; 12] = [
        LayerKind::Com,
        LayerKind::Nak,
        LayerKind::Frag,
        LayerKind::Stable,
        LayerKind::Suspect,
        LayerKind::Gms,
        LayerKind::Total,
        LayerKind::Xfer,
        LayerKind::Token,
        LayerKind::Sign,
        LayerKind::Crypt,
        LayerKind::Pass,
    ];

    /// The layer's description.
    pub fn info(self) -> &'static LayerInfo {
        match self {
            LayerKind::Com => &com::INFO,
            LayerKind::Nak => &nak::INFO,
            LayerKind::Frag => &frag::INFO,
            LayerKind::Stable => &stable::INFO,
            LayerKind::Suspect => &suspect::INFO,
            LayerKind::Gms => &gms::INFO,
            LayerKind::Total => &total::INFO,
            LayerKind::Xfer => &xfer::INFO,
            LayerKind::Token => &token::INFO,
            LayerKind::Sign => &sign::INFO,
            LayerKind::Crypt => &crypt::INFO,
            LayerKind::Pass => &pass::INFO,
        }
    }

    /// Name in specs.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    fn by_name(name: &str) -> Option<LayerKind> {
        LayerKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Named stacks.
pub const PRESETS: &[(&str, &str, &str)] = &[
    (
        "reliable",
        "com:nak:stable",
        "reliable FIFO multicast and point-to-point, messages up to one buffer",
    ),
    (
        "fifo",
        "com:nak:frag:stable",
        "reliable FIFO multicast and point-to-point, messages of any size",
    ),
    (
        "vsync",
        "com:nak:frag:stable:suspect:gms:xfer",
        "process groups: membership (joins, leaves, failures) with virtual synchrony, FIFO, state transfer",
    ),
    (
        "vsync-total",
        "com:nak:frag:stable:suspect:gms:total:xfer",
        "process groups with virtual synchrony, total order (sequencer), state transfer",
    ),
    (
        "vsync-token",
        "com:nak:frag:stable:suspect:gms:token:xfer",
        "process groups with virtual synchrony, total order (rotating token), state transfer",
    ),
    (
        "vsync-secure",
        "com:sign:crypt:nak:frag:stable:suspect:gms:xfer",
        "vsync for authorized members only: signed joins, frames encrypted under a key fresh in every view",
    ),
    (
        "vsync-total-secure",
        "com:sign:crypt:nak:frag:stable:suspect:gms:total:xfer",
        "vsync-total for authorized members only: signed joins, frames encrypted under a key fresh in every view",
    ),
];

/// A checked stack spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    layers: Vec<LayerKind>,
}

/// Why a spec was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError(pub String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad stack spec: {}", self.0)
    }
}

impl std::error::Error for SpecError {}

fn providers(p: Prop) -> String {
    let names: Vec<&str> = LayerKind::ALL
        .iter()
        .filter(|k| k.info().provides.contains(&p))
        .map(|k| k.name())
        .collect();
    names.join(", ")
}

impl Spec {
    /// Parses and checks a spec string or preset name.
    pub fn parse(s: &str) -> Result<Spec, SpecError> {
        let s = s.trim();
        let expanded = PRESETS
            .iter()
            .find(|(name, _, _)| *name == s)
            .map(|(_, spec, _)| *spec)
            .unwrap_or(s);
        if expanded.is_empty() {
            return Err(SpecError("empty stack spec".into()));
        }
        let mut layers = Vec::new();
        for name in expanded.split(':') {
            let name = name.trim();
            let kind = LayerKind::by_name(name).ok_or_else(|| {
                let known: Vec<&str> = LayerKind::ALL.iter().map(|k| k.name()).collect();
                let presets: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
                SpecError(format!(
                    "unknown layer `{name}` (layers: {}; presets: {})",
                    known.join(", "),
                    presets.join(", ")
                ))
            })?;
            layers.push(kind);
        }
        Spec::from_layers(layers)
    }

    /// Checks a list of layers, bottom first.
    pub fn from_layers(layers: Vec<LayerKind>) -> Result<Spec, SpecError> {
        for (i, k) in layers.iter().enumerate() {
            if *k != LayerKind::Pass && layers[..i].contains(k) {
                return Err(SpecError(format!("layer `{}` appears twice", k.name())));
            }
        }
        match layers.first() {
            None => return Err(SpecError("empty stack spec".into())),
            Some(k) if !k.info().bottom => {
                return Err(SpecError(format!(
                    "the bottom (first) layer must be `com`, not `{}`",
                    k.name()
                )))
            }
            _ => {}
        }
        let mut provided: Vec<Prop> = Vec::new();
        for (i, k) in layers.iter().enumerate() {
            let info = k.info();
            if i > 0 && info.bottom {
                return Err(SpecError(format!(
                    "layer `{}` must be the bottom (first) layer",
                    info.name
                )));
            }
            for need in info.needs {
                if !provided.contains(need) {
                    return Err(SpecError(format!(
                        "layer `{}` needs `{}` below it, but no layer below provides it \
                         (put one of: {} under `{}`)",
                        info.name,
                        need,
                        providers(*need),
                        info.name
                    )));
                }
            }
            for need in info.needs_above {
                let above = layers[i + 1..]
                    .iter()
                    .any(|a| a.info().provides.contains(need));
                if !above {
                    return Err(SpecError(format!(
                        "layer `{}` needs `{}` above it, but no layer above provides it \
                         (put one of: {} over `{}`)",
                        info.name,
                        need,
                        providers(*need),
                        info.name
                    )));
                }
            }
            provided.extend_from_slice(info.provides);
        }
        Ok(Spec { layers })
    }

    /// Layers, bottom first.
    pub fn layers(&self) -> &[LayerKind] {
        &self.layers
    }

    /// Whether the stack is secure (needs an identity and authorized keys).
    pub fn is_secure(&self) -> bool {
        self.layers
            .iter()
            .any(|k| matches!(k, LayerKind::Sign | LayerKind::Crypt))
    }

    /// Whether some layer provides `p`.
    pub fn provides(&self, p: Prop) -> bool {
        self.layers.iter().any(|k| k.info().provides.contains(&p))
    }

    /// Stack id carried in every frame: members with different stacks do
    /// not understand each other. FNV-1a of the canonical spec, folded.
    pub fn id(&self) -> u16 {
        let mut h: u32 = 0x811c_9dc5;
        for b in self.to_string().bytes() {
            h ^= b as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
        (h ^ (h >> 16)) as u16
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in self.layers.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            f.write_str(k.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_specs_parse() {
        let a = Spec::parse("fifo").unwrap();
        let b = Spec::parse(" com : nak : frag : stable ").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "com:nak:frag:stable");
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), Spec::parse("reliable").unwrap().id());
        assert!(a.provides(Prop::Large));
    }

    #[test]
    fn refusals_name_the_missing_property_and_layer() {
        let e = Spec::parse("com:stable").unwrap_err().0;
        assert!(e.contains("`stable` needs `reliable` below"), "{e}");
        assert!(e.contains("nak"), "{e}");
        let e = Spec::parse("com:nak").unwrap_err().0;
        assert!(e.contains("`nak` needs `stability` above"), "{e}");
        let e = Spec::parse("nak:com:stable").unwrap_err().0;
        assert!(e.contains("bottom"), "{e}");
        let e = Spec::parse("com:nak:stable:nak").unwrap_err().0;
        assert!(e.contains("twice"), "{e}");
        let e = Spec::parse("com:bogus").unwrap_err().0;
        assert!(e.contains("unknown layer `bogus`"), "{e}");
        let e = Spec::parse("com:frag:nak:stable").unwrap_err().0;
        assert!(e.contains("`frag` needs `reliable`"), "{e}");
        assert!(Spec::parse("").is_err());
        assert!(Spec::parse("com::nak").is_err());
    }
}
