//! `udp`: plain non-blocking UDP sockets with `sendmmsg` / `recvmmsg`.
//! The portable baseline, and the fallback where io_uring is missing.
//!
//! Frames are sent from registered buffers (the kernel copies them once
//! into the socket) and received straight into slots of the receive pool.
//! A multicast to the group is one datagram per peer. Datagrams from
//! addresses that are not peers, and truncated datagrams, are dropped and
//! counted. When the socket buffer is full the frames not taken stay
//! queued for the next call.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use crate::driver::{Driver, DriverError, DriverStats, PeerId, To, Tx, Waker};
use crate::pool::{Msg, Pool, PoolConfig};

/// Datagrams per system call.
pub const BATCH: usize = 64;

/// Configuration of a UDP endpoint.
#[derive(Clone, Debug)]
pub struct UdpConfig {
    /// Address to bind.
    pub bind: SocketAddr,
    /// Send buffers (application and layer data).
    pub data: PoolConfig,
    /// The layers' control messages.
    pub ctl: PoolConfig,
    /// Receive buffers.
    pub rx: PoolConfig,
    /// Socket buffer sizes, bytes.
    pub sockbuf: usize,
}

impl UdpConfig {
    /// Defaults for an endpoint bound to `bind`: 2 KiB slots (frames up to
    /// one Ethernet-jumbo-free datagram of 2 KiB).
    pub fn new(bind: SocketAddr) -> UdpConfig {
        let slot = PoolConfig {
            slots: 16384,
            slot_size: 2048,
            headroom: 128,
            tailroom: 32,
        };
        UdpConfig {
            bind,
            data: slot,
            ctl: PoolConfig {
                slots: 2048,
                ..slot
            },
            rx: PoolConfig {
                slots: 8192,
                ..slot
            },
            sockbuf: 4 << 20,
        }
    }
}

pub(crate) fn sockaddr(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

pub(crate) fn from_sockaddr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(sin6.sin6_port))))
        }
        _ => None,
    }
}

pub(crate) fn set_sockbuf(fd: RawFd, bytes: usize) {
    let v = bytes as libc::c_int;
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: setsockopt reads one c_int from a live local.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &v as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Wakes a parked UDP or io_uring driver through an eventfd.
pub(crate) struct EventFdWaker(pub(crate) Arc<OwnedFd>);

impl Waker for EventFdWaker {
    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local to an eventfd we own.
        unsafe {
            libc::write(
                self.0.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            );
        }
    }
}

pub(crate) fn eventfd() -> Result<Arc<OwnedFd>, DriverError> {
    // SAFETY: plain syscall; the fd is checked and then owned.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error().into());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }))
}

pub(crate) fn drain_eventfd(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live local from a non-blocking eventfd.
    unsafe {
        libc::read(fd, &mut v as *mut u64 as *mut libc::c_void, 8);
    }
}

/// The UDP driver.
pub struct UdpDriver {
    cfg: UdpConfig,
    sock: UdpSocket,
    local: SocketAddr,
    peers: UdpPeers,
    pools: [Pool; 3],
    /// Receive buffers taken from the pool and not yet used.
    spare: Vec<Msg>,
    wake: Arc<OwnedFd>,
    stats: DriverStats,
}

impl UdpDriver {
    /// Binds the socket.
    pub fn open(cfg: UdpConfig) -> Result<UdpDriver, DriverError> {
        let mk = |c: PoolConfig| Pool::new(c).map_err(|e| DriverError::Config(e.to_string()));
        let pools = [mk(cfg.data)?, mk(cfg.ctl)?, mk(cfg.rx)?];
        let sock = UdpSocket::bind(cfg.bind)?;
        sock.set_nonblocking(true)?;
        set_sockbuf(sock.as_raw_fd(), cfg.sockbuf);
        let local = sock.local_addr()?;
        Ok(UdpDriver {
            cfg,
            sock,
            local,
            peers: UdpPeers::new(local),
            pools,
            spare: Vec::with_capacity(BATCH),
            wake: eventfd()?,
            stats: DriverStats::default(),
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.local
    }
}

/// The peers of a UDP endpoint (plain or io_uring), with each address
/// also in the kernel's form, built once and boxed so that its address
/// stays put while a submitted send may still read it.
pub(crate) struct UdpPeers {
    local: SocketAddr,
    addrs: Vec<SocketAddr>,
    #[allow(
        clippy::vec_box,
        reason = "io_uring sends in flight point at these; they must not move when the vector grows"
    )]
    raw: Vec<Box<(libc::sockaddr_storage, libc::socklen_t)>>,
}

