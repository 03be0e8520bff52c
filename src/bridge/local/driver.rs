//! The descriptor a libuv poll handle watches to learn that a JS thread's runtime has work:
//! the epoll instance of its I/O driver, which tokio does not expose.
//!
//! Why a probe: tokio 1.54 keeps its `mio::Poll` private to the I/O driver. No `AsRawFd` on
//! `Runtime`, `Handle` or any driver type, under any cfg (`tokio_unstable` included: the only
//! `as_raw_fd` calls in its runtime are the signal pipe and io_uring's ring); no builder
//! option takes a `Poll`, a `Registry` or an epoll descriptor to build the driver on; and
//! mio's `Poll::new` is called inside tokio, with no registry of polls to ask afterwards.
//! tokio-rs/tokio#7348 (open) asks for exactly this. What the kernel offers instead is an
//! exact question: `epoll_ctl(fd, EPOLL_CTL_MOD, probe, ..)` succeeds only on an epoll
//! instance that holds `probe`, fails with ENOENT on any other epoll and EINVAL/EBADF on
//! anything else, and changes nothing where it fails. So an eventfd registered with the new
//! runtime (an `AsyncFd`) finds the runtime's epoll among this process's descriptors.
//!
//! Before, the descriptor was the `eventpoll` that the runtime's construction added to
//! `/proc/self/fd`: ambiguous when another thread created an epoll at the same moment, and
//! then that JS thread lost the inline path for good (workers started together did:
//! `inline-io.test.js`), and it read two links per open descriptor. The probe needs no
//! `/proc`, cannot be confused by other threads, and costs one `epoll_ctl` per descriptor
//! below the runtime's (new descriptors take the lowest free number).

use std::ffi::c_int;

use tokio::runtime::Runtime;

/// Descriptors tried at most: the search ends at the runtime's own, found long before in
/// practice; this only bounds it if the kernel ever answered otherwise (no local runtime then).
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAX_SCAN: c_int = 1 << 20;

/// The epoll descriptor of `rt`'s I/O driver (`rt` built with I/O enabled), or None where
/// there is none to find (not Linux: tokio uses kqueue or IOCP there).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn find(rt: &Runtime) -> Option<c_int> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    // SAFETY: plain system call; the descriptor it returns is owned by `probe` from here.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a new descriptor nothing else owns.
    let probe = unsafe { OwnedFd::from_raw_fd(raw) };
    let registered = {
        let _in_runtime = rt.enter();
        // Registers the probe with `rt`'s driver: an EPOLL_CTL_ADD on its epoll, now.
        // SAFETY: an `OwnedFd` answers `as_raw_fd` with the one descriptor it owns, open
        // until the `AsyncFd` that owns it is dropped.
        unsafe { AsyncFd::register_with_interest(probe, Interest::READABLE) }.ok()?
    };
    let p = registered.as_raw_fd();
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: an out-pointer to a local.
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur.min(MAX_SCAN as libc::rlim_t) as c_int
    } else {
        MAX_SCAN
    };
    // No interest and no data: the probe is never written, so the driver can report nothing
    // for it (an eventfd has no error or hang-up either), and it is deregistered just below,
    // before the runtime is ever polled. A MOD that fails changes nothing.
    let mut event = libc::epoll_event { events: 0, u64: 0 };
    let mut holds_probe = |fd: c_int| {
        // SAFETY: `fd` is a plain integer (a closed or foreign descriptor fails with EBADF or
        // EINVAL); `p` is the probe, open while `registered` lives; `event` is a valid local.
        fd != p && unsafe { libc::epoll_ctl(fd, libc::EPOLL_CTL_MOD, p, &mut event) } == 0
    };
    let found = (0..limit).find(|&fd| holds_probe(fd));
    // Deregisters the probe (EPOLL_CTL_DEL) and closes it.
    drop(registered);
    found
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn find(_rt: &Runtime) -> Option<c_int> {
    None
}

/// Whether `fd` has events waiting: a zero-timeout `poll`, never blocking.
pub(super) fn readable(fd: c_int) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on the stack, zero timeout (never blocks).
    unsafe { libc::poll(&mut p, 1, 0) > 0 && p.revents != 0 }
}
