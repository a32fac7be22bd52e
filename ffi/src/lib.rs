//! libtutti: the C API of tutti.
//!
//! Every function catches panics (a panic becomes `TUTTI_ERR_PANIC`, never
//! an unwind across the boundary) and checks every pointer it is given for
//! NULL. Strings are NUL-terminated UTF-8. `include/tutti.h` is generated
//! from this file by cbindgen (a test fails when it is stale); each
//! function's documentation there says who owns what, until when, and
//! from which threads it may be called.

#![allow(clippy::missing_safety_doc)]

mod event;

use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tutti_core::engine::{DriverConfig, Endpoint, GroupSpec, Idle};
use tutti_core::layers::suspect::SuspectConfig;
use tutti_core::secure::{load_authorized, Identity, Secure};
use tutti_core::{Group, Msg, Packer, SendErrorKind};

pub use event::{tutti_event_clear, tutti_poll, TuttiEvent, TuttiEventKind};

/// Success.
pub const TUTTI_OK: i32 = 0;
/// A pointer argument was NULL.
pub const TUTTI_ERR_NULL: i32 = -1;
/// An argument is invalid (not UTF-8, out of range, unknown driver).
pub const TUTTI_ERR_INVALID: i32 = -2;
/// The driver could not be opened (see the endpoint's name or address).
pub const TUTTI_ERR_DRIVER: i32 = -3;
/// The stack spec is refused, or the member list is unusable.
pub const TUTTI_ERR_SPEC: i32 = -4;
/// Back-pressure: retry after polling.
pub const TUTTI_ERR_WOULD_BLOCK: i32 = -5;
/// No view installed (not yet joined, or left).
pub const TUTTI_ERR_NO_VIEW: i32 = -6;
/// Larger than the stack carries.
pub const TUTTI_ERR_TOO_LARGE: i32 = -7;
/// No buffer free in the endpoint's pool.
pub const TUTTI_ERR_NO_BUFFER: i32 = -8;
/// Nothing happened within the timeout.
pub const TUTTI_ERR_TIMEOUT: i32 = -9;
/// The endpoint stopped.
pub const TUTTI_ERR_CLOSED: i32 = -10;
/// A bug inside libtutti (a caught panic).
pub const TUTTI_ERR_PANIC: i32 = -11;
/// No member with that rank.
pub const TUTTI_ERR_BAD_RANK: i32 = -12;
/// A key file or authorized-keys file is unreadable or invalid, or only
/// one of the two was given.
pub const TUTTI_ERR_KEYS: i32 = -13;

/// `TuttiConfig::flags`: the application answers `TUTTI_EVENT_KIND_BLOCK` with
/// `tutti_block_ok` itself.
pub const TUTTI_APP_BLOCK_OK: u32 = 1;

/// `TuttiConfig::flags`: the groups of this endpoint do not deliver the
/// member's own casts (JGroups' `discard_own_messages`): a sender that has
/// no use for them saves their delivery.
pub const TUTTI_DISCARD_OWN: u32 = 2;

/// How to open an endpoint.
#[repr(C)]
pub struct TuttiConfig {
    /// "shm", "udp" or "uring".
    pub driver: *const c_char,
    /// shm: endpoint name; udp and uring: "ip:port" to bind.
    pub name: *const c_char,
    /// shm: directory of endpoint files (NULL: /dev/shm/tutti).
    pub dir: *const c_char,
    /// CPU core to pin the polling thread to; -1: no pinning.
    pub core: i32,
    /// 0: spin, then yield, then park (shares cores); 1: spin always.
    pub idle: u32,
    /// Failure-detector timeout in ms; 0: 50 on shm, 500 otherwise.
    pub timeout_ms: u32,
    /// `TUTTI_APP_BLOCK_OK` and `TUTTI_DISCARD_OWN`, or-ed, or 0; other
    /// bits are refused (`TUTTI_ERR_INVALID`).
    pub flags: u32,
    /// Secure stacks (`vsync-secure`, `vsync-total-secure`): this
    /// process's secret key file (from `tutti keygen`); NULL otherwise.
    pub key_file: *const c_char,
    /// Secure stacks: the authorized public keys, one per line; NULL
    /// otherwise. Both or neither.
    pub authorized_file: *const c_char,
}

