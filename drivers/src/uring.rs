//! `uring`: UDP through io_uring.
//!
//! - Receive: one multishot `RECVMSG` on the socket draws buffers from a
//!   provided-buffer ring whose buffers are slots of the receive pool
//!   (buffer id = slot index); the datagram lands in the slot behind the
//!   kernel's `io_uring_recvmsg_out` header and the sender's address, and
//!   becomes a `Msg` over exactly the payload. The ring is topped up from
//!   the pool as the application drops frames.
//! - Send: one `SEND` per datagram with the destination address, batched
//!   into one `io_uring_enter`; frames of at least `zc_min` bytes go as
//!   zero-copy `SEND_ZC` from the registered data and control regions.
//! - The ring is made with `SINGLE_ISSUER` and `DEFER_TASKRUN` where the
//!   kernel has them (and starts disabled, so the thread that first uses
//!   it becomes its issuer); without them it still works.
//! - A wake-up is an eventfd watched by a multishot poll on the ring.
//!
//! Where io_uring is unavailable (old kernel, `io_uring_disabled` sysctl,
//! seccomp) `open` fails with `DriverError::Unsupported` saying so.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use io_uring::types::{BufRingEntry, Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use crate::driver::{Driver, DriverError, DriverStats, PeerId, Tx, Waker};
use crate::pool::{Msg, Pool, PoolConfig};
use crate::udp::{drain_eventfd, eventfd, from_sockaddr, set_sockbuf, EventFdWaker, UdpPeers};

/// Configuration of an io_uring UDP endpoint.
#[derive(Clone, Debug)]
pub struct UringConfig {
    /// Address to bind.
    pub bind: SocketAddr,
    /// Send buffers.
    pub data: PoolConfig,
    /// The layers' control messages.
    pub ctl: PoolConfig,
    /// Receive buffers (at most 32768 slots; each holds the kernel's
    /// receive header, the sender address and the datagram).
    pub rx: PoolConfig,
    /// Submission queue entries.
    pub sq_entries: u32,
    /// Frames at least this long go as zero-copy sends.
    pub zc_min: usize,
    /// Socket buffer sizes, bytes.
    pub sockbuf: usize,
}

impl UringConfig {
    /// Defaults for an endpoint bound to `bind`.
    pub fn new(bind: SocketAddr) -> UringConfig {
        let slot = PoolConfig {
            slots: 16384,
            slot_size: 2048,
            headroom: 128,
            tailroom: 32,
        };
        UringConfig {
            bind,
            data: slot,
            ctl: PoolConfig {
                slots: 2048,
                ..slot
            },
            rx: PoolConfig {
                slots: 4096,
                slot_size: 2048 + RX_HEADROOM as u32,
                ..slot
            },
            sq_entries: 512,
            zc_min: 16 * 1024,
            sockbuf: 4 << 20,
        }
    }
}

/// Bytes in front of a received datagram: the kernel's recvmsg_out
/// header and the (fixed-size) source address field.
const NAME_LEN: usize = std::mem::size_of::<libc::sockaddr_storage>();
const RX_HEADROOM: usize = 16 + NAME_LEN;
const BGID: u16 = 7;
const UD_RECV: u64 = u64::MAX;
const UD_WAKE: u64 = u64::MAX - 1;

/// The provided-buffer ring shared with the kernel.
struct BufRing {
    base: *mut BufRingEntry,
    bytes: usize,
    entries: u16,
    tail: u16,
}

