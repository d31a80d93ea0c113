//! Facts about the machine the server checks or adjusts before starting.

use std::time::Duration;

/// glommio needs io_uring. Without it glommio panics deep inside its
/// reactor; checking first turns that into a clear start-up error.
#[allow(unsafe_code, reason = "raw syscalls: libc has no io_uring wrapper")]
pub fn check_io_uring() -> Result<(), String> {
    let mut params = [0u8; 120]; // struct io_uring_params: 120 bytes, zeroed = defaults
    // SAFETY: io_uring_setup(2) reads and writes exactly one
    // `struct io_uring_params` (120 bytes) at the pointer, which `params`
    // provides; the returned fd (if any) is ours and closed just below.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        let hint = match err.raw_os_error() {
            Some(libc::ENOSYS) => "the kernel has no io_uring (Linux 5.8 or later is needed)",
            Some(libc::EPERM) | Some(libc::EACCES) => {
                "io_uring is disabled for this process (see /proc/sys/kernel/io_uring_disabled, or the container's seccomp profile)"
            }
            _ => "io_uring could not be set up",
        };
        return Err(format!("{hint}: {err}"));
    }
    // SAFETY: `fd` is the io_uring descriptor just created and owned here.
    unsafe {
        libc::close(fd as i32);
    }
    Ok(())
}

/// Raises the soft open-files limit to the hard limit: every connection and
/// backend socket is a descriptor, and distributions default the soft limit
/// to 1024. Returns the limit now in force.
#[allow(unsafe_code, reason = "libc rlimit calls")]
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one `rlimit` we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    limit.rlim_cur
}

/// The CPUs this process may run on (its affinity mask), in order.
pub fn available_cpus() -> Vec<usize> {
    let mut cpus: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|core| core.id)
        .collect();
    cpus.sort_unstable();
    if cpus.is_empty() {
        cpus.push(0);
    }
    cpus
}

/// Logs a recurring condition at most once per `interval`.
pub struct LogOnce {
    interval: Duration,
    last: std::cell::Cell<Option<std::time::Instant>>,
    suppressed: std::cell::Cell<u64>,
}

impl LogOnce {
    pub const fn new(interval: Duration) -> LogOnce {
        LogOnce {
            interval,
            last: std::cell::Cell::new(None),
            suppressed: std::cell::Cell::new(0),
        }
    }

    /// Returns how many occurrences were suppressed since the last log, or
    /// `None` if this one should be suppressed too.
    pub fn ready(&self) -> Option<u64> {
        let now = std::time::Instant::now();
        match self.last.get() {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed.set(self.suppressed.get() + 1);
                None
            }
            _ => {
                self.last.set(Some(now));
                Some(self.suppressed.replace(0))
            }
        }
    }
}
