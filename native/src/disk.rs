//! The disk alarm: like RabbitMQ's `disk_free_limit` (default 50 MB), publishers are paused
//! while the file system holding the data directory has less free space than the limit, so
//! persistent messages cannot fill the disk and leave the store unable to write.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{info, warn};

use crate::alarms::{self, Alarms, Resource};

/// RabbitMQ's default `disk_free_limit`.
pub const DEFAULT_LIMIT: u64 = 50_000_000;

/// Bytes free to an unprivileged writer on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a zeroed statvfs for the call to fill.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Checks free space every `period`, raising or clearing the disk alarm on crossings.
pub async fn monitor(alarms: Alarms, dir: PathBuf, limit: u64, period: Duration) {
    info!(limit_bytes = limit, dir = %dir.display(), "disk free limit set");
    let read = || match free_bytes(&dir) {
        Ok(free) => Some((free, free < limit)),
        Err(e) => {
            warn!(error = %e, "cannot read free disk space");
            None
        }
    };
    alarms::watch(alarms, Resource::Disk, limit, period, read).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_directory_has_some_free_space() {
        assert!(free_bytes(Path::new(".")).unwrap() > 0);
        assert!(free_bytes(Path::new("/no/such/dir")).is_err());
    }
}
