//! The endpoint file: `<dir>/<name>.tutti`, one per endpoint.
//!
//! ```text
//! 0        control header (one page): identity, owner liveness, layout,
//!          doorbell
//! rx_off   receive ring: descriptors (sender id, region|slot|offset, len)
//!          that peers push
//! ret_off  return ring: (returner id, region|slot, count) of our buffers
//!          that peers are done with
//! data_off data region: slots the owner writes frames into
//! ctl_off  control region: slots for the layers' own messages
//! ```
//! Peers map the header and rings read-write and the regions read-only.
//! The file is built under a temporary name and renamed into place, so a
//! peer never sees a half-initialised endpoint. Every value a peer reads
//! from another endpoint's header is checked against the file's length
//! before use.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapMut, MmapOptions};

use super::ring::{ring_bytes, Ring};
use crate::driver::DriverError;
use crate::pool::PoolConfig;

/// "TUTTISHM".
pub const MAGIC: u64 = u64::from_le_bytes(*b"TUTTISHM");
/// Layout version.
pub const VERSION: u32 = 1;
const PAGE: u64 = 4096;

/// The control header. Only plain atomics: it lives in shared memory.
#[repr(C)]
pub struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub pid: AtomicU32,
    pub start_time: AtomicU64,
    pub id: AtomicU64,
    pub data_slots: AtomicU32,
    pub data_slot_size: AtomicU32,
    pub ctl_slots: AtomicU32,
    pub ctl_slot_size: AtomicU32,
    pub headroom: AtomicU32,
    pub tailroom: AtomicU32,
    pub rx_cap: AtomicU64,
    pub ret_cap: AtomicU64,
    pub rx_off: AtomicU64,
    pub ret_off: AtomicU64,
    pub data_off: AtomicU64,
    pub ctl_off: AtomicU64,
    pub file_len: AtomicU64,
    /// 1 while the owner is parked (senders then ring the bell).
    pub sleeping: AtomicU32,
    /// Futex word senders bump to wake the owner.
    pub bell: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<Header>() <= PAGE as usize);

/// Where everything is in an endpoint file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub data: PoolConfig,
    pub ctl: PoolConfig,
    pub rx_cap: u64,
    pub ret_cap: u64,
    pub rx_off: u64,
    pub ret_off: u64,
    pub data_off: u64,
    pub ctl_off: u64,
    pub len: u64,
}

fn page_up(x: u64) -> u64 {
    x.div_ceil(PAGE) * PAGE
}

impl Layout {
    /// Lays out an endpoint with these regions and a receive ring of
    /// `rx_cap` descriptors.
    pub fn new(data: PoolConfig, ctl: PoolConfig, rx_cap: u64) -> Result<Layout, DriverError> {
        for cfg in [&data, &ctl] {
            if let Some(why) = cfg.invalid() {
                return Err(DriverError::Config(why.into()));
            }
        }
        if !rx_cap.is_power_of_two() || !(16..=1 << 24).contains(&rx_cap) {
            return Err(DriverError::Config(
                "shm receive ring capacity must be a power of two in 16..=2^24".into(),
            ));
        }
        // Returns come at most once per lent slot per peer cycle; twice the
        // slot count leaves room, and overflow waits in the sender's queue.
        let ret_cap = ((data.slots as u64 + ctl.slots as u64) * 2).next_power_of_two();
        let rx_off = PAGE;
        let ret_off = page_up(rx_off + ring_bytes(rx_cap));
        let data_off = page_up(ret_off + ring_bytes(ret_cap));
        let ctl_off = page_up(data_off + data.slots as u64 * data.slot_size as u64);
        let len = page_up(ctl_off + ctl.slots as u64 * ctl.slot_size as u64);
        Ok(Layout {
            data,
            ctl,
            rx_cap,
            ret_cap,
            rx_off,
            ret_off,
            data_off,
            ctl_off,
            len,
        })
    }

