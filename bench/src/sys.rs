//! The operating-system side: file limits, bound sockets, and what /proc says about
//! the server (RSS, CPU, which process holds a port) and getrusage about this tool.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::TcpSocket;

/// CPU time in microseconds, split as the kernel accounts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user_us: u64,
    pub sys_us: u64,
}

impl CpuTime {
    pub fn total_us(self) -> u64 {
        self.user_us + self.sys_us
    }

    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user_us: self.user_us.saturating_sub(earlier.user_us),
            sys_us: self.sys_us.saturating_sub(earlier.sys_us),
        }
    }

    fn add(self, other: CpuTime) -> CpuTime {
        CpuTime {
            user_us: self.user_us + other.user_us,
            sys_us: self.sys_us + other.sys_us,
        }
    }
}

/// Raises this process's open-file soft limit to its hard limit; returns the new
/// soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut wanted = limit.rlim_max;
    if wanted == libc::RLIM_INFINITY {
        // "unlimited" is refused for files; the kernel's ceiling is nr_open.
        wanted = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if wanted > limit.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        limit.rlim_cur = wanted;
    }
    Ok(limit.rlim_cur)
}

/// A socket bound to `source` (port chosen at connect time), or unbound.
///
/// Binding before connecting is what lets one client open more than the ~28k
/// connections a single source address has ports for: each of 127.0.0.2, .3, …
/// brings its own port range. `IP_BIND_ADDRESS_NO_PORT` defers the port choice to
/// `connect`, so ports are unique per 4-tuple rather than per source address.
pub fn client_socket(source: Option<Ipv4Addr>) -> io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let on: libc::c_int = 1;
            // SAFETY: a valid socket fd and a c_int option of the right size.
            // Failing is harmless (older kernels): bind then picks the port.
            unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        socket.bind(SocketAddr::new(ip.into(), 0))?;
    }
    Ok(socket)
}

/// This process's CPU time so far (every thread).
pub fn own_cpu() -> CpuTime {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we pass.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return CpuTime::default();
    }
    let us = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
    CpuTime {
        user_us: us(usage.ru_utime),
        sys_us: us(usage.ru_stime),
    }
}

/// The server processes' CPU time (utime + stime of every thread, summed over pids),
/// or `None` when one of them cannot be read.
pub fn procs_cpu(pids: &[u32]) -> Option<CpuTime> {
    pids.iter().try_fold(CpuTime::default(), |sum, &pid| {
        Some(sum.add(proc_cpu(pid)?))
    })
}

fn proc_cpu(pid: u32) -> Option<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0], so utime (14) and stime (15) are [11] and [12].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as u64 } else { 100 };
    Some(CpuTime {
        user_us: utime * 1_000_000 / ticks,
        sys_us: stime * 1_000_000 / ticks,
    })
}

/// Resident memory of the server processes in KiB (VmRSS, summed over pids).
pub fn procs_rss_kib(pids: &[u32]) -> Option<u64> {
    pids.iter()
        .try_fold(0u64, |sum, &pid| Some(sum + proc_rss_kib(pid)?))
}

fn proc_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The processes holding a listening TCP socket on `port` (nginx: master and
/// worker), found through /proc/net/tcp{,6} and every process's fds. Empty when
/// /proc is missing or the processes belong to another user.
pub fn pids_listening_on(port: u16) -> Vec<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let listening = *state == "0A";
            let on_port = local
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok())
                == Some(port);
            if listening && on_port {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return Vec::new();
    }
    let own = std::process::id();
    let mut pids = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .map(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
                .unwrap_or(false)
        });
        if holds {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_and_memory_figures() {
        let me = std::process::id();
        assert!(procs_rss_kib(&[me]).is_some_and(|kib| kib > 0));
        assert!(procs_cpu(&[me]).is_some());
        assert_eq!(procs_cpu(&[]), Some(CpuTime::default()));
    }

    #[test]
    fn a_listening_socket_is_traced_to_nobody_else() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Our own pid is skipped on purpose (the tool never measures itself).
        assert!(!pids_listening_on(port).contains(&std::process::id()));
    }
}
