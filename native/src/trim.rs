//! Memory given back after a burst. glibc's malloc keeps what a drained backlog freed in its
//! arenas instead of returning it to the system: 2.5 M queued messages, consumed and gone, left
//! an idle broker at 638 MB resident, and 6.8 MB once `malloc_trim` ran. Resident memory is
//! what the memory alarm reads, so a burst that ended above the watermark would keep
//! publishers blocked with nothing queued. So, every `period`, when resident memory exceeds
//! what the allocator has handed out by more than [`TRIM_ABOVE`], it is told to return the
//! rest. (Its count of free bytes would not do: pages it returns stay counted as free.)

use std::time::Duration;

/// Resident memory beyond what is allocated that the allocator may keep for reuse (a busy
/// broker's churn stays below it, so the hot path does not fault pages back in every second;
/// code and stacks count here too, a few MB).
const TRIM_ABOVE: usize = 64 << 20;

/// Runs forever; a no-op where the allocator is not glibc's.
pub async fn give_back(period: Duration) {
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let Some(kept) = kept_free() else {
            continue;
        };
        if kept > TRIM_ABOVE {
            trim();
            tracing::debug!(kept, "returned free memory to the system");
        }
    }
}

/// Resident bytes beyond those allocated.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn kept_free() -> Option<usize> {
    let rss = crate::memory::resident_bytes()? as usize;
    // SAFETY: reads the allocator's own statistics; no pointer is passed.
    let info = unsafe { libc::mallinfo2() };
    Some(rss.saturating_sub(info.uordblks + info.hblkhd))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: releases only free pages the allocator holds; no pointer is passed.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn kept_free() -> Option<usize> {
    None
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_memory_is_counted_and_trimmed_away() {
        // Blocks with small live allocations between them, as a drained backlog leaves its
        // freed messages among live ones: free() cannot give those back by itself (only the
        // top of a heap), and the allocator keeps them.
        let mut blocks = Vec::new();
        let mut pins = Vec::new();
        for i in 0..4096 {
            blocks.push(vec![i as u8; 32 << 10]);
            pins.push(vec![i as u8; 64]);
        }
        drop(blocks);
        let before = kept_free().expect("readable");
        assert!(before > 64 << 20, "{before}");
        trim();
        let after = kept_free().expect("readable");
        assert!(after < 64 << 20, "{after}");
        assert_eq!(pins.len(), 4096);
    }
}