    /// Reads and checks another endpoint's layout from its header against
    /// the real file length.
    pub fn read(h: &Header, file_len: u64) -> Result<Layout, DriverError> {
        let bad = |why: &str| Err(DriverError::Config(format!("peer endpoint file: {why}")));
        if h.magic.load(Ordering::Acquire) != MAGIC {
            return bad("not a tutti endpoint (bad magic)");
        }
        if h.version.load(Ordering::Relaxed) != VERSION {
            return bad("layout version differs");
        }
        let cfg = |slots: &AtomicU32, size: &AtomicU32| PoolConfig {
            slots: slots.load(Ordering::Relaxed),
            slot_size: size.load(Ordering::Relaxed),
            headroom: h.headroom.load(Ordering::Relaxed),
            tailroom: h.tailroom.load(Ordering::Relaxed),
        };
        let data = cfg(&h.data_slots, &h.data_slot_size);
        let ctl = cfg(&h.ctl_slots, &h.ctl_slot_size);
        let rx_cap = h.rx_cap.load(Ordering::Relaxed);
        let want = Layout::new(data, ctl, rx_cap)?;
        let got = (
            h.ret_cap.load(Ordering::Relaxed),
            h.rx_off.load(Ordering::Relaxed),
            h.ret_off.load(Ordering::Relaxed),
            h.data_off.load(Ordering::Relaxed),
            h.ctl_off.load(Ordering::Relaxed),
            h.file_len.load(Ordering::Relaxed),
        );
        if got
            != (
                want.ret_cap,
                want.rx_off,
                want.ret_off,
                want.data_off,
                want.ctl_off,
                want.len,
            )
        {
            return bad("layout fields inconsistent");
        }
        if file_len < want.len {
            return bad("file shorter than its layout");
        }
        Ok(want)
    }

    fn write(&self, h: &Header, id: u64) {
        h.version.store(VERSION, Ordering::Relaxed);
        h.pid.store(std::process::id(), Ordering::Relaxed);
        h.start_time.store(
            start_time(std::process::id()).unwrap_or(0),
            Ordering::Relaxed,
        );
        h.id.store(id, Ordering::Relaxed);
        h.data_slots.store(self.data.slots, Ordering::Relaxed);
        h.data_slot_size
            .store(self.data.slot_size, Ordering::Relaxed);
        h.ctl_slots.store(self.ctl.slots, Ordering::Relaxed);
        h.ctl_slot_size.store(self.ctl.slot_size, Ordering::Relaxed);
        h.headroom.store(self.data.headroom, Ordering::Relaxed);
        h.tailroom.store(self.data.tailroom, Ordering::Relaxed);
        h.rx_cap.store(self.rx_cap, Ordering::Relaxed);
        h.ret_cap.store(self.ret_cap, Ordering::Relaxed);
        h.rx_off.store(self.rx_off, Ordering::Relaxed);
        h.ret_off.store(self.ret_off, Ordering::Relaxed);
        h.data_off.store(self.data_off, Ordering::Relaxed);
        h.ctl_off.store(self.ctl_off, Ordering::Relaxed);
        h.file_len.store(self.len, Ordering::Relaxed);
        h.sleeping.store(0, Ordering::Relaxed);
        h.bell.store(0, Ordering::Relaxed);
        // Release: every field above is visible to whoever sees the magic.
        h.magic.store(MAGIC, Ordering::Release);
    }
}

/// A mapped endpoint file: header and rings read-write.
pub struct Mapped {
    pub file: File,
    pub map: MmapMut,
    pub layout: Layout,
}

impl Mapped {
    pub fn header(&self) -> &Header {
        // SAFETY: the mapping is at least a page, page aligned, and Header
        // is plain atomics that fit in a page.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    pub fn rx(&self) -> Ring {
        // SAFETY: the layout was checked against the file length, the ring
        // offset is page aligned, and `self.map` outlives the view as long
        // as the caller keeps `self` (documented on Ring::at).
        unsafe {
            Ring::at(
                self.map.as_ptr().add(self.layout.rx_off as usize) as *mut u8,
                self.layout.rx_cap,
            )
        }
    }

    pub fn ret(&self) -> Ring {
        // SAFETY: as for `rx`.
        unsafe {
            Ring::at(
                self.map.as_ptr().add(self.layout.ret_off as usize) as *mut u8,
                self.layout.ret_cap,
            )
        }
    }

    pub fn id(&self) -> u64 {
        self.header().id.load(Ordering::Relaxed)
    }

