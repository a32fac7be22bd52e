//! `tutti node`: one long-running group member, the way operators and
//! scripts use a group. Every event is one JSON line on stdout; lines read
//! from stdin (or messages generated at `--send-rate`) are multicast; the
//! member leaves cleanly on SIGTERM or at the end of its input.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use tutti::engine::{Core, GroupSpec};
use tutti::event::{fnv1a, FNV_OFFSET};
use tutti::layers::gms::GmsConfig;
use tutti::layers::suspect::SuspectConfig;
use tutti::{Down, Event, SendErrorKind};

use super::common::{driver_config, Idler};
use super::keys::KeyOpts;

/// Options of `tutti node`.
#[derive(Clone, Debug, clap::Args)]
pub struct NodeOpts {
    /// This member's address: a name for shm, ip:port for udp and uring.
    #[arg(long)]
    pub name: String,
    /// Group name.
    #[arg(long, default_value = "tutti")]
    pub group: String,
    /// Driver: shm, uring or udp.
    #[arg(long, default_value = "shm")]
    pub driver: String,
    /// Stack spec or preset (a stack with membership, such as `vsync`).
    #[arg(long, default_value = "vsync")]
    pub stack: String,
    /// Addresses to find the group through (comma-separated); none: found
    /// a group after the join timeout.
    #[arg(long, value_delimiter = ',')]
    pub contacts: Vec<String>,
    /// Directory of shm endpoints.
    #[arg(long, default_value = "/dev/shm/tutti")]
    pub dir: PathBuf,
    /// Multicast generated messages at this rate instead of stdin lines.
    #[arg(long)]
    pub send_rate: Option<f64>,
    /// Bytes of each generated message.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Stop generating after this many messages (with --send-rate).
    #[arg(long)]
    pub count: Option<u64>,
    /// Failure-detector timeout, ms (default: 50 on shm, 500 otherwise).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Primary-partition mode: only a majority partition goes on; a
    /// minority view says `"primary": false` and sends nothing.
    #[arg(long)]
    pub primary: bool,
    /// No line per delivery or stability change: a `stats` line (counts,
    /// first and last delivery) five times a second instead.
    #[arg(long)]
    pub quiet: bool,
    /// Identity and authorized keys (secure stacks).
    #[command(flatten)]
    pub keys: KeyOpts,
}

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

fn now_ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e3
}

fn emit(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// Runs one member until it leaves.
pub fn run(o: &NodeOpts) -> ExitCode {
    match node(o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            emit(json!({"event": "error", "error": e}));
            ExitCode::FAILURE
        }
    }
}