/// An open endpoint (one polling thread).
pub struct TuttiEndpoint {
    ep: Endpoint,
    timeout_ns: u64,
    app_block_ok: bool,
    discard_own: bool,
    secure: Option<Arc<Secure>>,
}

/// Receives a state from `TuttiGetStateFn`.
pub struct TuttiStateWriter {
    buf: Vec<u8>,
}

/// Called (from `tutti_poll`) when a joiner needs the application's
/// state: write it with `tutti_state_write`. The state must be as of this
/// call: after every message delivered before it, before any after it.
pub type TuttiGetStateFn = Option<unsafe extern "C" fn(ctx: *mut c_void, w: *mut TuttiStateWriter)>;

/// Called (from `tutti_poll`) in a joiner with the group's state, before
/// the joiner's first view. `data` is valid during the call only;
/// `data` is NULL and `len` 0 when no member holding state survived.
pub type TuttiSetStateFn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, data: *const u8, len: usize)>;

/// State-transfer callbacks for `tutti_join`.
#[repr(C)]
pub struct TuttiStateCallbacks {
    /// See `TuttiGetStateFn`.
    pub get_state: TuttiGetStateFn,
    /// See `TuttiSetStateFn`.
    pub set_state: TuttiSetStateFn,
    /// Passed back to both.
    pub ctx: *mut c_void,
}

/// A joined group.
pub struct TuttiGroup {
    g: Group,
    get_state: TuttiGetStateFn,
    set_state: TuttiSetStateFn,
    ctx: *mut c_void,
}

/// A buffer taken from the endpoint's registered memory, to fill and
/// cast without a copy.
pub struct TuttiBuffer {
    /// `None` only while `tutti_buffer_cast` holds it.
    msg: Option<Msg>,
}

/// A frame to write several casts into in place, cast together without a
/// copy (`tutti_packer_take`).
pub struct TuttiPacker {
    /// `None` only while `tutti_packer_send` holds it.
    p: Option<Packer>,
}

/// Runs `f`, turning a panic into `TUTTI_ERR_PANIC`.
fn guard(f: impl FnOnce() -> i32) -> i32 {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(TUTTI_ERR_PANIC)
}

/// A C string argument, checked.
unsafe fn str_arg<'a>(p: *const c_char) -> Result<&'a str, i32> {
    if p.is_null() {
        return Err(TUTTI_ERR_NULL);
    }
    // SAFETY: the caller passes a NUL-terminated string (documented).
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| TUTTI_ERR_INVALID)
}

/// A byte-range argument, checked.
unsafe fn bytes_arg<'a>(data: *const u8, len: usize) -> Result<&'a [u8], i32> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(TUTTI_ERR_NULL);
    }
    // SAFETY: the caller passes `len` readable bytes at `data` (documented).
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// Frees a handle made by `Box::into_raw`; NULL is ignored.
fn free_handle<T>(p: *mut T) {
    guard(|| {
        if !p.is_null() {
            // SAFETY: made by this library with `Box::into_raw`, freed once
            // (the caller's side of the contract).
            drop(unsafe { Box::from_raw(p) });
        }
        TUTTI_OK
    });
}

/// The group and a copy of the caller's bytes in a registered buffer.
unsafe fn copied<'a>(
    g: *mut TuttiGroup,
    data: *const u8,
    len: usize,
) -> Result<(&'a TuttiGroup, Msg), i32> {
    // SAFETY: made by `tutti_join` or NULL.
    let g = unsafe { g.as_ref() }.ok_or(TUTTI_ERR_NULL)?;
    // SAFETY: `len` readable bytes at `data` (documented).
    let b = unsafe { bytes_arg(data, len) }?;
    let m = g.g.message(b).ok_or(TUTTI_ERR_NO_BUFFER)?;
    Ok((g, m))
}

fn send_error(k: SendErrorKind) -> i32 {
    match k {
        SendErrorKind::NoView => TUTTI_ERR_NO_VIEW,
        SendErrorKind::WouldBlock => TUTTI_ERR_WOULD_BLOCK,
        SendErrorKind::TooLarge => TUTTI_ERR_TOO_LARGE,
        SendErrorKind::BadRank => TUTTI_ERR_BAD_RANK,
    }
}

