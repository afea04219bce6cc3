//! One UMEM frame lent by an AF_XDP socket ([`super::XskIo`]) to the code that parses a
//! received frame in place or builds a reply in place.
//!
//! Invariants (what makes the safe accessors sound):
//! - A [`UmemFrame`] is made only by [`UmemFrame::new`], whose caller promises that the bytes
//!   belong to a live UMEM mapping and to one frame that user space owns: taken off the rx or
//!   completion ring (or never given to the kernel) and on no ring, so the kernel neither reads
//!   nor writes it.
//! - The socket does not give the frame back to a ring while a `UmemFrame` for it exists: rx
//!   views live in the socket and are borrowed by the [`crate::worker::RxBatch`] (the borrow
//!   checker keeps the socket from receiving again meanwhile); tx frames lent to a
//!   [`crate::worker::TxBatch`] are moved out of it before their descriptors are produced to the
//!   TX ring.
//! - The mapping outlives every `UmemFrame`: an rx view lives in the socket, which holds the
//!   UMEM; a `TxBatch` holding lent frames also holds a [`Lender`], a reference on the UMEM.
//! - A `UmemFrame` is neither `Clone` nor `Copy`, so `as_mut_slice(&mut self)` is the only way
//!   to write its bytes, and there is never a slice over more than one frame (the kernel writes
//!   the other frames concurrently).

use std::fmt;
use std::ptr::NonNull;

/// A frame of a UMEM, owned by user space while this value exists.
pub(crate) struct UmemFrame {
    ptr: NonNull<u8>,
    len: usize,
    addr: u64,
}

// SAFETY: a `UmemFrame` is an exclusive handle on bytes no one else touches (see the module
// invariants); moving it to another thread moves that exclusivity with it, like a `Box<[u8]>`.
unsafe impl Send for UmemFrame {}
// SAFETY: shared access only reads (`as_slice`); writing needs `&mut self`.
unsafe impl Sync for UmemFrame {}

impl UmemFrame {
    /// # Safety
    ///
    /// `ptr..ptr + len` lies inside one frame of a UMEM mapping that stays mapped for as long
    /// as this value (or a borrow of it) is used; the frame is owned by user space (on no ring)
    /// for as long, and no other reference to those bytes is used meanwhile.
    pub(crate) unsafe fn new(ptr: NonNull<u8>, len: usize, addr: u64) -> Self {
        UmemFrame { ptr, len, addr }
    }

    /// The frame's bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `new`'s contract: the bytes are mapped, owned by user space and not written
        // by anyone while `self` is borrowed (writing needs `&mut self`).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The frame's bytes, to build in.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `new`'s contract, and `&mut self` excludes every other borrow of the bytes.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl fmt::Debug for UmemFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UmemFrame")
            .field("addr", &self.addr)
            .field("len", &self.len)
            .finish()
    }
}

/// Who lent a [`crate::worker::TxBatch`] its frames: the socket's id (only that socket takes
/// them back and transmits them) and a reference that keeps the UMEM mapped while the batch
/// holds them, even if the socket is dropped first.
pub(crate) struct Lender {
    pub(crate) owner: u64,
    _umem: xsk_rs::Umem,
}

impl Lender {
    pub(crate) fn new(owner: u64, umem: xsk_rs::Umem) -> Self {
        Lender { owner, _umem: umem }
    }
}

impl fmt::Debug for Lender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lender")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}
