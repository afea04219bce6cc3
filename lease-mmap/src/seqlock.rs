//! A slot's version/state word and its two record images: claim by CAS, write the image the
//! current version does not live in, publish with version + 1; readers take seqlock
//! snapshots. Generic over the atomics so the loom models run this exact code.
//!
//! Word: `version << 1 | WRITING`. Version `v` lives in image `v % 2`. A writer claims
//! `v << 1` → `v << 1 | 1` (CAS, Acquire), stores image `(v + 1) % 2` (Release), publishes
//! `(v + 1) << 1` (Release). A reader loads the word (Acquire), copies image `v % 2`
//! (Acquire), and re-loads the word: equal means no writer started on image `v % 2`, since
//! one that did must have moved the word past `v << 1 | 1` first (it writes image `v % 2`
//! only for version `v + 2`). Readers therefore never wait for a writer of `v + 1`.
#![forbid(unsafe_code)]

use crate::sync::{Cell, Ordering, Word, spin};

/// A slot's word and images, borrowed from wherever they live (a mapping, or a loom model).
pub(crate) struct SlotRef<'a, W, C> {
    pub(crate) word: &'a W,
    pub(crate) images: [&'a [C]; 2],
}

const WRITING: u64 = 1;

impl<W: Word, C: Cell> SlotRef<'_, W, C> {
    /// Current version, and whether a writer holds the slot.
    pub(crate) fn version(&self) -> (u64, bool) {
        let w = self.word.load(Ordering::Acquire);
        (w >> 1, w & WRITING != 0)
    }

    /// Copy the current image into `out` and return its version; `extra` may read further
    /// memory the image points to (inside the same snapshot) and return a value.
    pub(crate) fn read<T>(&self, out: &mut [u32], mut extra: impl FnMut(&[u32]) -> T) -> (u64, T) {
        loop {
            let w1 = self.word.load(Ordering::Acquire);
            let v = w1 >> 1;
            let img = self.images[usize::from(v & 1 == 1)];
            for (o, c) in out.iter_mut().zip(img.iter()) {
                *o = c.load(Ordering::Acquire);
            }
            let t = extra(out);
            let w2 = self.word.load(Ordering::Relaxed);
            if w2 >> 1 == v {
                // Same version: nobody began writing image `v % 2` (that needs version v+1
                // published and then claimed).
                return (v, t);
            }
            spin();
        }
    }

    /// Claim the slot if it is still at `expected`; on failure, the version it is at now.
    pub(crate) fn claim(&self, expected: u64) -> Result<(), u64> {
        self.word
            .compare_exchange(
                expected << 1,
                expected << 1 | WRITING,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .map(drop)
            .map_err(|now| now >> 1)
    }

    /// Claim the slot at whatever version it is (for index/overflow reclaim checks); `None`
    /// if a writer holds it.
    pub(crate) fn try_lock(&self) -> Option<u64> {
        let w = self.word.load(Ordering::Relaxed);
        if w & WRITING != 0 {
            return None;
        }
        self.claim(w >> 1).ok().map(|()| w >> 1)
    }

    /// While holding the claim at `version`: the image of `version` (`current`) or the other.
    pub(crate) fn image(&self, version: u64, current: bool) -> &[C] {
        self.images[usize::from((version & 1 == 1) == current)]
    }

    /// While holding the claim at `version`: copy one image.
    pub(crate) fn load_image(&self, version: u64, current: bool, out: &mut [u32]) {
        for (o, c) in out.iter_mut().zip(self.image(version, current).iter()) {
            *o = c.load(Ordering::Relaxed);
        }
    }

    /// While holding the claim at `version`: write image `new_version % 2` and publish
    /// `new_version` (normally `version + 1`; recovery installs newer versions directly).
    pub(crate) fn publish(&self, new_version: u64, image: &[u32]) {
        let target = self.images[usize::from(new_version & 1 == 1)];
        for (c, v) in target.iter().zip(image) {
            c.store(*v, Ordering::Release);
        }
        self.word.store(new_version << 1, Ordering::Release);
    }

    /// Give the claim back without changing anything.
    pub(crate) fn release(&self, version: u64) {
        self.word.store(version << 1, Ordering::Release);
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicU32, AtomicU64};

    use super::SlotRef;

    struct Slot {
        word: AtomicU64,
        a: [AtomicU32; 2],
        b: [AtomicU32; 2],
    }

    impl Slot {
        fn new() -> Self {
            Slot {
                word: AtomicU64::new(0),
                a: [AtomicU32::new(0), AtomicU32::new(0)],
                b: [AtomicU32::new(0), AtomicU32::new(0)],
            }
        }
        fn r(&self) -> SlotRef<'_, AtomicU64, AtomicU32> {
            SlotRef {
                word: &self.word,
                images: [&self.a, &self.b],
            }
        }
    }

    /// Two workers race to claim the same FREE slot at version 0: exactly one wins.
    #[test]
    fn loom_cas_claim_exactly_one_winner() {
        loom::model(|| {
            let slot = Arc::new(Slot::new());
            let handles: Vec<_> = (1..=2u32)
                .map(|me| {
                    let slot = Arc::clone(&slot);
                    loom::thread::spawn(move || {
                        let s = slot.r();
                        if s.claim(0).is_ok() {
                            s.publish(1, &[me, me]);
                            true
                        } else {
                            false
                        }
                    })
                })
                .collect();
            let wins: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            assert_eq!(wins.iter().filter(|w| **w).count(), 1);
            let mut out = [0; 2];
            let (v, ()) = slot.r().read(&mut out, |_| ());
            assert_eq!(v, 1);
            let winner = if wins[0] { 1 } else { 2 };
            assert_eq!(out, [winner, winner]);
        });
    }

    /// A reader racing two consecutive updates sees a whole image, never a mix.
    #[test]
    fn loom_seqlock_read_vs_update() {
        loom::model(|| {
            let slot = Arc::new(Slot::new());
            let w = {
                let slot = Arc::clone(&slot);
                loom::thread::spawn(move || {
                    let s = slot.r();
                    for v in 0..2u64 {
                        s.claim(v).unwrap();
                        let x = u32::try_from(v + 1).unwrap() * 10;
                        s.publish(v + 1, &[x, x + 1]);
                    }
                })
            };
            let mut out = [0; 2];
            let (v, ()) = slot.r().read(&mut out, |_| ());
            match v {
                0 => assert_eq!(out, [0, 0]),
                1 => assert_eq!(out, [10, 11]),
                2 => assert_eq!(out, [20, 21]),
                _ => panic!("impossible version {v}"),
            }
            w.join().unwrap();
        });
    }
}