/// The library's version, "major.minor.patch". Static string; any thread.
#[no_mangle]
pub extern "C" fn tutti_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// What an error code means. Static string, never NULL; any thread.
#[no_mangle]
pub extern "C" fn tutti_strerror(code: i32) -> *const c_char {
    let s: &'static str = match code {
        TUTTI_OK => "ok\0",
        TUTTI_ERR_NULL => "a pointer argument was NULL\0",
        TUTTI_ERR_INVALID => "invalid argument\0",
        TUTTI_ERR_DRIVER => "the driver could not be opened\0",
        TUTTI_ERR_SPEC => "bad stack spec or member list\0",
        TUTTI_ERR_WOULD_BLOCK => "back-pressure: poll, then retry\0",
        TUTTI_ERR_NO_VIEW => "no view installed\0",
        TUTTI_ERR_TOO_LARGE => "message too large for the stack\0",
        TUTTI_ERR_NO_BUFFER => "no free buffer\0",
        TUTTI_ERR_TIMEOUT => "timed out\0",
        TUTTI_ERR_CLOSED => "endpoint closed\0",
        TUTTI_ERR_PANIC => "internal error in libtutti\0",
        TUTTI_ERR_BAD_RANK => "no member with that rank\0",
        TUTTI_ERR_KEYS => "bad key file or authorized-keys file\0",
        _ => "unknown error code\0",
    };
    s.as_ptr().cast()
}

/// The identity and authorized keys named by two optional paths.
///
/// # Safety
/// Each pointer is NULL or a NUL-terminated string valid for the call.
unsafe fn load_keys(
    key: *const c_char,
    authorized: *const c_char,
) -> Result<Option<Arc<Secure>>, i32> {
    if key.is_null() && authorized.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's contract (NULL is refused by the helper).
    let (k, a) = match unsafe { (str_arg(key), str_arg(authorized)) } {
        (Ok(k), Ok(a)) => (k, a),
        _ => return Err(TUTTI_ERR_KEYS),
    };
    let id = Identity::load(Path::new(k)).map_err(|_| TUTTI_ERR_KEYS)?;
    let list = load_authorized(Path::new(a)).map_err(|_| TUTTI_ERR_KEYS)?;
    Secure::new(id, &list)
        .map(|s| Some(Arc::new(s)))
        .map_err(|_| TUTTI_ERR_KEYS)
}

/// Opens an endpoint and starts its polling thread. On success `*out`
/// owns it until `tutti_endpoint_close`. `cfg` and its strings are read
/// during the call only. Any thread.
#[no_mangle]
pub unsafe extern "C" fn tutti_endpoint_open(
    cfg: *const TuttiConfig,
    out: *mut *mut TuttiEndpoint,
) -> i32 {
    guard(|| {
        if cfg.is_null() || out.is_null() {
            return TUTTI_ERR_NULL;
        }
        // SAFETY: checked non-NULL; the caller passes a valid config.
        let c = unsafe { &*cfg };
        if c.flags & !(TUTTI_APP_BLOCK_OK | TUTTI_DISCARD_OWN) != 0 {
            return TUTTI_ERR_INVALID;
        }
        // SAFETY: pointers from the caller, checked for NULL here or in the
        // helper; the caller keeps them valid for the call (documented).
        let (driver, name) = match unsafe { (str_arg(c.driver), str_arg(c.name)) } {
            (Ok(d), Ok(n)) => (d, n),
            (Err(e), _) | (_, Err(e)) => return e,
        };
        let dir = if c.dir.is_null() {
            PathBuf::from("/dev/shm/tutti")
        } else {
            // SAFETY: pointers from the caller, checked for NULL here or in the
            // helper; the caller keeps them valid for the call (documented).
            match unsafe { str_arg(c.dir) } {
                Ok(d) => PathBuf::from(d),
                Err(e) => return e,
            }
        };
        // SAFETY: pointers from the caller, NULL allowed (checked in the
        // helper); valid for the call (documented).
        let secure = match unsafe { load_keys(c.key_file, c.authorized_file) } {
            Ok(s) => s,
            Err(e) => return e,
        };
        let dc = match driver {
            "shm" => {
                if std::fs::create_dir_all(&dir).is_err() {
                    return TUTTI_ERR_DRIVER;
                }
                DriverConfig::shm(&dir, name)
            }
            "udp" | "uring" => {
                let Ok(addr) = name.parse() else {
                    return TUTTI_ERR_INVALID;
                };
                if driver == "udp" {
                    DriverConfig::Udp(tutti_drivers::udp::UdpConfig::new(addr))
                } else {
                    DriverConfig::Uring(tutti_drivers::uring::UringConfig::new(addr))
                }
            }
            _ => return TUTTI_ERR_INVALID,
        };
        let mut b = Endpoint::builder()
            .driver(dc)
            .name(name)
            .idle(if c.idle == 1 {
                Idle::Spin
            } else {
                Idle::default()
            });
        if c.core >= 0 {
            b = b.core(c.core as usize);
        }
        let ep = match b.build() {
            Ok(ep) => ep,
            Err(_) => return TUTTI_ERR_DRIVER,
        };
        let default = if driver == "shm" {
            SuspectConfig::SHM
        } else {
            SuspectConfig::LAN
        };
        let timeout_ns = if c.timeout_ms == 0 {
            default.timeout_ns
        } else {
            c.timeout_ms as u64 * 1_000_000
        };
        let e = Box::new(TuttiEndpoint {
            ep,
            timeout_ns,
            app_block_ok: c.flags & TUTTI_APP_BLOCK_OK != 0,
            discard_own: c.flags & TUTTI_DISCARD_OWN != 0,
            secure,
        });
        // SAFETY: checked non-NULL.
        unsafe { *out = Box::into_raw(e) };
        TUTTI_OK
    })
}

