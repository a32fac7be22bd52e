//! `shm`: processes on one host, U-Net style.
//!
//! Each endpoint owns a file in a directory (default `/dev/shm/tutti`)
//! holding its control header, a multi-producer receive ring, a return
//! ring, and its registered regions (see [`ctl`]). To send, a process
//! writes the frame once into its own region and pushes a descriptor
//! (its id, region, slot, offset, length) onto each receiver's ring. The
//! receiver maps the sender's regions read-only and reads the frame in
//! place; when its last handle on the buffer drops, the slot goes back on
//! the sender's return ring. The receiver's doorbell (a futex in its
//! header) is rung only when it sleeps.
//!
//! Failure handling: a peer whose ring is full costs a dropped frame
//! (counted; the protocol repairs), never a blocked sender. A dead peer
//! (its pid gone, or reused by another process) is found by `maintain`:
//! the buffers lent to it are taken back and its file removed. Files of
//! dead processes in the directory are swept when an endpoint opens.

pub mod ctl;
pub mod ring;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::driver::{share_and_send, Driver, DriverError, DriverStats, PeerId, To, Tx, Waker};
use crate::pool::{Msg, Pool, PoolConfig, SlotSink};
use ctl::{Layout, Mapped};
use ring::{Record, Ring};

/// Configuration of a shm endpoint.
#[derive(Clone, Debug)]
pub struct ShmConfig {
    /// Directory holding the endpoint files.
    pub dir: PathBuf,
    /// This endpoint's name (unique in `dir`).
    pub name: String,
    /// Data region.
    pub data: PoolConfig,
    /// Control region (the layers' own messages).
    pub ctl: PoolConfig,
    /// Receive ring capacity, descriptors (a power of two).
    pub rx_ring: u64,
}

impl Default for ShmConfig {
    fn default() -> Self {
        let slot = PoolConfig {
            slots: 16384,
            slot_size: 2048,
            // A payload starts 8 bytes into a cache line: a compact frame's
            // 8-byte header (the common case of every stack) fills the
            // start of that line, so a small message is one line for the
            // receiver to fetch, not two.
            headroom: 136,
            tailroom: 32,
        };
        ShmConfig {
            dir: PathBuf::from("/dev/shm/tutti"),
            name: String::new(),
            data: slot,
            // Packed frames are built here: a larger slot packs a batch
            // of small casts in one frame instead of three (64 casts of
            // 64 bytes take 4.2 KB), and what each frame costs, from its
            // buffer to the receiver's acknowledgement, is paid a third
            // as often. Only the bytes written are touched.
            ctl: PoolConfig {
                slots: 2048,
                slot_size: 8192,
                ..slot
            },
            rx_ring: 8192,
        }
    }
}

/// A receive descriptor: where in which sender's region a frame lies.
/// Written by the sender into the receiver's ring, so untrusted: the
/// receiver checks every field against the sender's region before it
/// touches a byte ([`Pool::adopt`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    /// The sender endpoint's id.
    pub sender: u64,
    /// Which of its regions (data, control).
    pub region: u32,
    /// Slot in that region.
    pub slot: u32,
    /// Offset of the frame in the slot.
    pub off: u32,
    /// Length of the frame.
    pub len: u32,
}

impl Desc {
    /// The three ring words of a descriptor.
    pub fn to_record(&self) -> [u64; 3] {
        [
            self.sender,
            ((self.region as u64) << 32) | self.slot as u64,
            ((self.off as u64) << 32) | self.len as u64,
        ]
    }

    /// A descriptor from three ring words (any words decode; the fields
    /// are checked where they are used).
    pub fn from_record(r: [u64; 3]) -> Desc {
        Desc {
            sender: r[0],
            region: (r[1] >> 32) as u32,
            slot: r[1] as u32,
            off: (r[2] >> 32) as u32,
            len: r[2] as u32,
        }
    }
}

const REGION_DATA: u64 = 0;
const REGION_CTL: u64 = 1;
/// How often `maintain` checks that peers live.
const LIVENESS_EVERY: Duration = Duration::from_millis(20);
/// Least time between two directory scans for an unknown sender.
const DISCOVER_EVERY: Duration = Duration::from_millis(10);
/// A claimed-but-unpublished receive cell older than this, with a peer
/// found dead meanwhile, is skipped.
const STALL_LIMIT: Duration = Duration::from_millis(100);

