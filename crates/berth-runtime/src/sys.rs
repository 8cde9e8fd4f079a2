//! Thin wrappers over the few system calls the runtime needs. Every `unsafe` of the crate
//! lives here, next to a `// SAFETY:` comment.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte in path"))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `mount(2)`.
pub(crate) fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let source = cstring(OsStr::new(source))?;
    let target = cstring(target.as_os_str())?;
    let fstype = cstring(OsStr::new(fstype))?;
    let data = cstring(OsStr::new(data))?;
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    })?;
    Ok(())
}

/// `umount2(2)` with `MNT_DETACH`; not mounted is not an error.
pub(crate) fn umount_detach(target: &Path) -> io::Result<()> {
    let target = cstring(target.as_os_str())?;
    // SAFETY: `target` is a valid NUL-terminated string that outlives the call.
    let ret = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINVAL) || err.raw_os_error() == Some(libc::ENOENT) {
            return Ok(());
        }
        return Err(err);
    }
    Ok(())
}

/// Creates the overlayfs whiteout at `path`: a character device 0:0.
pub(crate) fn mknod_whiteout(path: &Path) -> io::Result<()> {
    let p = cstring(path.as_os_str())?;
    // SAFETY: `p` is a valid NUL-terminated string; mode and dev are plain integers.
    check(unsafe { libc::mknod(p.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) })?;
    Ok(())
}

/// `lsetxattr(2)`.
pub(crate) fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = cstring(path.as_os_str())?;
    let n = cstring(OsStr::new(name))?;
    // SAFETY: `p` and `n` are valid NUL-terminated strings, `value` is a valid slice of the
    // given length; all outlive the call.
    check(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })?;
    Ok(())
}

/// `kill(2)`.
pub(crate) fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    check(unsafe { libc::kill(pid, signal) })?;
    Ok(())
}

/// Whether a process with this pid exists (signal 0).
pub(crate) fn process_exists(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence.
    let ret = unsafe { libc::kill(pid, 0) };
    ret == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Effective uid of this process.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

/// `setsid(2)`.
pub(crate) fn setsid() -> io::Result<()> {
    // SAFETY: setsid has no memory-safety preconditions.
    check(unsafe { libc::setsid() })?;
    Ok(())
}

/// Makes this process the subreaper of its descendants.
pub(crate) fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes a plain integer argument.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

/// `fork(2)`. Only for the single-threaded shim. Returns the child pid, 0 in the child.
pub(crate) fn fork() -> io::Result<i32> {
    // SAFETY: called only from the shim, which is single-threaded, so the child gets a
    // consistent copy of the whole process.
    check(unsafe { libc::fork() })
}

/// `dup2(2)`.
pub(crate) fn dup2(old: i32, new: i32) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the descriptor table.
    check(unsafe { libc::dup2(old, new) })?;
    Ok(())
}

/// A pipe whose both ends are close-on-exec: (read, write).
pub(crate) fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// Blocks SIGCHLD and returns a signalfd that reads it (non-blocking, close-on-exec).
pub(crate) fn sigchld_fd() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: `set` is a plain sigset_t initialised by sigemptyset before any other use;
    // sigprocmask and signalfd only read it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        check(libc::sigprocmask(
            libc::SIG_BLOCK,
            &set,
            std::ptr::null_mut(),
        ))?;
        let fd = check(libc::signalfd(
            -1,
            &set,
            libc::SFD_NONBLOCK | libc::SFD_CLOEXEC,
        ))?;
        Ok(std::os::fd::OwnedFd::from_raw_fd(fd))
    }
}

/// Drains a signalfd (its content does not matter, only that it was readable).
pub(crate) fn drain_fd(fd: i32) {
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: `buf` is a valid writable buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
    }
}

/// `poll(2)` on the given descriptors for readability; returns which are readable (or hung up).
pub(crate) fn poll_readable(fds: &[i32], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structures.
    let ret = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(err);
    }
    Ok(pfds.iter().map(|p| p.fd >= 0 && p.revents != 0).collect())
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reaped {
    Exited(i32),
    Signaled(i32),
}

/// `waitpid(-1, WNOHANG)`: one reaped child, if any.
pub(crate) fn reap_any() -> Option<(i32, Reaped)> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid int for waitpid to fill.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    if libc::WIFEXITED(status) {
        Some((pid, Reaped::Exited(libc::WEXITSTATUS(status))))
    } else if libc::WIFSIGNALED(status) {
        Some((pid, Reaped::Signaled(libc::WTERMSIG(status))))
    } else {
        Some((pid, Reaped::Exited(-1)))
    }
}

/// Blocking `waitpid(pid)`.
pub(crate) fn wait_pid(pid: i32) -> io::Result<Reaped> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid int for waitpid to fill.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(if libc::WIFEXITED(status) {
        Reaped::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Reaped::Signaled(libc::WTERMSIG(status))
    } else {
        Reaped::Exited(-1)
    })
}

/// Sets O_NONBLOCK on a descriptor.
pub(crate) fn set_nonblocking(fd: i32) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor with integer arguments.
    unsafe {
        let flags = check(libc::fcntl(fd, libc::F_GETFL))?;
        check(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// Whether `path` is a mount point (its device differs from its parent's).
pub(crate) fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(meta), Some(parent)) = (std::fs::symlink_metadata(path), path.parent()) else {
        return false;
    };
    match std::fs::symlink_metadata(parent) {
        Ok(pmeta) => meta.dev() != pmeta.dev() || meta.ino() == pmeta.ino(),
        Err(_) => false,
    }
}

/// Signal number from a name ("SIGTERM", "TERM", "15").
pub fn signal_from_name(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match bare {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        "WINCH" => libc::SIGWINCH,
        "ALRM" => libc::SIGALRM,
        "PWR" => libc::SIGPWR,
        _ => return None,
    })
}