/// Stops the endpoint's thread and frees it. Groups joined on it fail
/// with `TUTTI_ERR_CLOSED` afterwards and must still be closed. NULL is
/// ignored. Not concurrently with other calls on the same endpoint.
#[no_mangle]
pub unsafe extern "C" fn tutti_endpoint_close(ep: *mut TuttiEndpoint) {
    free_handle(ep);
}

/// Joins group `group` with stack spec or preset `stack` ("vsync",
/// "vsync-total", "fifo", ...). With a membership stack `contacts` are
/// addresses to find the group through (or found it); without, they are
/// the static member list in rank order, this endpoint included.
/// `state` may be NULL (no state transfer). Strings are read during the
/// call only; `state->ctx` must stay valid until `tutti_group_close`. On
/// success `*out` owns the group until `tutti_group_close`. Any thread.
#[no_mangle]
pub unsafe extern "C" fn tutti_join(
    ep: *mut TuttiEndpoint,
    group: *const c_char,
    stack: *const c_char,
    contacts: *const *const c_char,
    ncontacts: usize,
    state: *const TuttiStateCallbacks,
    out: *mut *mut TuttiGroup,
) -> i32 {
    guard(|| {
        if ep.is_null() || out.is_null() || (ncontacts > 0 && contacts.is_null()) {
            return TUTTI_ERR_NULL;
        }
        // SAFETY: checked non-NULL; made by `tutti_endpoint_open`.
        let e = unsafe { &*ep };
        // SAFETY: pointers from the caller, checked for NULL here or in the
        // helper; the caller keeps them valid for the call (documented).
        let (group, stack) = match unsafe { (str_arg(group), str_arg(stack)) } {
            (Ok(g), Ok(s)) => (g, s),
            (Err(x), _) | (_, Err(x)) => return x,
        };
        let mut members = Vec::with_capacity(ncontacts);
        for i in 0..ncontacts {
            // SAFETY: `contacts` holds `ncontacts` pointers (documented).
            match unsafe { str_arg(*contacts.add(i)) } {
                Ok(s) => members.push(s.to_string()),
                Err(x) => return x,
            }
        }
        let (get_state, set_state, ctx) = if state.is_null() {
            (None, None, std::ptr::null_mut())
        } else {
            // SAFETY: checked non-NULL.
            let s = unsafe { &*state };
            (s.get_state, s.set_state, s.ctx)
        };
        let mut spec = GroupSpec::new(group, stack, members);
        spec.config.suspect = SuspectConfig {
            timeout_ns: e.timeout_ns,
        };
        spec.config.gms.tick_ns = (e.timeout_ns / 4).max(1_000_000);
        spec.config.gms.join_timeout_ns = (e.timeout_ns * 4).max(50_000_000);
        spec.config.gms.app_block_ok = e.app_block_ok;
        spec.config.discard_own = e.discard_own;
        spec.config.gms.app_state = get_state.is_some();
        spec.config.secure = e.secure.clone();
        let g = match e.ep.join(spec) {
            Ok(g) => g,
            Err(tutti_core::engine::EndpointError::Stopped) => return TUTTI_ERR_CLOSED,
            Err(_) => return TUTTI_ERR_SPEC,
        };
        let g = Box::new(TuttiGroup {
            g,
            get_state,
            set_state,
            ctx,
        });
        // SAFETY: checked non-NULL.
        unsafe { *out = Box::into_raw(g) };
        TUTTI_OK
    })
}