fn futex_wait(word: &std::sync::atomic::AtomicU32, val: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: FUTEX_WAIT on a live, aligned 32-bit word in a shared mapping
    // (not FUTEX_PRIVATE: wakers are in other processes); the kernel reads
    // `ts` only during the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            val,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0,
        );
    }
}

fn futex_wake(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: FUTEX_WAKE on a live aligned word; no memory is written.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0,
        );
    }
}

fn ring_bell(m: &Mapped) {
    let h = m.header();
    h.bell.fetch_add(1, Ordering::SeqCst);
    futex_wake(&h.bell);
}

/// Gives a peer's slots back onto its return ring.
struct ReturnSink {
    peer: Arc<Mapped>,
    ret: Ring,
    my_id: u64,
    region: u64,
    overflow: Mutex<Vec<Record>>,
}

impl SlotSink for ReturnSink {
    fn give_back(&self, slot: u32, lent: u32) {
        let rec = [self.my_id, (self.region << 32) | slot as u64, lent as u64];
        if !self.ret.push(rec) {
            if let Ok(mut o) = self.overflow.lock() {
                o.push(rec);
            }
        } else if self.peer.header().sleeping.load(Ordering::SeqCst) == 1 {
            ring_bell(&self.peer);
        }
    }
}

impl ReturnSink {
    fn flush(&self) {
        let Ok(mut o) = self.overflow.lock() else {
            return;
        };
        while let Some(rec) = o.first().copied() {
            if !self.ret.push(rec) {
                break;
            }
            o.remove(0);
        }
    }
}

struct Conn {
    mapped: Arc<Mapped>,
    id: u64,
    ino: u64,
    rx: Ring,
    regions: [Pool; 2],
    sinks: [Arc<ReturnSink>; 2],
    /// Our slots lent to this peer and not yet returned, per region.
    lent: [Vec<u32>; 2],
}

struct Peer {
    name: String,
    conn: Option<Conn>,
}

/// The shm driver.
pub struct ShmDriver {
    cfg: ShmConfig,
    me: Arc<Mapped>,
    id: u64,
    regions: [Pool; 2],
    rx: Ring,
    ret: Ring,
    peers: Vec<Peer>,
    stats: DriverStats,
    last_check: Instant,
    last_discover: Instant,
    stall_since: Option<(Instant, u64)>,
    touched: Vec<bool>,
    /// `recv` calls (returns are drained on every eighth under load).
    recv_calls: u32,
}

fn inode(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

fn fresh_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() | 1
}

impl ShmDriver {
    /// Opens endpoint `cfg.name` in `cfg.dir` (sweeping files of dead
    /// processes first).
    pub fn open(cfg: ShmConfig) -> Result<ShmDriver, DriverError> {
        ctl::check_name(&cfg.name)?;
        let layout = Layout::new(cfg.data, cfg.ctl, cfg.rx_ring)?;
        std::fs::create_dir_all(&cfg.dir)?;
        ctl::sweep(&cfg.dir);
        let id = fresh_id();
        let me = ctl::create(&cfg.dir, &cfg.name, layout, id)?;
        let data = Pool::in_file(&me.file, layout.data_off, layout.data)
            .map_err(|e| DriverError::Config(e.to_string()))?;
        let ctl_pool = Pool::in_file(&me.file, layout.ctl_off, layout.ctl)
            .map_err(|e| DriverError::Config(e.to_string()))?;
        let rx = me.rx();
        let ret = me.ret();
        Ok(ShmDriver {
            cfg,
            me: Arc::new(me),
            id,
            regions: [data, ctl_pool],
            rx,
            ret,
            peers: Vec::new(),
            stats: DriverStats::default(),
            last_check: Instant::now(),
            last_discover: Instant::now() - DISCOVER_EVERY,
            stall_since: None,
            touched: Vec::new(),
            recv_calls: 0,
        })
    }

    /// This endpoint's incarnation id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether peer `p` is connected (its endpoint file found and mapped).
    pub fn connected(&self, p: PeerId) -> bool {
        self.peers.get(p as usize).is_some_and(|p| p.conn.is_some())
    }

