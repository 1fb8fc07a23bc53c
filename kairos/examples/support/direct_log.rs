//! Shared by the benchmark harnesses that write a durable log of their own
//! (`durable_floor_server`, `bare_durable_server`); not an example itself. Linux only.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Direct I/O wants block-aligned buffers, offsets and lengths.
pub const BLOCK: usize = 4096;

/// Size of the preallocated log; writers wrap around at its end.
pub const LOG_BYTES: u64 = 64 << 20;

/// Creates `path` as [`LOG_BYTES`] of real zeros and opens it for `O_DIRECT | O_DSYNC` writes.
///
/// Zeros, so that no later write changes the file's metadata; written with direct I/O, so that
/// no page of it sits in the cache (direct writes over cached pages would also pay for
/// invalidating them, which a real log never does).
pub fn preallocate(path: &Path) -> anyhow::Result<File> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let mut raw = vec![0u8; (1 << 20) + BLOCK];
    let start = raw.as_ptr().align_offset(BLOCK);
    let zeros = raw
        .get_mut(start..start + (1 << 20))
        .ok_or_else(|| anyhow::anyhow!("no aligned buffer"))?;
    for _ in 0..(LOG_BYTES >> 20) {
        f.write_all(zeros)?;
    }
    f.sync_all()?;
    drop(f);
    Ok(std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(path)?)
}
