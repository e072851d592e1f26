//! What `/proc` says about a process: resident memory (`/proc/PID/status`, `VmRSS`) and CPU
//! time (`/proc/PID/stat`, utime + stime). Linux only; elsewhere these return errors.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&text).ok_or_else(|| anyhow!("{path}: no VmRSS line"))
}

/// The `VmRSS:   1234 kB` line of a `/proc/PID/status` text, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let unit = parts.next().unwrap_or("kB");
    let scale = match unit {
        "kB" => 1024,
        "mB" | "MB" => 1024 * 1024,
        _ => 1,
    };
    Some(value * scale)
}

/// CPU time (user + system) `pid` has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_stat_ticks(&text).ok_or_else(|| anyhow!("{path}: unexpected format"))?;
    Ok(Duration::from_nanos(
        (ticks as u128 * 1_000_000_000 / clock_ticks_per_sec() as u128) as u64,
    ))
}

/// CPU time this process has used so far.
pub fn own_cpu_time() -> Result<Duration> {
    cpu_time(std::process::id())
}

/// utime + stime, in clock ticks, from a `/proc/PID/stat` line. The command name (field 2) is
/// in parentheses and may hold spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After ')': state(3) ppid(4) ... utime(14) stime(15), so utime is the 12th field here.
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Raises this process's open-file limit to its hard limit (needed for `connection-count`).
/// Returns the soft limit in force afterwards.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim = want;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is u32 on some targets
    let soft = lim.rlim_cur as u64;
    soft
}

/// A before/after reading of a broker's CPU time; `None` when no pid was given.
#[derive(Clone, Copy, Debug)]
pub struct CpuMark {
    pub broker: Option<Duration>,
    pub tool: Option<Duration>,
}

impl CpuMark {
    pub fn now(pid: Option<u32>) -> CpuMark {
        CpuMark {
            broker: pid.and_then(|p| cpu_time(p).ok()),
            tool: own_cpu_time().ok(),
        }
    }

    /// CPU used since `earlier`: (broker, tool).
    pub fn since(&self, earlier: &CpuMark) -> (Option<Duration>, Option<Duration>) {
        let d = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => Some(a.saturating_sub(b)),
            _ => None,
        };
        (d(self.broker, earlier.broker), d(self.tool, earlier.tool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tbeam.smp\nVmPeak:\t 999 kB\nVmRSS:\t  129524 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(129_524 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn stat_ticks_skip_a_command_name_with_spaces_and_parens() {
        let stat = "3281 (beam (smp) x) S 1 3281 3281 0 -1 4194560 1 2 3 4 250 37 0 0 20 0 95 0";
        assert_eq!(parse_stat_ticks(stat), Some(287));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn own_process_has_rss_and_cpu() {
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
        assert!(own_cpu_time().is_ok());
    }
}
