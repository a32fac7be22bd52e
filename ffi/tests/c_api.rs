//! The C API from C: `tests/c/group_test.c` is compiled with `cc` against
//! `libtutti.a` and `include/tutti.h`, and three processes of it join a
//! group over shm, multicast (copying and zero-copy), check FIFO delivery
//! of everyone's messages, and one leaves while the others see the view
//! change. `tests/c/include_test.cpp` checks that the header compiles and
//! links from C++. `examples/chat.c` must compile too.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ffi_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The profile directory this test was built into (target/<profile>).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// Builds libtutti (cargo does not build a staticlib for tests) and
/// returns the static library's path.
fn libtutti() -> PathBuf {
    let profile = profile_dir();
    let release = profile.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "tutti-ffi", "--lib"]);
    if release {
        cmd.arg("--release");
    }
    let st = cmd.status().expect("cargo runs");
    assert!(st.success(), "building libtutti failed");
    let lib = profile.join("libtutti.a");
    assert!(lib.exists(), "{} missing", lib.display());
    lib
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// Compiles `src` (C or C++ by `compiler`) against libtutti into `out`.
fn compile(compiler: &str, src: &Path, out: &Path, lib: &Path) {
    let o = Command::new(compiler)
        .arg("-O2")
        .arg("-Wall")
        .arg("-I")
        .arg(ffi_dir().join("include"))
        .arg(src)
        .arg(lib)
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil"])
        .arg("-o")
        .arg(out)
        .output()
        .expect("compiler runs");
    assert!(
        o.status.success(),
        "{compiler} {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The pkg-config file parses and names the library.
#[test]
fn pkg_config_file_is_usable() {
    if Command::new("pkg-config")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipping: no pkg-config on this machine");
        return;
    }
    let o = Command::new("pkg-config")
        .args(["--libs", "--cflags"])
        .arg(ffi_dir().join("tutti.pc"))
        .output()
        .expect("pkg-config runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("-ltutti"), "{out}");
}

#[test]
fn c_programs_use_the_api() {
    if !have("cc") || !have("c++") {
        println!("skipping: no C/C++ compiler (cc, c++) on this machine");
        return;
    }
    let lib = libtutti();
    let work = std::env::temp_dir().join(format!("tutti-capi-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    // C++: the header compiles and links, and the call works.
    let cpp = work.join("include_test");
    compile(
        "c++",
        &ffi_dir().join("tests/c/include_test.cpp"),
        &cpp,
        &lib,
    );
    let o = Command::new(&cpp).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    // The example compiles.
    compile(
        "cc",
        &ffi_dir().join("examples/chat.c"),
        &work.join("chat"),
        &lib,
    );
    // Three members over shm.
    let prog = work.join("group_test");
    compile("cc", &ffi_dir().join("tests/c/group_test.c"), &prog, &lib);
    let dir = work.join("shm");
    let names = ["ca", "cb", "cc"];
    let kids: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Command::new(&prog)
                .arg(&dir)
                .arg(n)
                .arg(names.join(","))
                .arg("3")
                .arg(if i == 2 { "leave" } else { "stay" })
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outs = Vec::new();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(o.status.success(), "a member failed:\n{text}");
        outs.push(text);
    }
    for t in &outs {
        assert!(t.contains("ok delivered 600 in order"), "{t}");
        assert!(t.contains("ok done"), "{t}");
    }
    assert!(outs[2].contains("ok left"), "{}", outs[2]);
    assert!(
        outs[0].contains("ok view of 2 after the leave"),
        "{}",
        outs[0]
    );
    assert!(
        outs[1].contains("ok view of 2 after the leave"),
        "{}",
        outs[1]
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// A secure group from C: two members with authorized keys exchange
/// hellos over `vsync-secure`; a third process whose key is not
/// authorized gets `TUTTI_EVENT_KIND_REFUSED`, then `EXIT`, and the member
/// that refused it reports it too.
#[test]
fn c_secure_group_refuses_an_intruder() {
    use tutti_core::secure::{hex, Identity};
    if !have("cc") {
        println!("skipping: no C compiler (cc) on this machine");
        return;
    }
    let lib = libtutti();
    let work = std::env::temp_dir().join(format!("tutti-csecure-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let prog = work.join("secure_test");
    compile("cc", &ffi_dir().join("tests/c/secure_test.c"), &prog, &lib);
    let mut auth = String::new();
    for (i, n) in ["sa", "sb", "sx"].iter().enumerate() {
        let id = Identity::from_seed([0x20 + i as u8; 32]);
        std::fs::write(work.join(format!("{n}.key")), id.secret_hex()).unwrap();
        if i < 2 {
            auth.push_str(&hex(&id.public()));
            auth.push('\n');
        }
    }
    std::fs::write(work.join("authorized"), auth).unwrap();
    let dir = work.join("shm");
    let run = |name: &str, role: &str| {
        Command::new(&prog)
            .arg(&dir)
            .arg(name)
            .arg("sa,sb")
            .arg(work.join(format!("{name}.key")))
            .arg(work.join("authorized"))
            .arg(role)
            .arg("2")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = run("sa", "member");
    let b = run("sb", "member");
    std::thread::sleep(std::time::Duration::from_millis(800));
    let x = run("sx", "intruder");
    let mut outs = Vec::new();
    for k in [a, b, x] {
        let o = k.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(o.status.success(), "a process failed:\n{text}");
        outs.push(text);
    }
    let _ = std::fs::remove_dir_all(&work);
    for t in &outs[..2] {
        assert!(t.contains("ok secure delivered 2 hellos"), "{t}");
        assert!(t.contains("ok left"), "{t}");
    }
    assert!(
        outs[..2]
            .iter()
            .any(|t| t.contains("ok refused: refused join") && t.contains("not authorized")),
        "a member reports the refusal: {outs:?}"
    );
    assert!(outs[2].contains("not authorized"), "{}", outs[2]);
    assert!(
        outs[2].contains("ok intruder refused and out"),
        "{}",
        outs[2]
    );
}