    /// Whether the process that made this endpoint still runs.
    pub fn owner_alive(&self) -> bool {
        let h = self.header();
        alive(
            h.pid.load(Ordering::Relaxed),
            h.start_time.load(Ordering::Relaxed),
        )
    }
}

/// Path of endpoint `name` in `dir`.
pub fn path_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.tutti"))
}

/// Checks an endpoint name: 1..=64 of `[A-Za-z0-9._-]`, not starting with '.'.
pub fn check_name(name: &str) -> Result<(), DriverError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(DriverError::BadAddress(format!(
            "shm endpoint name {name:?}: use 1-64 of A-Z a-z 0-9 . _ - (not starting with '.')"
        )))
    }
}

/// Maps header and rings of an existing endpoint file, checking it.
pub fn open(path: &Path) -> Result<Mapped, DriverError> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    if len < PAGE {
        return Err(DriverError::Config(format!(
            "{}: too short",
            path.display()
        )));
    }
    // SAFETY: a shared mapping of the header page; its contents are only
    // accessed through atomics and validated before use.
    let head = unsafe { MmapOptions::new().len(PAGE as usize).map_mut(&file) }?;
    // SAFETY: as above; Header fits in the page.
    let layout = Layout::read(unsafe { &*(head.as_ptr() as *const Header) }, len)?;
    drop(head);
    // SAFETY: the layout was checked against the file length; the rings
    // hold only atomics.
    let map = unsafe {
        MmapOptions::new()
            .len(layout.data_off as usize)
            .map_mut(&file)
    }?;
    Ok(Mapped { file, map, layout })
}

/// Creates endpoint file `name` in `dir`. A file of the same name left by
/// a dead process is removed; one whose owner lives is refused.
pub fn create(dir: &Path, name: &str, layout: Layout, id: u64) -> Result<Mapped, DriverError> {
    check_name(name)?;
    std::fs::create_dir_all(dir)?;
    let path = path_of(dir, name);
    if path.exists() {
        match open(&path) {
            Ok(m) if m.owner_alive() => {
                return Err(DriverError::NameInUse(format!(
                    "{} belongs to live process {}",
                    path.display(),
                    m.header().pid.load(Ordering::Relaxed)
                )))
            }
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let tmp = dir.join(format!(".{name}.{}.{id:x}.tmp", std::process::id()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    file.set_len(layout.len)?;
    // SAFETY: our own fresh file; header and rings are initialised below
    // before anyone can see the file (it is renamed into place after).
    let mut map = unsafe {
        MmapOptions::new()
            .len(layout.data_off as usize)
            .map_mut(&file)
    }?;
    let base = map.as_mut_ptr();
    // SAFETY: offsets come from our own layout, inside the mapping, page
    // aligned; nobody else has the file yet.
    unsafe {
        Ring::init(base.add(layout.rx_off as usize), layout.rx_cap);
        Ring::init(base.add(layout.ret_off as usize), layout.ret_cap);
    }
    let m = Mapped { file, map, layout };
    layout.write(m.header(), id);
    if let Err(e) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(m)
}

/// Removes endpoint files in `dir` whose owners are dead (and stale
/// temporary files of dead processes). Returns how many.
pub fn sweep(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tutti") {
            if let Ok(m) = open(&p) {
                if !m.owner_alive() {
                    let _ = std::fs::remove_file(&p);
                    n += 1;
                }
            }
        } else if name.starts_with('.') && name.ends_with(".tmp") {
            let pid: Option<u32> = name.rsplit('.').nth(2).and_then(|s| s.parse().ok());
            if pid.is_some_and(|pid| start_time(pid).is_none()) {
                let _ = std::fs::remove_file(&p);
                n += 1;
            }
        }
    }
    n
}

/// Start time of process `pid` (clock ticks since boot), to tell a
/// process from a later one that reused its pid. `None` when there is no
/// such process or it has exited (a zombie waiting to be reaped).
pub fn start_time(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces but ends at the last ')';
    // then field 3 is the state and field 22 the start time.
    let mut rest = s[s.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    rest.nth(18)?.parse().ok()
}

/// Whether process `pid` that started at `start` still runs.
pub fn alive(pid: u32, start: u64) -> bool {
    match start_time(pid) {
        Some(t) => start == 0 || t == start,
        None => false,
    }
}