impl UdpPeers {
    /// Peers known.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub(crate) fn new(local: SocketAddr) -> UdpPeers {
        UdpPeers {
            local,
            addrs: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// Adds a peer ("ip:port"); the same address twice gets the same id.
    pub(crate) fn add(&mut self, addr: &str) -> Result<PeerId, DriverError> {
        use std::net::ToSocketAddrs;
        let a = addr
            .to_socket_addrs()
            .map_err(|e| DriverError::BadAddress(format!("{addr}: {e}")))?
            .next()
            .ok_or_else(|| DriverError::BadAddress(format!("{addr}: no address")))?;
        if a == self.local {
            return Err(DriverError::BadAddress(format!("{addr} is this endpoint")));
        }
        if let Some(i) = self.addrs.iter().position(|p| *p == a) {
            return Ok(i as PeerId);
        }
        self.addrs.push(a);
        self.raw.push(Box::new(sockaddr(&a)));
        Ok(self.addrs.len() as PeerId - 1)
    }

    pub(crate) fn contains(&self, a: &SocketAddr) -> bool {
        self.addrs.contains(a)
    }

    /// Peer ids a frame for `to` goes to.
    pub(crate) fn targets(&self, to: To) -> std::ops::Range<usize> {
        match to {
            To::All => 0..self.addrs.len(),
            To::Peer(p) => {
                let p = p as usize;
                p.min(self.addrs.len())..(p + 1).min(self.addrs.len())
            }
        }
    }

    /// The kernel form of peer `i`'s address (lives as long as `self`).
    pub(crate) fn raw(&self, i: usize) -> &(libc::sockaddr_storage, libc::socklen_t) {
        &self.raw[i]
    }
}

impl Driver for UdpDriver {
    fn kind(&self) -> &'static str {
        "udp"
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
        (self.cfg.rx.slot_size as usize).min(65_507)
    }