fn node(o: &NodeOpts) -> Result<(), String> {
    if o.size < 16 || o.size > 1 << 20 {
        return Err("--size must be 16..=1048576".into());
    }
    if o.send_rate.is_some_and(|r| !(r > 0.0 && r <= 1e7)) {
        return Err("--send-rate must be in (0, 1e7]".into());
    }
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
    if o.driver == "shm" {
        std::fs::create_dir_all(&o.dir).map_err(|e| format!("{}: {e}", o.dir.display()))?;
    }
    let d = driver_config(&o.driver, &o.name, &o.dir)?
        .open()
        .map_err(|e| e.to_string())?;
    let mut core = Core::new(d);
    let mut spec = GroupSpec::new(&o.group, &o.stack, o.contacts.clone());
    let shm = o.driver == "shm";
    let timeout_ns = o.timeout_ms.map(|ms| ms * 1_000_000).unwrap_or(if shm {
        SuspectConfig::SHM.timeout_ns
    } else {
        SuspectConfig::LAN.timeout_ns
    });
    spec.config.suspect = SuspectConfig { timeout_ns };
    spec.config.gms = GmsConfig {
        tick_ns: (timeout_ns / 4).max(1_000_000),
        join_timeout_ns: (timeout_ns * 4).max(50_000_000),
        app_block_ok: false,
        app_state: true,
        primary: o.primary,
    };
    spec.config.secure = o.keys.load()?;
    let g = core.join(&spec).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let me = core.incarnation(&o.name);
    emit(
        json!({"event": "start", "name": o.name, "id": me, "group": o.group,
                "stack": o.stack, "driver": o.driver, "t_ms": 0.0}),
    );

    // Stdin lines, read on their own thread.
    let lines = if o.send_rate.is_none() {
        let (tx, rx) = mpsc::channel::<Option<String>>();
        std::thread::spawn(move || {
            for l in std::io::stdin().lock().lines() {
                match l {
                    Ok(l) => {
                        if tx.send(Some(l)).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send(None);
        });
        Some(rx)
    } else {
        None
    };

    let mut idler = Idler::new();
    // The application's state: how many casts it holds and an order-free
    // hash of them (what a joiner gets by state transfer).
    let mut held: u64 = 0;
    let mut digest: u64 = 0;
    // First and last delivery, ms (for --quiet summaries).
    let mut first: Option<f64> = None;
    let mut last = 0.0f64;
    let mut last_stats = Instant::now();
    let mut members: Vec<u64> = Vec::new();
    let mut in_view = false;
    let mut leaving: Option<Instant> = None;
    let mut outbox: std::collections::VecDeque<Vec<u8>> = Default::default();
    let mut generated: u64 = 0;
    let period = o.send_rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let mut next_send = Instant::now();
    loop {
        let mut work = core.poll().map_err(|e| e.to_string())?;
        while let Some(ev) = core.next_event(g) {
            work += 1;
            match ev {
                Event::View(v) => {
                    members = v.members.clone();
                    in_view = true;
                    emit(json!({"event": "view", "t_ms": now_ms(t0),
                        "view": {"ltime": v.id.ltime, "coord": v.id.coord},
                        "members": v.members, "addrs": v.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                        "rank": v.rank, "merge": !v.merged.is_empty(), "primary": v.primary,
                        "merged": v.merged.iter().map(|m| json!({"ltime": m.ltime, "coord": m.coord})).collect::<Vec<_>>()}));
                }
                Event::Cast { src, seq, msg } => {
                    let h = msg.segments().fold(FNV_OFFSET, fnv1a);
                    held += 1;
                    digest = digest.wrapping_add(h);
                    let t = now_ms(t0);
                    first.get_or_insert(t);
                    last = t;
                    if !o.quiet {
                        emit(json!({"event": "deliver", "t_ms": t, "sender": src,
                            "sender_id": members.get(src as usize).copied().unwrap_or(0),
                            "seq": seq, "len": msg.len(), "hash": format!("{h:016x}")}));
                    }
                }
                Event::Send { src, seq, msg } => {
                    emit(json!({"event": "send", "t_ms": now_ms(t0), "sender": src,
                        "seq": seq, "len": msg.len()}));
                }
                Event::Block => emit(json!({"event": "block", "t_ms": now_ms(t0)})),
                Event::Primary => emit(json!({"event": "primary", "t_ms": now_ms(t0)})),
                Event::GetState => {
                    let mut st = [0u8; 16];
                    st[..8].copy_from_slice(&held.to_be_bytes());
                    st[8..].copy_from_slice(&digest.to_be_bytes());
                    core.submit(
                        g,
                        tutti::engine::Request::Down(Down::State(st.to_vec().into())),
                    );
                    emit(json!({"event": "give_state", "t_ms": now_ms(t0), "messages": held}));
                }
                Event::State(st) => {
                    let (h, d) = match st.as_deref() {
                        Some(b) if b.len() == 16 => (
                            u64::from_be_bytes(b[..8].try_into().unwrap_or_default()),
                            u64::from_be_bytes(b[8..].try_into().unwrap_or_default()),
                        ),
                        _ => (0, 0),
                    };
                    held = h;
                    digest = d;
                    emit(json!({"event": "state", "t_ms": now_ms(t0), "messages": h,
                        "digest": format!("{d:016x}"), "lost": st.is_none()}));
                }
                Event::Stable(v) if !o.quiet => {
                    emit(json!({"event": "stable", "t_ms": now_ms(t0), "vector": v.to_vec()}))
                }
                Event::Suspect(r) => {
                    emit(json!({"event": "suspect", "t_ms": now_ms(t0), "ranks": r.to_vec()}))
                }
                Event::Lost { src, from, to } => emit(
                    json!({"event": "lost", "t_ms": now_ms(t0), "sender": src, "from": from, "to": to}),
                ),
                Event::Refused(why) => {
                    eprintln!("tutti node {}: {why}", o.name);
                    emit(json!({"event": "refused", "t_ms": now_ms(t0), "why": why.to_string()}));
                }
                Event::Exit => {
                    emit(
                        json!({"event": "exit", "t_ms": now_ms(t0), "messages": held,
                        "digest": format!("{digest:016x}")}),
                    );
                    return Ok(());
                }
                _ => {}
            }
        }
        if o.quiet && last_stats.elapsed() >= Duration::from_millis(200) {
            last_stats = Instant::now();
            emit(
                json!({"event": "stats", "t_ms": now_ms(t0), "delivered": held,
                "first_ms": first, "last_ms": last, "sent": generated}),
            );
        }
        if leaving.is_none() {
            let mut end = TERM.load(Ordering::SeqCst);
            if let Some(rx) = &lines {
                while let Ok(l) = rx.try_recv() {
                    match l {
                        Some(l) => outbox.push_back(l.into_bytes()),
                        None => end = true,
                    }
                }
            }
            if let Some(p) = period {
                let limit = o.count.unwrap_or(u64::MAX);
                while in_view
                    && generated < limit
                    && Instant::now() >= next_send
                    && outbox.len() < 64
                {
                    let mut b = vec![0u8; o.size];
                    b[..8].copy_from_slice(&generated.to_be_bytes());
                    b[8..16].copy_from_slice(&me.to_be_bytes());
                    outbox.push_back(b);
                    generated += 1;
                    next_send += p;
                }
            }
            if end && outbox.is_empty() {
                core.submit(g, tutti::engine::Request::Down(Down::Leave));
                leaving = Some(Instant::now());
            }
        } else if leaving.is_some_and(|t| t.elapsed() > Duration::from_secs(5)) {
            emit(json!({"event": "exit", "t_ms": now_ms(t0), "timeout": true}));
            return Ok(());
        }
        while in_view && leaving.is_none() {
            let Some(b) = outbox.front() else { break };
            let Some(m) = core.pool().alloc_copy(b).ok() else {
                break;
            };
            match core.cast(g, m) {
                Ok(()) => {
                    outbox.pop_front();
                    work += 1;
                }
                Err(e)
                    if e.kind == SendErrorKind::WouldBlock || e.kind == SendErrorKind::NoView =>
                {
                    break
                }
                Err(e) => {
                    emit(json!({"event": "error", "error": e.kind.to_string()}));
                    outbox.pop_front();
                }
            }
        }
        idler.step(work, &mut core);
    }
}
