//! Multi-process tests: the `tutti` binary itself, several processes at a
//! time, over shm, UDP and io_uring on loopback, and UDP between two
//! network namespaces (scripts/netns.sh; skipped, with the reason, when
//! not root or without iproute2).

use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

/// These tests each start several busy processes; on 2 cores they must
/// not run at the same time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn tutti() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tutti"))
}

#[test]
fn demo_runs_a_group_of_three_and_its_checks_hold() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = tutti()
        .args(["demo", "--seconds", "1", "--rate", "2000"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("all checks hold"), "{text}");
    // The membership part: a join with state transfer, a kill, the checks.
    assert!(text.contains("m3 joined with the group's state"), "{text}");
    assert!(
        text.contains("view agreement: ok; virtual synchrony: ok"),
        "{text}"
    );
    // Three member rows with complete deliveries from all three senders.
    let rows = text
        .lines()
        .filter(|l| l.starts_with('m') && l.contains(" ok "))
        .count();
    assert_eq!(rows, 3, "{text}");
}

fn bench(args: &[&str]) -> Option<Value> {
    let out = tutti()
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unsupported here") {
        println!("skipping {args:?}: {stderr}");
        return None;
    }
    assert!(out.status.success(), "bench {args:?} failed: {stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    Some(serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}")))
}

fn check_result(v: &Value, driver: &str) {
    for k in [
        "driver",
        "stack",
        "size",
        "count",
        "p50_ns",
        "p90_ns",
        "p99_ns",
        "p999_ns",
        "max_ns",
        "msgs_per_s",
    ] {
        assert!(v.get(k).is_some(), "missing {k} in {v}");
    }
    assert_eq!(v["driver"], driver);
    assert!(v["p50_ns"].as_u64().unwrap() > 0);
    assert!(v["p50_ns"].as_u64() <= v["p99_ns"].as_u64());
    assert!(v["msgs_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn pingpong_through_the_stack_and_raw_on_every_driver() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for d in ["shm", "udp", "uring"] {
        for raw in [false, true] {
            let mut args = vec!["pingpong", "--driver", d, "--count", "2000"];
            if raw {
                args.push("--raw");
            }
            if let Some(v) = bench(&args) {
                check_result(&v, d);
                assert_eq!(v["stack"], if raw { "raw" } else { "com:nak:stable" });
            }
        }
    }
}

#[test]
fn throughput_one_sender_two_receivers_over_shm() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let v = bench(&[
        "throughput",
        "--driver",
        "shm",
        "--count",
        "50000",
        "--size",
        "64",
    ])
    .unwrap();
    check_result(&v, "shm");
    assert_eq!(
        v["received"], 50_000,
        "every message reached both receivers: {v}"
    );
    assert_eq!(v["receivers"], 2);
}

#[test]
fn counters_show_every_members_driver_and_stack() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = tutti()
        .args(["bench", "throughput", "--driver", "shm", "--receivers", "1"])
        .args(["--batch", "64", "--count", "20000", "--counters", "--json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for m in 0..2 {
        assert!(
            err.contains(&format!("member {m}: driver DriverStats")),
            "{err}"
        );
        assert!(err.contains(&format!("member {m}: stack Stats")), "{err}");
        assert!(err.contains(&format!("member {m}: drops ")), "{err}");
    }
    // The sender packed its batches, and said so.
    let sender = err
        .lines()
        .find(|l| l.starts_with("member 0: stack"))
        .unwrap_or_default();
    let packed: u64 = sender
        .split("packed_casts: ")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(packed > 0, "{sender}");
}

#[test]
fn udp_between_two_network_namespaces() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let root = effective_uid() == 0;
    if !root {
        println!("skipping: creating network namespaces needs root");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/netns.sh");
    let up = Command::new(script).arg("up").output().unwrap();
    if !up.status.success() {
        println!(
            "skipping: scripts/netns.sh up failed: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        return;
    }
    let members = "10.77.0.1:7711,10.77.0.2:7711";
    let exe = env!("CARGO_BIN_EXE_tutti");
    let peer = Command::new("ip")
        .args([
            "netns", "exec", "tutti-b", exe, "bench", "pingpong", "--driver", "udp", "--count",
            "2000",
        ])
        .args(["--members", members, "--me", "10.77.0.2:7711"])
        .spawn()
        .unwrap();
    let out = Command::new("ip")
        .args([
            "netns", "exec", "tutti-a", exe, "bench", "pingpong", "--driver", "udp", "--count",
            "2000",
        ])
        .args(["--members", members, "--me", "10.77.0.1:7711", "--json"])
        .output()
        .unwrap();
    let mut peer = peer;
    let _ = peer.wait();
    let _ = Command::new(script).arg("down").output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap();
    check_result(&v, "udp");
}

/// Effective user id, from /proc (no unsafe needed).
fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|x| x.to_string()))
        })
        .and_then(|x| x.parse().ok())
        .unwrap_or(u32::MAX)
}

/// Four `tutti node` processes over shm multicast; one is killed with
/// SIGKILL mid-stream. The survivors delivered the same messages in the
/// old view, and installed the new view within 5 x the failure-detector
/// timeout. Once killing the highest rank, once the coordinator.
#[test]
fn vsync_survivors_agree_after_a_sigkill() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let timeout_ms = 100u64;
    for extra in [None, Some("--coordinator")] {
        let mut cmd = tutti();
        cmd.args(["failover", "--sizes", "4", "--runs", "1", "--json"])
            .args(["--timeout-ms", &timeout_ms.to_string()]);
        if let Some(x) = extra {
            cmd.arg(x);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "failover {extra:?} failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_str(text.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("bad JSON {text:?}: {e}"));
        assert_eq!(v["vsync_ok"], true, "{v}");
        assert!(v["checked_deliveries"].as_u64().unwrap() > 0, "{v}");
        let ms = v["max_ms"].as_f64().unwrap();
        assert!(
            ms <= 5.0 * timeout_ms as f64,
            "new view {ms} ms after the kill, more than 5 x {timeout_ms} ms: {v}"
        );
    }
}