/// Asks to leave (membership stacks): the others install a view without
/// this member, then `tutti_poll` returns `TUTTI_EVENT_KIND_EXIT`. One thread
/// at a time per group.
#[no_mangle]
pub unsafe extern "C" fn tutti_leave(g: *mut TuttiGroup) -> i32 {
    // SAFETY: pointers from the caller, checked for NULL here or in the
    // helper; the caller keeps them valid for the call (documented).
    guard(|| match unsafe { g.as_ref() } {
        None => TUTTI_ERR_NULL,
        Some(g) => {
            g.g.leave();
            TUTTI_OK
        }
    })
}

/// Frees the group (without leaving: call `tutti_leave` and wait for
/// `TUTTI_EVENT_KIND_EXIT` first for a clean departure). NULL is ignored. Not
/// concurrently with other calls on the same group.
#[no_mangle]
pub unsafe extern "C" fn tutti_group_close(g: *mut TuttiGroup) {
    free_handle(g);
}

/// Multicasts a copy of `len` bytes at `data` (read during the call
/// only). `TUTTI_ERR_WOULD_BLOCK`: nothing was sent; poll, then retry.
/// One thread at a time per group.
#[no_mangle]
pub unsafe extern "C" fn tutti_cast(g: *mut TuttiGroup, data: *const u8, len: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's pointers, checked in `copied`.
        match unsafe { copied(g, data, len) } {
            Ok((g, m)) => {
                g.g.cast(m)
                    .map_or_else(|e| send_error(e.kind), |()| TUTTI_OK)
            }
            Err(e) => e,
        }
    })
}

/// Sends a copy of `len` bytes at `data` to the member of rank `rank`.
/// As `tutti_cast` otherwise.
#[no_mangle]
pub unsafe extern "C" fn tutti_send(
    g: *mut TuttiGroup,
    rank: u16,
    data: *const u8,
    len: usize,
) -> i32 {
    guard(|| {
        // SAFETY: the caller's pointers, checked in `copied`.
        match unsafe { copied(g, data, len) } {
            Ok((g, m)) => {
                g.g.send(rank, m)
                    .map_or_else(|e| send_error(e.kind), |()| TUTTI_OK)
            }
            Err(e) => e,
        }
    })
}

/// Takes a buffer of `len` bytes (at most one buffer's payload) from the
/// endpoint's registered memory: write the message at `*data`, then
/// `tutti_buffer_cast` it (no copy on the way to the peers) or
/// `tutti_buffer_free` it. `*data` is valid until then. Any thread.
#[no_mangle]
pub unsafe extern "C" fn tutti_buffer_take(
    g: *mut TuttiGroup,
    len: usize,
    out: *mut *mut TuttiBuffer,
    data: *mut *mut u8,
) -> i32 {
    guard(|| {
        // SAFETY: pointers from the caller, checked for NULL here or in the
        // helper; the caller keeps them valid for the call (documented).
        let Some(g) = (unsafe { g.as_ref() }) else {
            return TUTTI_ERR_NULL;
        };
        if out.is_null() || data.is_null() {
            return TUTTI_ERR_NULL;
        }
        let Some(mut m) = g.g.alloc() else {
            return TUTTI_ERR_NO_BUFFER;
        };
        let p = match m.reserve(len) {
            Ok(b) => b.as_mut_ptr(),
            Err(_) => return TUTTI_ERR_TOO_LARGE,
        };
        // SAFETY: checked non-NULL.
        unsafe {
            *data = p;
            *out = Box::into_raw(Box::new(TuttiBuffer { msg: Some(m) }));
        }
        TUTTI_OK
    })
}

