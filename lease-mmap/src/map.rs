//! The only module with `unsafe`: the shared file mapping of a table and its preallocation.
//!
//! Invariants:
//! - A [`Mapping`] owns a `MAP_SHARED` read-write mapping of one table file, from the end of
//!   the header to the end of the file. The file is preallocated (`posix_fallocate`) to its
//!   full length before it is mapped, so stores into the mapping never fault with SIGBUS on
//!   ENOSPC, and the file is never truncated while mapped (the data directory is locked with
//!   an exclusive `flock` by [`crate::Store`], so no other tandem process maps it).
//! - Every access to mapped memory goes through atomics ([`Mapping::words`], [`Mapping::cells`]):
//!   no `&[u8]`/`&mut [u8]` view of the mapping is ever created, so concurrent readers and
//!   writers on different threads never race on non-atomic memory. The kernel may read the
//!   pages at any time for writeback; that is the torn-write case `FORMAT.md` argues about,
//!   not a memory-model concern.
//! - The mapping is page aligned, so every offset that is a multiple of 8 (4) is aligned for
//!   `AtomicU64` (`AtomicU32`); the accessors check offset, alignment and bounds and panic on a
//!   violation (a bug in the caller's layout arithmetic, never reachable from file contents,
//!   which are bounds-checked before they become offsets).
//! - Memory ordering is the callers' business ([`crate::seqlock`]); this module only hands
//!   out references whose lifetime is tied to the mapping.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU64};

use memmap2::{MmapOptions, MmapRaw};

/// A shared read-write mapping of `len` bytes of a file, starting at `offset`.
pub(crate) struct Mapping {
    map: MmapRaw,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("len", &self.map.len())
            .finish()
    }
}

/// Allocate the blocks of `file` up to `len` bytes (extending it), so that later stores into a
/// mapping of it cannot fail for lack of space.
pub(crate) fn preallocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::other("file too large"))?;
    // SAFETY: `posix_fallocate` only reads its integer arguments; the fd is open and owned
    // by `file`, which outlives the call.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    match rc {
        0 => Ok(()),
        // Filesystems without fallocate: fall back to an explicit length (sparse). Writes
        // below may then SIGBUS on ENOSPC; FORMAT.md lists this as a media assumption.
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(u64::try_from(len).unwrap_or(0)),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

impl Mapping {
    /// Map `len` bytes of `file` from `offset` (a multiple of the page size).
    pub(crate) fn new(file: &File, offset: u64, len: usize) -> io::Result<Self> {
        let file_len = file.metadata()?.len();
        let end = offset
            .checked_add(u64::try_from(len).map_err(|_| io::Error::other("mapping too large"))?)
            .ok_or_else(|| io::Error::other("mapping too large"))?;
        if end > file_len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than its header says",
            ));
        }
        // `map_raw` is safe to call: it hands out no references. Using the memory is what
        // needs the invariants above (preallocated, never truncated, atomics only).
        let map = MmapOptions::new().offset(offset).len(len).map_raw(file)?;
        Ok(Self { map })
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// `n` 64-bit atomic words starting at byte `offset`.
    pub(crate) fn words(&self, offset: usize, n: usize) -> &[AtomicU64] {
        let ptr = self.checked(offset, n, 8);
        // SAFETY: `checked` proved `offset .. offset + 8n` lies inside the mapping and
        // `ptr` is 8-aligned (the mapping is page aligned and `offset % 8 == 0`). AtomicU64
        // has the size and bit validity of u64 and every bit pattern is a valid u64. The
        // memory lives as long as `self.map`, which the returned borrow is tied to, and it is
        // only ever accessed through atomics (module invariants).
        unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU64>(), n) }
    }

    /// `n` 32-bit atomic cells starting at byte `offset`.
    pub(crate) fn cells(&self, offset: usize, n: usize) -> &[AtomicU32] {
        let ptr = self.checked(offset, n, 4);
        // SAFETY: as in `words`, with 4-byte size and alignment: in bounds, aligned, valid for
        // every bit pattern, lives as long as the borrow of `self`, atomics-only access.
        unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU32>(), n) }
    }

    fn checked(&self, offset: usize, n: usize, size: usize) -> *const u8 {
        let end = n.checked_mul(size).and_then(|b| b.checked_add(offset));
        assert!(
            offset.is_multiple_of(size) && end.is_some_and(|e| e <= self.map.len()),
            "mapping access out of bounds or misaligned: offset {offset}, {n} x {size}"
        );
        self.map.as_ptr().wrapping_add(offset)
    }

    /// Write `len` bytes from `offset` back and wait for it (`msync(MS_SYNC)` of their pages).
    pub(crate) fn flush_range(&self, offset: usize, len: usize) -> io::Result<()> {
        self.map.flush_range(offset, len)
    }

    /// Write the mapping back and wait for it (`msync(MS_SYNC)`).
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }
}
