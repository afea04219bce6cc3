//! Atomics come through here so loom can replace them in model tests (`--cfg loom`).
//!
//! The seqlock code in [`crate::seqlock`] is generic over [`Word`] and [`Cell`], implemented
//! for the std atomics (which the mapped tables are made of) and, under `--cfg loom`, for
//! loom's, so the same claim/publish/read code runs in the loom models.

pub(crate) use std::sync::atomic::Ordering;

/// A 64-bit atomic word (a slot's version/state word, an index entry, a block owner).
pub(crate) trait Word {
    fn load(&self, order: Ordering) -> u64;
    fn store(&self, v: u64, order: Ordering);
    fn compare_exchange(&self, cur: u64, new: u64, ok: Ordering, err: Ordering)
    -> Result<u64, u64>;
}

/// A 32-bit atomic cell of a record image.
pub(crate) trait Cell {
    fn load(&self, order: Ordering) -> u32;
    fn store(&self, v: u32, order: Ordering);
}

macro_rules! impl_atomics {
    ($u64:ty, $u32:ty) => {
        impl Word for $u64 {
            fn load(&self, order: Ordering) -> u64 {
                <$u64>::load(self, order)
            }
            fn store(&self, v: u64, order: Ordering) {
                <$u64>::store(self, v, order)
            }
            fn compare_exchange(
                &self,
                cur: u64,
                new: u64,
                ok: Ordering,
                err: Ordering,
            ) -> Result<u64, u64> {
                <$u64>::compare_exchange(self, cur, new, ok, err)
            }
        }
        impl Cell for $u32 {
            fn load(&self, order: Ordering) -> u32 {
                <$u32>::load(self, order)
            }
            fn store(&self, v: u32, order: Ordering) {
                <$u32>::store(self, v, order)
            }
        }
    };
}

impl_atomics!(std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU32);
#[cfg(loom)]
impl_atomics!(loom::sync::atomic::AtomicU64, loom::sync::atomic::AtomicU32);

/// Back off while another thread holds something we wait for.
#[inline]
pub(crate) fn spin() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
