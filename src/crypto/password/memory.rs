//! argon2's working memory, reused. Each argon2id hash needs `m` KiB (19 MiB at the
//! defaults). Allocated per hash on whichever blocking thread ran it, glibc kept those
//! blocks in per-thread arenas (and raised its mmap threshold after the first free), so
//! RSS grew to several hundred MiB after a burst of logins. Here the memory is allocated
//! once per permitted concurrent hash and handed from one hash to the next, and given back
//! to the system once no hash has run for a while (`PasswordHasher`'s `IDLE_RELEASE`), so
//! RSS returns near its idle value after a burst of sign-ins, and the blocks a hash
//! derived from a password do not stay in the process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use argon2::Block;

/// Buffers of `blocks` argon2 blocks (1 KiB each), at most `capacity` kept.
pub(super) struct MemoryPool {
    free: Mutex<Vec<Vec<Block>>>,
    blocks: usize,
    capacity: usize,
    /// How many times a waiting buffer was given back (`release`).
    released: AtomicUsize,
}

impl MemoryPool {
    /// An empty pool; buffers are allocated on first use.
    pub(super) fn new(capacity: usize, blocks: usize) -> Self {
        Self {
            free: Mutex::new(Vec::with_capacity(capacity)),
            blocks,
            capacity,
            released: AtomicUsize::new(0),
        }
    }

    /// Runs `f` with `needed` blocks of memory: a pooled buffer when `needed` fits (the
    /// configured cost), a fresh one for a hash stored with a larger cost than today's.
    /// The caller bounds concurrency (the hasher's semaphore), so a pooled buffer is free.
    pub(super) fn with<T>(&self, needed: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        if needed > self.blocks {
            let mut once = vec![Block::new(); needed];
            return f(&mut once);
        }
        let taken = self.lock().pop();
        let mut buffer = taken.unwrap_or_else(|| vec![Block::new(); self.blocks]);
        let out = f(&mut buffer[..needed]);
        let mut free = self.lock();
        if free.len() < self.capacity {
            free.push(buffer);
        }
        out
    }

    /// Gives the pages of the buffers that wait for reuse back to the system: RSS falls by
    /// their size, and what a hash left in them (blocks derived from a password) is gone.
    /// The buffers stay allocated; a later hash that takes one gets zeroed pages from the
    /// kernel as it touches them. A hash that runs meanwhile keeps its own buffer.
    ///
    /// Dropping the buffers would not reliably do it: glibc raises its mmap threshold to
    /// the size of a mapped block once it is freed (the start-up dummy hash's), so
    /// buffers of that size can come from the hashing threads' arenas, which glibc trims
    /// only once their free top passes twice that threshold.
    pub(super) fn release(&self) {
        for buffer in self.lock().iter_mut() {
            discard_pages(buffer);
            self.released.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many times a waiting buffer was given back.
    #[cfg(test)]
    pub(super) fn released(&self) -> usize {
        self.released.load(Ordering::Relaxed)
    }

    /// How many buffers wait for reuse.
    #[cfg(test)]
    pub(super) fn pooled(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Block>>> {
        // A panic while holding the lock cannot leave the list inconsistent.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `madvise(MADV_DONTNEED)` over the whole pages inside `buffer` (madvise(2)): the kernel
/// frees them, and the next access to each maps a page of zeros.
#[cfg(target_os = "linux")]
fn discard_pages(buffer: &mut [Block]) {
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return,
    };
    let start = buffer.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(buffer);
    let (first, last) = (start.next_multiple_of(page), end / page * page);
    if last <= first {
        return;
    }
    // SAFETY: [first, last) lies inside `buffer`, which this function borrows exclusively,
    // and holds whole pages of the heap, which is private anonymous memory: after
    // MADV_DONTNEED its contents read as zeros, and all zeros is a valid `Block` (an array
    // of integers). The allocator's own bookkeeping sits outside the buffer.
    let rc = unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            last - first,
            libc::MADV_DONTNEED,
        )
    };
    if rc != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "could not give the idle password hashing memory back"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn discard_pages(_buffer: &mut [Block]) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// 64 blocks of 1 KiB: whole pages inside the buffer whatever its alignment.
    const BLOCKS: usize = 64;

    fn fill(pool: &MemoryPool, byte: u64) {
        pool.with(BLOCKS, |blocks| {
            for b in blocks.iter_mut() {
                for word in b.as_mut().iter_mut() {
                    *word = byte;
                }
            }
        });
    }

    fn nonzero_words(pool: &MemoryPool) -> usize {
        pool.with(BLOCKS, |blocks| {
            blocks
                .iter()
                .flat_map(|b| b.as_ref().iter())
                .filter(|w| **w != 0)
                .count()
        })
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn released_buffers_lose_their_contents_and_stay_usable() {
        let pool = MemoryPool::new(1, BLOCKS);
        fill(&pool, 0x5a5a_5a5a_5a5a_5a5a);
        assert_eq!(pool.pooled(), 1);
        assert_eq!(nonzero_words(&pool), BLOCKS * 128, "reused as it was left");
        pool.release();
        assert_eq!(pool.pooled(), 1, "the buffer stays allocated");
        // Only the partial pages at either end can keep what was written.
        let page_words = 4096 / 8;
        assert!(
            nonzero_words(&pool) <= 2 * page_words,
            "the buffer's whole pages were given back"
        );
        fill(&pool, 7);
        assert_eq!(nonzero_words(&pool), BLOCKS * 128);
    }
}