    fn connect(&mut self, idx: usize) {
        let path = ctl::path_of(&self.cfg.dir, &self.peers[idx].name);
        let Ok(m) = ctl::open(&path) else {
            return;
        };
        if !m.owner_alive() {
            return;
        }
        let layout = m.layout;
        let my_id = self.id;
        let m = Arc::new(m);
        let sink = |region| {
            Arc::new(ReturnSink {
                peer: m.clone(),
                ret: m.ret(),
                my_id,
                region,
                overflow: Mutex::new(Vec::new()),
            })
        };
        let sinks = [sink(REGION_DATA), sink(REGION_CTL)];
        let foreign = |off: u64, cfg: PoolConfig, sink: &Arc<ReturnSink>| {
            Pool::foreign(&m.file, off, cfg, Box::new(SinkRef(sink.clone())))
        };
        let (Ok(d), Ok(c)) = (
            foreign(layout.data_off, layout.data, &sinks[0]),
            foreign(layout.ctl_off, layout.ctl, &sinks[1]),
        ) else {
            return;
        };
        let conn = Conn {
            id: m.id(),
            ino: inode(&path).unwrap_or(0),
            rx: m.rx(),
            mapped: m,
            regions: [d, c],
            sinks,
            lent: [
                vec![0; self.regions[0].config().slots as usize],
                vec![0; self.regions[1].config().slots as usize],
            ],
        };
        self.peers[idx].conn = Some(conn);
    }

    /// Takes back every buffer lent to peer `idx` and forgets the
    /// connection (the peer died or was replaced).
    fn disconnect(&mut self, idx: usize) {
        let Some(conn) = self.peers[idx].conn.take() else {
            return;
        };
        for (region, lent) in conn.lent.iter().enumerate() {
            for (slot, n) in lent.iter().enumerate() {
                for _ in 0..*n {
                    self.regions[region].release_lent(slot as u32);
                }
            }
        }
    }

    /// Looks in the directory for the endpoint with id `sid` and connects
    /// to it as a new peer. At most once per [`DISCOVER_EVERY`]: a flood
    /// of frames with made-up ids costs one directory scan per period.
    fn discover(&mut self, sid: u64) -> Option<usize> {
        if self.last_discover.elapsed() < DISCOVER_EVERY {
            return None;
        }
        self.last_discover = Instant::now();
        let entries = std::fs::read_dir(&self.cfg.dir).ok()?;
        for e in entries.flatten() {
            let file = e.file_name();
            let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".tutti")) else {
                continue;
            };
            if name == self.cfg.name || self.peers.iter().any(|p| p.name == name) {
                continue;
            }
            let Ok(m) = ctl::open(&e.path()) else {
                continue;
            };
            if m.id() == sid && m.owner_alive() {
                drop(m);
                self.peers.push(Peer {
                    name: name.to_string(),
                    conn: None,
                });
                self.touched.push(false);
                let i = self.peers.len() - 1;
                self.connect(i);
                self.stats.peers_discovered += 1;
                return self.peer_by_id(sid);
            }
        }
        None
    }

    fn peer_by_id(&self, id: u64) -> Option<usize> {
        self.peers
            .iter()
            .position(|p| p.conn.as_ref().is_some_and(|c| c.id == id))
    }

    /// Puts a descriptor of `frame` (in region `region`) on the receive
    /// ring of each peer `to` names, each lent one count on its slot.
    #[inline]
    fn publish(&mut self, to: To, region: usize, frame: &Msg) {
        if frame.nsegs() != 1 {
            self.stats.tx_full += 1;
            return;
        }
        let (slot, len) = (frame.slot(), frame.len() as u64);
        let rec = Desc {
            sender: self.id,
            region: region as u32,
            slot,
            off: frame.offset(),
            len: len as u32,
        }
        .to_record();
        let range = match to {
            To::All => 0..self.peers.len(),
            To::Peer(p) => p as usize..(p as usize + 1).min(self.peers.len()),
        };
        for p in range {
            let Some(conn) = self.peers[p].conn.as_mut() else {
                // Not connected (yet): lost, like a frame on a wire.
                self.stats.tx_full += 1;
                continue;
            };
            // Retain before publishing: a fast receiver may return the
            // slot before push() even returns.
            self.regions[region].retain_lent(slot, 1);
            conn.lent[region][slot as usize] += 1;
            if conn.rx.push(rec) {
                self.touched[p] = true;
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += len;
            } else {
                conn.lent[region][slot as usize] -= 1;
                self.regions[region].release_lent(slot);
                self.stats.tx_full += 1;
            }
        }
    }

    /// Rings the doorbell of each peer a send reached that sleeps.
    #[inline]
    fn ring_bells(&mut self) {
        for (p, t) in self.touched.iter_mut().enumerate() {
            if std::mem::take(t) {
                if let Some(c) = &self.peers[p].conn {
                    // SeqCst pairs with the receiver's SeqCst store of
                    // `sleeping` before it re-checks its ring (Dekker).
                    std::sync::atomic::fence(Ordering::SeqCst);
                    if c.mapped.header().sleeping.load(Ordering::SeqCst) == 1 {
                        ring_bell(&c.mapped);
                    }
                }
            }
        }
    }

    fn drain_returns(&mut self) {
        while let Some([who, rs, count]) = self.ret.pop() {
            let (region, slot) = ((rs >> 32) as usize, rs as u32);
            let Some(p) = self.peer_by_id(who) else {
                self.stats.rx_bad += 1;
                continue;
            };
            let Some(conn) = self.peers[p].conn.as_mut() else {
                continue;
            };
            let Some(lent) = conn
                .lent
                .get_mut(region)
                .and_then(|l| l.get_mut(slot as usize))
            else {
                self.stats.rx_bad += 1;
                continue;
            };
            // A peer cannot return more than it was lent.
            let n = (count as u32).min(*lent);
            *lent -= n;
            for _ in 0..n {
                self.regions[region].release_lent(slot);
            }
        }
    }

    fn check_peers(&mut self) {
        for i in 0..self.peers.len() {
            let path = ctl::path_of(&self.cfg.dir, &self.peers[i].name);
            match &self.peers[i].conn {
                Some(c) => {
                    let replaced = inode(&path).is_some_and(|ino| ino != c.ino);
                    if !c.mapped.owner_alive() || replaced {
                        self.stats.peers_dead += 1;
                        if !replaced {
                            let _ = std::fs::remove_file(&path);
                        }
                        self.disconnect(i);
                        self.connect(i);
                    } else {
                        for s in &c.sinks {
                            s.flush();
                        }
                    }
                }
                None => self.connect(i),
            }
        }
    }

    /// Skips a receive cell whose producer died between claiming and
    /// publishing it (otherwise the ring would be wedged for good).
    fn unwedge(&mut self) {
        if !self.rx.stalled() {
            self.stall_since = None;
            return;
        }
        let now = Instant::now();
        match self.stall_since {
            None => self.stall_since = Some((now, self.stats.peers_dead)),
            Some((since, dead_before)) => {
                if now - since > STALL_LIMIT && self.stats.peers_dead > dead_before {
                    self.rx.skip_stalled();
                    self.stats.rx_bad += 1;
                    self.stall_since = None;
                }
            }
        }
    }
}