/// Multicasts a buffer from `tutti_buffer_take`. On `TUTTI_OK` and on
/// every error but `TUTTI_ERR_WOULD_BLOCK` the buffer is consumed; on
/// `TUTTI_ERR_WOULD_BLOCK` it is still the caller's (retry, or free it).
#[no_mangle]
pub unsafe extern "C" fn tutti_buffer_cast(g: *mut TuttiGroup, b: *mut TuttiBuffer) -> i32 {
    // SAFETY: the caller's handles, checked in `buffer_out`.
    guard(|| unsafe { buffer_out(g, b, None) })
}

/// Sends a buffer from `tutti_buffer_take` to the member of rank `rank`,
/// without a copy. Consumed as with `tutti_buffer_cast`.
#[no_mangle]
pub unsafe extern "C" fn tutti_buffer_send(
    g: *mut TuttiGroup,
    rank: u16,
    b: *mut TuttiBuffer,
) -> i32 {
    // SAFETY: the caller's handles, checked in `buffer_out`.
    guard(|| unsafe { buffer_out(g, b, Some(rank)) })
}

/// Casts (`to` None) or sends a taken buffer; see `tutti_buffer_cast`.
unsafe fn buffer_out(g: *mut TuttiGroup, b: *mut TuttiBuffer, to: Option<u16>) -> i32 {
    if g.is_null() || b.is_null() {
        return TUTTI_ERR_NULL;
    }
    // SAFETY: checked non-NULL; made by `tutti_join` and
    // `tutti_buffer_take`, not in use elsewhere (documented).
    let (g, buf) = unsafe { (&*g, &mut *b) };
    let Some(msg) = buf.msg.take() else {
        return TUTTI_ERR_INVALID;
    };
    let r = match to {
        None => g.g.cast(msg),
        Some(rank) => g.g.send(rank, msg),
    };
    match r {
        Ok(()) => {
            // SAFETY: made by `tutti_buffer_take`; consumed here, once.
            drop(unsafe { Box::from_raw(b) });
            TUTTI_OK
        }
        Err(e) if e.kind == SendErrorKind::WouldBlock => {
            // Still the caller's: retry, or free it.
            buf.msg = Some(e.msg);
            TUTTI_ERR_WOULD_BLOCK
        }
        Err(e) => {
            // SAFETY: as above.
            drop(unsafe { Box::from_raw(b) });
            send_error(e.kind)
        }
    }
}

/// Gives a buffer from `tutti_buffer_take` back unsent. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn tutti_buffer_free(b: *mut TuttiBuffer) {
    free_handle(b);
}

/// Takes a frame from the endpoint's registered memory to write several
/// casts into in place (`tutti_packer_cast`), which `tutti_packer_send`
/// casts together, in order: they go out in this frame, with no buffer
/// taken and no byte copied per cast. `TUTTI_ERR_NO_BUFFER` when every
/// frame is in use (poll, retry). Free it with `tutti_packer_send` or
/// `tutti_packer_free`. Any thread; one thread at a time per packer.
#[no_mangle]
pub unsafe extern "C" fn tutti_packer_take(g: *mut TuttiGroup, out: *mut *mut TuttiPacker) -> i32 {
    guard(|| {
        // SAFETY: pointers from the caller, checked for NULL; the caller
        // keeps them valid for the call (documented).
        let Some(g) = (unsafe { g.as_ref() }) else {
            return TUTTI_ERR_NULL;
        };
        if out.is_null() {
            return TUTTI_ERR_NULL;
        }
        let Some(p) = g.g.packer() else {
            return TUTTI_ERR_NO_BUFFER;
        };
        // SAFETY: checked non-NULL.
        unsafe { *out = Box::into_raw(Box::new(TuttiPacker { p: Some(p) })) };
        TUTTI_OK
    })
}

/// Room in the packer's frame for one more cast of `len` bytes: write
/// them all at `*data`, which stays valid until the packer is sent or
/// freed. `TUTTI_ERR_TOO_LARGE` when the frame has no room left for it
/// (send what it holds, take another).
#[no_mangle]
pub unsafe extern "C" fn tutti_packer_cast(
    p: *mut TuttiPacker,
    len: usize,
    data: *mut *mut u8,
) -> i32 {
    guard(|| {
        // SAFETY: pointers from the caller, checked for NULL; made by
        // `tutti_packer_take`, not in use elsewhere (documented).
        let Some(p) = (unsafe { p.as_mut() }) else {
            return TUTTI_ERR_NULL;
        };
        if data.is_null() {
            return TUTTI_ERR_NULL;
        }
        let Some(p) = p.p.as_mut() else {
            return TUTTI_ERR_INVALID;
        };
        match p.cast(len) {
            Some(b) => {
                // SAFETY: checked non-NULL.
                unsafe { *data = b.as_mut_ptr() };
                TUTTI_OK
            }
            None => TUTTI_ERR_TOO_LARGE,
        }
    })
}