    fn send(&mut self, q: &mut VecDeque<Tx>) -> Result<usize, DriverError> {
        let mut taken = 0;
        // Destinations of the frame at the front already sent (a multicast
        // interrupted by a full socket buffer resumes where it stopped).
        let mut done_dsts = 0usize;
        while !q.is_empty() {
            // SAFETY: zeroed mmsghdr / iovec / sockaddr_storage are valid.
            let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { MaybeUninit::zeroed().assume_init() };
            let mut iovs: [libc::iovec; BATCH] = unsafe { MaybeUninit::zeroed().assume_init() };
            let mut n = 0usize;
            let mut qi = 0usize;
            let mut skip = done_dsts;
            'fill: while qi < q.len() {
                let tx = &q[qi];
                let Some(bytes) = tx.frame.contiguous() else {
                    qi += 1;
                    continue;
                };
                for d in self.peers.targets(tx.to).skip(skip) {
                    if n == BATCH {
                        break 'fill;
                    }
                    let (ss, len) = self.peers.raw(d);
                    iovs[n] = libc::iovec {
                        iov_base: bytes.as_ptr() as *mut libc::c_void,
                        iov_len: bytes.len(),
                    };
                    // The kernel only reads the name on send.
                    hdrs[n].msg_hdr.msg_name = ss as *const _ as *mut libc::c_void;
                    hdrs[n].msg_hdr.msg_namelen = *len;
                    hdrs[n].msg_hdr.msg_iov = &mut iovs[n];
                    hdrs[n].msg_hdr.msg_iovlen = 1;
                    n += 1;
                }
                skip = 0;
                qi += 1;
            }
            if n == 0 {
                // Nothing sendable (no peers, or empty destinations).
                taken += q.len();
                q.clear();
                break;
            }
            // SAFETY: hdrs[..n] point at live iovecs, addresses and frame
            // bytes (the frames stay in `q` until after the call).
            let sent = unsafe {
                libc::sendmmsg(
                    self.sock.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    n as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            let sent = if sent < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::ENOBUFS) => 0,
                    // A peer's port is closed (ICMP): that datagram is lost.
                    Some(libc::ECONNREFUSED)
                    | Some(libc::EHOSTUNREACH)
                    | Some(libc::ENETUNREACH) => {
                        self.stats.tx_full += 1;
                        1
                    }
                    _ => return Err(e.into()),
                }
            } else {
                sent as usize
            };
            for h in hdrs.iter().take(sent) {
                self.stats.tx_frames += 1;
                // SAFETY: msg_iov points at iovs set up above.
                self.stats.tx_bytes += unsafe { (*h.msg_hdr.msg_iov).iov_len } as u64;
            }
            // Retire the frames whose every destination went out.
            let mut left = sent;
            while let Some(tx) = q.front() {
                let total = self.peers.targets(tx.to).len();
                let remaining = total.saturating_sub(done_dsts);
                if left >= remaining {
                    left -= remaining;
                    done_dsts = 0;
                    q.pop_front();
                    taken += 1;
                } else {
                    done_dsts += left;
                    break;
                }
            }
            if sent < n {
                break;
            }
        }
        Ok(taken)
    }

    fn recv(&mut self, out: &mut Vec<Msg>, max: usize) -> Result<usize, DriverError> {
        let want = max.min(BATCH);
        while self.spare.len() < want {
            match self.pools[2].alloc() {
                Some(m) => self.spare.push(m),
                None => break,
            }
        }
        let n = self.spare.len().min(want);
        if n == 0 {
            self.stats.rx_no_buffer += 1;
            return Ok(0);
        }
        // SAFETY: zeroed headers are valid.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { MaybeUninit::zeroed().assume_init() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { MaybeUninit::zeroed().assume_init() };
        let mut addrs: [libc::sockaddr_storage; BATCH] =
            unsafe { MaybeUninit::zeroed().assume_init() };
        for i in 0..n {
            let buf = self.spare[i]
                .slot_mut()
                .map_err(|e| DriverError::Config(e.to_string()))?;
            iovs[i] = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            hdrs[i].msg_hdr.msg_name = &mut addrs[i] as *mut _ as *mut libc::c_void;
            hdrs[i].msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: each header points at a whole slot we own alone
        // (slot_mut checked) and at live locals; the kernel writes at most
        // iov_len bytes into each.
        let got = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::ECONNREFUSED) => Ok(0),
                _ => Err(e.into()),
            };
        }
        let got = got as usize;
        let mut delivered = 0;
        // Take the used buffers off the front of `spare`, in order.
        let used: Vec<Msg> = self.spare.drain(..got).collect();
        for (i, mut m) in used.into_iter().enumerate() {
            let h = &hdrs[i];
            let from = from_sockaddr(&addrs[i]);
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0
                || !from.is_some_and(|a| self.peers.contains(&a))
            {
                self.stats.rx_bad += 1;
                continue;
            }
            if m.set_frame(h.msg_len as usize).is_err() {
                self.stats.rx_bad += 1;
                continue;
            }
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += h.msg_len as u64;
            out.push(m);
            delivered += 1;
        }
        Ok(delivered)
    }

    fn park(&mut self, timeout: Duration) -> Result<(), DriverError> {
        let mut fds = [
            libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: poll reads and writes the two live pollfds.
        unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                2,
                ms.max(if timeout.is_zero() { 0 } else { 1 }),
            )
        };
        if fds[1].revents & libc::POLLIN != 0 {
            drain_eventfd(self.wake.as_raw_fd());
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

    struct Udp;

    impl Factory for Udp {
        type D = UdpDriver;
        const LOSSLESS: bool = false;
        fn make(&self, n: usize) -> Vec<UdpDriver> {
            let mut ds: Vec<UdpDriver> = (0..n)
                .map(|_| {
                    let mut c = UdpConfig::new("127.0.0.1:0".parse().unwrap());
                    c.data.slots = 1024;
                    c.rx.slots = 1024;
                    UdpDriver::open(c).unwrap()
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

    #[test]
    fn conformance() {
        conformance::run_all(&Udp);
    }

    #[test]
    fn datagrams_from_strangers_are_dropped() {
        let mut ds = Udp.make(2);
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        stranger.send_to(b"hello", ds[1].addr()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let mut out = Vec::new();
        ds[1].recv(&mut out, 8).unwrap();
        assert!(out.is_empty());
        assert_eq!(ds[1].stats().rx_bad, 1);
        assert!(matches!(
            ds[0].add_peer("not an address"),
            Err(DriverError::BadAddress(_))
        ));
    }
}