/// Lets a foreign pool own a shared sink.
struct SinkRef(Arc<ReturnSink>);

impl SlotSink for SinkRef {
    fn give_back(&self, slot: u32, lent: u32) {
        self.0.give_back(slot, lent)
    }
}

struct ShmWaker(Arc<Mapped>);

impl Waker for ShmWaker {
    fn wake(&self) {
        ring_bell(&self.0);
    }
}

impl Drop for ShmDriver {
    fn drop(&mut self) {
        // Only remove the file if it is still ours.
        let path = ctl::path_of(&self.cfg.dir, &self.cfg.name);
        if let Ok(m) = ctl::open(&path) {
            if m.id() == self.id {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

impl Driver for ShmDriver {
    fn kind(&self) -> &'static str {
        "shm"
    }

    fn local_addr(&self) -> String {
        self.cfg.name.clone()
    }

    fn peer_count(&self) -> usize {
        self.peers.len()
    }

    fn add_peer(&mut self, addr: &str) -> Result<PeerId, DriverError> {
        ctl::check_name(addr)?;
        if addr == self.cfg.name {
            return Err(DriverError::BadAddress(format!("{addr} is this endpoint")));
        }
        if let Some(i) = self.peers.iter().position(|p| p.name == addr) {
            return Ok(i as PeerId);
        }
        self.peers.push(Peer {
            name: addr.to_string(),
            conn: None,
        });
        self.touched.push(false);
        let i = self.peers.len() - 1;
        self.connect(i);
        Ok(i as PeerId)
    }

    fn pool(&self) -> &Pool {
        &self.regions[0]
    }

    fn ctl_pool(&self) -> &Pool {
        &self.regions[1]
    }

    fn max_frame(&self) -> usize {
        self.cfg.data.slot_size as usize
    }

    fn send(&mut self, q: &mut VecDeque<Tx>) -> Result<usize, DriverError> {
        let taken = q.len();
        while let Some(Tx { to, frame }) = q.pop_front() {
            let (region, frame) = if self.regions[0].owns(&frame) {
                (0, frame)
            } else if self.regions[1].owns(&frame) {
                (1, frame)
            } else {
                // Not in registered memory: one copy into the data region.
                let copy = frame
                    .contiguous()
                    .and_then(|b| self.regions[0].alloc().map(|m| (m, b)))
                    .and_then(|(mut m, b)| {
                        m.reserve(b.len())
                            .ok()
                            .map(|d| d.copy_from_slice(b))
                            .map(|_| m)
                    });
                let Some(copy) = copy else {
                    self.stats.tx_full += 1;
                    continue;
                };
                self.stats.tx_copied += 1;
                (0, copy)
            };
            self.publish(to, region, &frame);
        }
        self.ring_bells();
        Ok(taken)
    }

    fn send_ref(
        &mut self,
        to: To,
        frame: &Msg,
        q: &mut VecDeque<Tx>,
    ) -> Result<usize, DriverError> {
        let region = if !q.is_empty() {
            None
        } else if self.regions[0].owns(frame) {
            Some(0)
        } else if self.regions[1].owns(frame) {
            Some(1)
        } else {
            None
        };
        // Not first in line, or not in our regions (a copy is needed).
        let Some(region) = region else {
            return share_and_send(self, to, frame, q);
        };
        self.publish(to, region, frame);
        self.ring_bells();
        Ok(1)
    }

    fn recv(&mut self, out: &mut Vec<Msg>, max: usize) -> Result<usize, DriverError> {
        let mut n = 0;
        while n < max {
            let Some(rec) = self.rx.pop() else {
                break;
            };
            let Desc {
                sender: sid,
                region,
                slot,
                off,
                len,
            } = Desc::from_record(rec);
            let region = region as usize;
            let mut p = self.peer_by_id(sid);
            if p.is_none() {
                // A peer that came up since we last looked, or a process
                // this endpoint never heard of (a joiner).
                self.check_peers();
                p = self.peer_by_id(sid).or_else(|| self.discover(sid));
            }
            let m = p
                .and_then(|p| self.peers[p].conn.as_ref())
                .and_then(|c| c.regions.get(region))
                .and_then(|pool| pool.adopt(slot, off, len));
            match m {
                Some(m) => {
                    self.stats.rx_frames += 1;
                    self.stats.rx_bytes += len as u64;
                    out.push(m);
                    n += 1;
                }
                None => self.stats.rx_bad += 1,
            }
        }
        // Returns when idle (a frame's delivery does not wait for them),
        // and every few calls under constant load.
        self.recv_calls = self.recv_calls.wrapping_add(1);
        if n == 0 || self.recv_calls % 8 == 0 {
            self.drain_returns();
        }
        Ok(n)
    }

    fn park(&mut self, timeout: Duration) -> Result<(), DriverError> {
        let h = self.me.header();
        let v = h.bell.load(Ordering::SeqCst);
        h.sleeping.store(1, Ordering::SeqCst);
        // SeqCst pairs with the sender's fence before it reads `sleeping`:
        // either it sees us sleeping and rings, or we see its record here.
        std::sync::atomic::fence(Ordering::SeqCst);
        if !self.rx.ready() && self.ret.is_empty() {
            futex_wait(&h.bell, v, timeout);
        }
        h.sleeping.store(0, Ordering::SeqCst);
        Ok(())
    }

    fn waker(&self) -> Arc<dyn Waker> {
        Arc::new(ShmWaker(self.me.clone()))
    }

    fn maintain(&mut self) -> Result<(), DriverError> {
        self.drain_returns();
        if self.last_check.elapsed() >= LIVENESS_EVERY {
            self.last_check = Instant::now();
            self.check_peers();
            self.unwedge();
        }
        Ok(())
    }

    fn stats(&self) -> DriverStats {
        self.stats
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "shm id {:x}: rx ring {} waiting (stalled {}), returns {} waiting; peers:",
            self.id,
            self.rx.len(),
            self.rx.stalled(),
            self.ret.len()
        );
        for p in &self.peers {
            match &p.conn {
                Some(c) => s.push_str(&format!(
                    " {} (id {:x}, inode {}, its rx ring {} waiting, lent {}+{})",
                    p.name,
                    c.id,
                    c.ino,
                    c.rx.len(),
                    c.lent[0].iter().sum::<u32>(),
                    c.lent[1].iter().sum::<u32>()
                )),
                None => s.push_str(&format!(" {} (not connected)", p.name)),
            }
        }
        s
    }
}

#[cfg(test)]
mod tests;