/// Casts written into the packer so far (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn tutti_packer_count(p: *const TuttiPacker) -> usize {
    // SAFETY: the caller's handle, checked for NULL (documented).
    match unsafe { p.as_ref() } {
        Some(TuttiPacker { p: Some(p) }) => p.len(),
        _ => 0,
    }
}

/// Multicasts every cast written into the packer, in order, as one
/// request. On `TUTTI_OK` and on every error but
/// `TUTTI_ERR_WOULD_BLOCK` the packer is consumed; on
/// `TUTTI_ERR_WOULD_BLOCK` it is still the caller's (retry, or free it).
#[no_mangle]
pub unsafe extern "C" fn tutti_packer_send(g: *mut TuttiGroup, p: *mut TuttiPacker) -> i32 {
    guard(|| {
        if g.is_null() || p.is_null() {
            return TUTTI_ERR_NULL;
        }
        // SAFETY: checked non-NULL; made by `tutti_join` and
        // `tutti_packer_take`, not in use elsewhere (documented).
        let (g, h) = unsafe { (&*g, &mut *p) };
        let Some(pk) = h.p.take() else {
            return TUTTI_ERR_INVALID;
        };
        match g.g.cast_packer(pk) {
            Ok(()) => {
                // SAFETY: made by `tutti_packer_take`; consumed here, once.
                drop(unsafe { Box::from_raw(p) });
                TUTTI_OK
            }
            Err((SendErrorKind::WouldBlock, pk)) => {
                // Still the caller's: retry, or free it.
                h.p = Some(pk);
                TUTTI_ERR_WOULD_BLOCK
            }
            Err((k, _)) => {
                // SAFETY: as above.
                drop(unsafe { Box::from_raw(p) });
                send_error(k)
            }
        }
    })
}

/// Gives a packer back unsent (its casts are not cast). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn tutti_packer_free(p: *mut TuttiPacker) {
    free_handle(p);
}

/// Answers `TUTTI_EVENT_KIND_BLOCK` (with `TUTTI_APP_BLOCK_OK`): this member
/// sends nothing more in the current view.
#[no_mangle]
pub unsafe extern "C" fn tutti_block_ok(g: *mut TuttiGroup) -> i32 {
    // SAFETY: pointers from the caller, checked for NULL here or in the
    // helper; the caller keeps them valid for the call (documented).
    guard(|| match unsafe { g.as_ref() } {
        None => TUTTI_ERR_NULL,
        Some(g) => {
            g.g.block_ok();
            TUTTI_OK
        }
    })
}

/// Appends `len` bytes at `data` (copied) to the state being written in a
/// `TuttiGetStateFn` call.
#[no_mangle]
pub unsafe extern "C" fn tutti_state_write(
    w: *mut TuttiStateWriter,
    data: *const u8,
    len: usize,
) -> i32 {
    guard(|| {
        // SAFETY: pointers from the caller, checked for NULL here or in the
        // helper; the caller keeps them valid for the call (documented).
        let Some(w) = (unsafe { w.as_mut() }) else {
            return TUTTI_ERR_NULL;
        };
        // SAFETY: pointers from the caller, checked for NULL here or in the
        // helper; the caller keeps them valid for the call (documented).
        match unsafe { bytes_arg(data, len) } {
            Ok(b) => {
                w.buf.extend_from_slice(b);
                TUTTI_OK
            }
            Err(e) => e,
        }
    })
}

/// Waits up to `ms` for the next event of `g` (negative: forever).
fn wait_event(g: &TuttiGroup, ms: i32) -> Option<tutti_core::Event> {
    if ms < 0 {
        loop {
            if let Some(e) = g.g.recv(Duration::from_secs(3600)) {
                return Some(e);
            }
        }
    }
    g.g.recv(Duration::from_millis(ms as u64))
}
