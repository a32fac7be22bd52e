//! `include/tutti.h` is what cbindgen makes of the sources: this fails
//! when the checked-in header is stale. `TUTTI_BLESS=1` rewrites it.

use std::path::Path;

#[test]
fn header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(cfg)
        .generate()
        .expect("cbindgen runs")
        .write(&mut out);
    let generated = String::from_utf8(out).expect("UTF-8 header");
    let path = dir.join("include/tutti.h");
    if std::env::var_os("TUTTI_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write header");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "ffi/include/tutti.h is stale: run TUTTI_BLESS=1 cargo test -p tutti-ffi --test header"
    );
}