impl BufRing {
    fn new(entries: u16) -> io::Result<BufRing> {
        let bytes = entries as usize * std::mem::size_of::<BufRingEntry>();
        // SAFETY: anonymous private mapping, checked below; page aligned as
        // the kernel requires.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(BufRing {
            base: p as *mut BufRingEntry,
            bytes,
            entries,
            tail: 0,
        })
    }

    /// Queues buffer `bid` at `addr` (not visible until `commit`).
    fn add(&mut self, addr: *mut u8, len: u32, bid: u16) {
        let idx = (self.tail & (self.entries - 1)) as usize;
        // SAFETY: idx < entries; the mapping holds `entries` entries and
        // the kernel only reads entries below the published tail.
        let e = unsafe { &mut *self.base.add(idx) };
        e.set_addr(addr as u64);
        e.set_len(len);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn commit(&self) {
        // SAFETY: the tail field lives in entry 0 of our live mapping;
        // Release makes the entries written above visible to the kernel
        // before the new tail.
        unsafe {
            let t = BufRingEntry::tail(self.base) as *const AtomicU16;
            (*t).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping, after the ring (which the
        // kernel reads) was dropped: fields drop in declaration order and
        // UringDriver declares `ring` before `bufring`.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.bytes) };
    }
}

/// A send the kernel may still read: the frame stays alive here until its
/// completion (the destination address lives in the peer table).
struct InFlight {
    _frame: Msg,
    zc: bool,
}

/// The io_uring UDP driver.
pub struct UringDriver {
    // Field order matters for Drop: the ring goes first, then the memory
    // it points at.
    ring: IoUring,
    bufring: BufRing,
    cfg: UringConfig,
    sock: UdpSocket,
    local: SocketAddr,
    peers: UdpPeers,
    pools: [Pool; 3],
    /// Receive slots lent to the kernel, by buffer id.
    lent: Vec<Option<Msg>>,
    /// Header the multishot receive reads its name / control sizes from.
    rx_hdr: Box<libc::msghdr>,
    inflight: Vec<Option<InFlight>>,
    free_ids: Vec<u32>,
    wake: Arc<OwnedFd>,
    enabled: bool,
    recv_armed: bool,
    pending_sqes: u32,
    /// Whether the kernel took SINGLE_ISSUER | DEFER_TASKRUN.
    pub deferred: bool,
    stats: DriverStats,
}

// SAFETY: the raw pointers (buffer ring, msghdr) point at memory this
// struct owns; the driver is moved between threads only as a whole and
// used by one thread at a time (`&mut self`).
unsafe impl Send for UringDriver {}

fn unsupported(e: io::Error) -> DriverError {
    DriverError::Unsupported(format!(
        "io_uring is not available here ({e}); use the udp driver instead"
    ))
}

impl UringDriver {
    /// Makes the ring, binds the socket, registers buffers.
    pub fn open(cfg: UringConfig) -> Result<UringDriver, DriverError> {
        if cfg.rx.slots > 32768 {
            return Err(DriverError::Config(
                "uring receive pool: at most 32768 slots".into(),
            ));
        }
        if (cfg.rx.slot_size as usize) < RX_HEADROOM + 64 {
            return Err(DriverError::Config("uring receive slots too small".into()));
        }
        let entries = cfg.sq_entries.next_power_of_two().clamp(8, 4096);
        let (ring, deferred) = match IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_r_disabled()
            .build(entries)
        {
            Ok(r) => (r, true),
            Err(_) => (
                IoUring::builder()
                    .setup_r_disabled()
                    .build(entries)
                    .or_else(|_| IoUring::builder().build(entries))
                    .map_err(unsupported)?,
                false,
            ),
        };
        let mk = |c: PoolConfig| Pool::new(c).map_err(|e| DriverError::Config(e.to_string()));
        let pools = [mk(cfg.data)?, mk(cfg.ctl)?, mk(cfg.rx)?];
        // Fixed buffers: the data and control regions, for SEND_ZC.
        let iovs: Vec<libc::iovec> = pools[..2]
            .iter()
            .map(|p| {
                let (ptr, len) = p.region();
                libc::iovec {
                    iov_base: ptr as *mut libc::c_void,
                    iov_len: len,
                }
            })
            .collect();
        // SAFETY: the regions stay mapped as long as `pools`, which lives
        // as long as the ring (dropped after it).
        unsafe { ring.submitter().register_buffers(&iovs) }.map_err(unsupported)?;
        let ring_entries = (cfg.rx.slots.min(32768) as u16)
            .next_power_of_two()
            .min(32768);
        let bufring = BufRing::new(ring_entries)?;
        // SAFETY: the buffer ring memory is page aligned, sized for
        // `ring_entries`, and outlives the ring (field order).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufring.base as u64,
                ring_entries,
                BGID,
                0,
            )
        }
        .map_err(unsupported)?;
        let sock = UdpSocket::bind(cfg.bind)?;
        sock.set_nonblocking(true)?;
        set_sockbuf(sock.as_raw_fd(), cfg.sockbuf);
        let local = sock.local_addr()?;
        // SAFETY: a zeroed msghdr is valid; only the name length is used by
        // multishot receive (no control data).
        let mut rx_hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        rx_hdr.msg_namelen = NAME_LEN as libc::socklen_t;
        let mut d = UringDriver {
            ring,
            bufring,
            lent: (0..cfg.rx.slots).map(|_| None).collect(),
            inflight: Vec::new(),
            free_ids: Vec::new(),
            cfg,
            sock,
            local,
            peers: UdpPeers::new(local),
            pools,
            rx_hdr,
            wake: eventfd()?,
            enabled: false,
            recv_armed: false,
            pending_sqes: 0,
            deferred,
            stats: DriverStats::default(),
        };
        d.refill();
        Ok(d)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.local
    }

    /// Lends free receive slots to the kernel.
    fn refill(&mut self) {
        let mut added = false;
        let len = self.cfg.rx.slot_size;
        while let Some(mut m) = self.pools[2].alloc() {
            let bid = m.slot() as usize;
            let Ok(buf) = m.slot_mut() else { break };
            let ptr = buf.as_mut_ptr();
            self.bufring.add(ptr, len, bid as u16);
            self.lent[bid] = Some(m);
            added = true;
        }
        if added {
            self.bufring.commit();
        }
    }

    fn push_sqe(&mut self, e: squeue::Entry) -> bool {
        // SAFETY: every entry refers to memory that stays valid until its
        // completion: frames and addresses in `inflight`, the socket, the
        // msghdr box and the eventfd, all owned by self.
        let ok = unsafe { self.ring.submission().push(&e).is_ok() };
        if ok {
            self.pending_sqes += 1;
        }
        ok
    }

    fn enable(&mut self) -> Result<(), DriverError> {
        if self.enabled {
            return Ok(());
        }
        // The first thread to use the ring becomes its single issuer.
        match self.ring.submitter().register_enable_rings() {
            Ok(()) => {}
            // EINVAL: the ring was not made disabled (fallback build).
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e.into()),
        }
        self.enabled = true;
        let poll = opcode::PollAdd::new(Fd(self.wake.as_raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(UD_WAKE);
        self.push_sqe(poll);
        Ok(())
    }

    fn arm_recv(&mut self) {
        if self.recv_armed {
            return;
        }
        let e = opcode::RecvMsgMulti::new(
            Fd(self.sock.as_raw_fd()),
            &*self.rx_hdr as *const libc::msghdr,
            BGID,
        )
        .build()
        .user_data(UD_RECV);
        if self.push_sqe(e) {
            self.recv_armed = true;
        }
    }

    /// Submits queued entries and runs completions: `wait` blocks for at
    /// least one completion, up to `timeout`.
    fn enter(&mut self, wait: Option<Duration>) -> Result<(), DriverError> {
        let res = match wait {
            Some(t) => {
                let ts = Timespec::new().sec(t.as_secs()).nsec(t.subsec_nanos());
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            // SAFETY: GETEVENTS with min_complete 0 and no argument: submit
            // and run deferred completions without blocking.
            None => unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(self.pending_sqes, 0, 1, None)
            },
        };
        self.pending_sqes = 0;
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Takes completions; received frames go to `out`.
    fn reap(&mut self, out: &mut Vec<Msg>, max: usize) -> usize {
        let mut got = 0;
        let mut cqes: [(u64, i32, u32); 64] = [(0, 0, 0); 64];
        loop {
            let mut n = 0;
            for c in self.ring.completion() {
                cqes[n] = (c.user_data(), c.result(), c.flags());
                n += 1;
                if n == cqes.len() {
                    break;
                }
            }
            if n == 0 {
                break;
            }
            for &(ud, res, flags) in &cqes[..n] {
                match ud {
                    UD_RECV => {
                        if !cqueue::more(flags) {
                            self.recv_armed = false;
                        }
                        let Some(bid) = cqueue::buffer_select(flags) else {
                            // No buffer (pool empty) or an error: re-armed below.
                            if res < 0 && res != -libc::ENOBUFS {
                                self.stats.rx_bad += 1;
                            }
                            if res == -libc::ENOBUFS {
                                self.stats.rx_no_buffer += 1;
                            }
                            continue;
                        };
                        let Some(m) = self.lent.get_mut(bid as usize).and_then(Option::take) else {
                            self.stats.rx_bad += 1;
                            continue;
                        };
                        if res < 0 {
                            continue;
                        }
                        if let Some(m) = self.frame_of(m, res as usize) {
                            out.push(m);
                            got += 1;
                        }
                    }
                    UD_WAKE => {
                        drain_eventfd(self.wake.as_raw_fd());
                        if !cqueue::more(flags) {
                            self.enabled = false;
                            let _ = self.enable();
                        }
                    }
                    id => {
                        let i = id as usize;
                        let zc = self
                            .inflight
                            .get(i)
                            .and_then(|f| f.as_ref())
                            .is_some_and(|f| f.zc);
                        if res < 0 {
                            self.stats.tx_full += 1;
                        }
                        // A zero-copy send completes twice: the result (with
                        // MORE) and then the notification that the buffer
                        // is free again.
                        if zc && cqueue::more(flags) {
                            continue;
                        }
                        if let Some(slot) = self.inflight.get_mut(i) {
                            if slot.take().is_some() {
                                self.free_ids.push(i as u32);
                            }
                        }
                    }
                }
            }
            if got >= max {
                break;
            }
        }
        got
    }

    /// The datagram inside a received slot, checked.
    fn frame_of(&mut self, mut m: Msg, len: usize) -> Option<Msg> {
        let slot = m.slot_mut().ok()?;
        let Ok(parsed) =
            io_uring::types::RecvMsgOut::parse(&slot[..len.min(slot.len())], &self.rx_hdr)
        else {
            self.stats.rx_bad += 1;
            return None;
        };
        let mut ss: libc::sockaddr_storage =
            // SAFETY: all-zero is a valid sockaddr_storage.
            unsafe { std::mem::zeroed() };
        let name = parsed.name_data();
        // SAFETY: copies at most sizeof(sockaddr_storage) bytes into it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                name.as_ptr(),
                &mut ss as *mut _ as *mut u8,
                name.len().min(NAME_LEN),
            )
        };
        let from = from_sockaddr(&ss);
        let payload = parsed.payload_data().len();
        if parsed.is_payload_truncated() || !from.is_some_and(|a| self.peers.contains(&a)) {
            self.stats.rx_bad += 1;
            return None;
        }
        m.set_window(RX_HEADROOM, RX_HEADROOM + payload).ok()?;
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += payload as u64;
        Some(m)
    }
}

impl Driver for UringDriver {
    fn kind(&self) -> &'static str {
        "uring"
    }

    fn local_addr(&self) -> String {
        self.local.to_string()
    }

    fn peer_count(&self) -> usize {
        self.peers.len()
    }

    fn add_peer(&mut self, addr: &str) -> Result<PeerId, DriverError> {
        self.peers.add(addr)
    }

    fn pool(&self) -> &Pool {
        &self.pools[0]
    }

    fn ctl_pool(&self) -> &Pool {
        &self.pools[1]
    }

    fn max_frame(&self) -> usize {
        (self.cfg.rx.slot_size as usize - RX_HEADROOM).min(65_507)
    }

    fn send(&mut self, q: &mut VecDeque<Tx>) -> Result<usize, DriverError> {
        self.enable()?;
        let mut taken = 0;
        while let Some(tx) = q.front() {
            let dsts = self.peers.targets(tx.to);
            let room = {
                let sq = self.ring.submission();
                sq.capacity() - sq.len()
            };
            if dsts.len() > room {
                if self.pending_sqes == 0 {
                    break;
                }
                self.enter(None)?;
                continue;
            }
            let Some(tx) = q.pop_front() else { break };
            taken += 1;
            if tx.frame.nsegs() != 1 {
                self.stats.tx_full += 1;
                continue;
            }
            let region = if self.pools[0].owns(&tx.frame) {
                Some(0u16)
            } else if self.pools[1].owns(&tx.frame) {
                Some(1u16)
            } else {
                None
            };
            for d in dsts {
                let frame = tx.frame.share();
                let (ss, sslen) = self.peers.raw(d);
                let bytes = frame.contiguous().unwrap_or(&[]);
                let (ptr, len) = (bytes.as_ptr(), bytes.len() as u32);
                let zc = region.is_some() && len as usize >= self.cfg.zc_min;
                let id = match self.free_ids.pop() {
                    Some(i) => i,
                    None => {
                        self.inflight.push(None);
                        self.inflight.len() as u32 - 1
                    }
                };
                // The peer table keeps the address (boxed) for the driver's
                // lifetime, past the send's completion.
                let sa = ss as *const libc::sockaddr_storage as *const libc::sockaddr;
                let e = if zc {
                    opcode::SendZc::new(Fd(self.sock.as_raw_fd()), ptr, len)
                        .buf_index(region)
                        .dest_addr(sa)
                        .dest_addr_len(*sslen)
                        .build()
                } else {
                    opcode::Send::new(Fd(self.sock.as_raw_fd()), ptr, len)
                        .dest_addr(sa)
                        .dest_addr_len(*sslen)
                        .build()
                }
                .user_data(id as u64);
                self.inflight[id as usize] = Some(InFlight { _frame: frame, zc });
                if self.push_sqe(e) {
                    self.stats.tx_frames += 1;
                    self.stats.tx_bytes += len as u64;
                } else {
                    self.inflight[id as usize] = None;
                    self.free_ids.push(id);
                    self.stats.tx_full += 1;
                }
            }
        }
        if self.pending_sqes > 0 {
            self.enter(None)?;
        }
        Ok(taken)
    }

    fn recv(&mut self, out: &mut Vec<Msg>, max: usize) -> Result<usize, DriverError> {
        self.enable()?;
        self.refill();
        self.arm_recv();
        self.enter(None)?;
        let n = self.reap(out, max);
        if !self.recv_armed {
            self.refill();
            self.arm_recv();
        }
        Ok(n)
    }

    fn park(&mut self, timeout: Duration) -> Result<(), DriverError> {
        self.enable()?;
        self.refill();
        self.arm_recv();
        if self.ring.completion().is_empty() {
            self.enter(Some(timeout))?;
        }
        Ok(())
    }

    fn waker(&self) -> Arc<dyn Waker> {
        Arc::new(EventFdWaker(self.wake.clone()))
    }

    fn stats(&self) -> DriverStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{self, Factory};
    use crate::driver::To;

    struct Uring;

    impl Factory for Uring {
        const LOSSLESS: bool = false;
        type D = UringDriver;
        fn make(&self, n: usize) -> Vec<UringDriver> {
            let mut ds: Vec<UringDriver> = (0..n)
                .map(|_| {
                    let mut c = UringConfig::new("127.0.0.1:0".parse().unwrap());
                    c.data.slots = 1024;
                    c.rx.slots = 1024;
                    UringDriver::open(c).unwrap()
                })
                .collect();
            let addrs: Vec<String> = ds.iter().map(|d| d.local_addr()).collect();
            for (i, d) in ds.iter_mut().enumerate() {
                for (j, a) in addrs.iter().enumerate() {
                    if i != j {
                        d.add_peer(a).unwrap();
                    }
                }
            }
            ds
        }
    }

    fn available() -> bool {
        match UringDriver::open(UringConfig::new("127.0.0.1:0".parse().unwrap())) {
            Ok(_) => true,
            Err(e) => {
                println!("skipping: {e}");
                false
            }
        }
    }

    #[test]
    fn conformance() {
        if available() {
            conformance::run_all(&Uring);
        }
    }

    #[test]
    fn large_frames_go_zero_copy_and_arrive() {
        if !available() {
            return;
        }
        let mk = || {
            let mut c = UringConfig::new("127.0.0.1:0".parse().unwrap());
            c.data = PoolConfig {
                slots: 64,
                slot_size: 32768,
                headroom: 128,
                tailroom: 32,
            };
            c.rx = PoolConfig {
                slots: 64,
                slot_size: 32768 + RX_HEADROOM as u32,
                ..c.data
            };
            c.zc_min = 8192;
            UringDriver::open(c).unwrap()
        };
        let (mut a, mut b) = (mk(), mk());
        a.add_peer(&b.local_addr()).unwrap();
        b.add_peer(&a.local_addr()).unwrap();
        let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut q = VecDeque::from([Tx {
            to: To::All,
            frame: a.pool().alloc_copy(&payload).unwrap(),
        }]);
        a.send(&mut q).unwrap();
        let mut out = Vec::new();
        let t0 = std::time::Instant::now();
        while out.is_empty() && t0.elapsed() < Duration::from_secs(5) {
            b.park(Duration::from_millis(10)).unwrap();
            b.recv(&mut out, 4).unwrap();
            a.recv(&mut Vec::new(), 4).unwrap();
        }
        assert_eq!(out[0].to_vec(), payload);
        // The notification completion frees the sent buffer.
        let t0 = std::time::Instant::now();
        while a.pool().stats().in_use > 0 && t0.elapsed() < Duration::from_secs(5) {
            a.park(Duration::from_millis(10)).unwrap();
            a.recv(&mut Vec::new(), 4).unwrap();
        }
        assert_eq!(a.pool().stats().in_use, 0);
    }
}
