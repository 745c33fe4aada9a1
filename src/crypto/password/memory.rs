//! argon2's working memory, reused. Each argon2id hash needs `m` KiB (19 MiB at the
//! defaults). Allocated per hash on whichever blocking thread ran it, glibc kept those
//! blocks in per-thread arenas (and raised its mmap threshold after the first free), so
//! RSS grew to several hundred MiB after a burst of logins. Here the memory is allocated
//! once per permitted concurrent hash and handed from one hash to the next, and erased and
//! given back to the system once no hash has run for a while (`PasswordHasher`'s
//! `IDLE_RELEASE`), so RSS returns near its idle value after a burst of sign-ins and the
//! blocks a hash derived from a password do not stay in the process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use argon2::Block;
use zeroize::Zeroize;

/// A buffer waiting for reuse.
struct Buffer {
    blocks: Vec<Block>,
    /// A hash used it since it was last erased.
    dirty: bool,
}

/// Buffers of `blocks` argon2 blocks (1 KiB each), at most `capacity` kept.
pub(super) struct MemoryPool {
    free: Mutex<Vec<Buffer>>,
    blocks: usize,
    capacity: usize,
    /// How many times a waiting buffer's pages went back to the system (`release`).
    given_back: AtomicUsize,
}

impl MemoryPool {
    /// An empty pool; buffers are allocated on first use.
    pub(super) fn new(capacity: usize, blocks: usize) -> Self {
        Self {
            free: Mutex::new(Vec::with_capacity(capacity)),
            blocks,
            capacity,
            given_back: AtomicUsize::new(0),
        }
    }

    /// Runs `f` with `needed` blocks of memory: a pooled buffer when `needed` fits (the
    /// configured cost), a fresh one for a hash stored with a larger cost than today's
    /// (erased before it is freed). The caller bounds concurrency (the hasher's
    /// semaphore), so a pooled buffer is free.
    pub(super) fn with<T>(&self, needed: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        if needed > self.blocks {
            let mut once = vec![Block::new(); needed];
            let out = f(&mut once);
            once.iter_mut().for_each(erase);
            return out;
        }
        let taken = self.lock().pop().map(|b| b.blocks);
        let mut blocks = taken.unwrap_or_else(|| vec![Block::new(); self.blocks]);
        let out = f(&mut blocks[..needed]);
        let mut free = self.lock();
        if free.len() < self.capacity {
            free.push(Buffer {
                blocks,
                dirty: true,
            });
        }
        out
    }

    /// Erases the buffers that wait for reuse and gives their pages back to the system:
    /// RSS falls by their size, and what a hash left in them (blocks derived from a
    /// password) is gone. The buffers stay allocated; a later hash that takes one gets
    /// zeroed pages from the kernel as it touches them (page faults over its 19 MiB, a few
    /// milliseconds against a 15 ms hash). A hash that runs meanwhile keeps its own
    /// buffer; a buffer already erased is left alone.
    ///
    /// Dropping the buffers would not reliably do it: unless the threshold was set by
    /// `mallopt` or `MALLOC_MMAP_THRESHOLD_`, glibc raises its mmap threshold to the size
    /// of a mapped block once it is freed (up to 32 MiB: the start-up dummy hash's 19 MiB),
    /// so buffers of that size can come from the hashing threads' arenas, which glibc
    /// trims only once their free top passes twice that threshold.
    pub(super) fn release(&self) {
        for buffer in self.lock().iter_mut().filter(|b| b.dirty) {
            if erase_and_give_back(&mut buffer.blocks) {
                self.given_back.fetch_add(1, Ordering::Relaxed);
            }
            buffer.dirty = false;
        }
    }

    /// How many times a waiting buffer's pages went back to the system.
    #[cfg(test)]
    pub(super) fn given_back(&self) -> usize {
        self.given_back.load(Ordering::Relaxed)
    }

    /// How many buffers wait for reuse.
    #[cfg(test)]
    pub(super) fn pooled(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Buffer>> {
        // A panic while holding the lock cannot leave the list inconsistent.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Zeroes a block in a way the compiler keeps even right before the memory is freed.
fn erase(block: &mut Block) {
    block.as_mut().zeroize();
}

/// The page size, if the system tells it.
#[cfg(target_os = "linux")]
fn page_size() -> Option<usize> {
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => usize::try_from(p).ok(),
        _ => None,
    }
}

/// Zeroes the blocks that share a page with memory outside `blocks`, and has the kernel
/// free the whole pages between them (`madvise(MADV_DONTNEED)`, madvise(2): the next
/// access to each maps a page of zeros). Returns whether the pages went back; if they did
/// not, every block was zeroed instead.
#[cfg(target_os = "linux")]
fn erase_and_give_back(blocks: &mut [Block]) -> bool {
    let Some(page) = page_size() else {
        blocks.iter_mut().for_each(erase);
        return false;
    };
    let block = std::mem::size_of::<Block>();
    let start = blocks.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(blocks);
    let (first, last) = (start.next_multiple_of(page), end / page * page);
    if last <= first {
        blocks.iter_mut().for_each(erase);
        return false;
    }
    // Blocks are 64-byte aligned, not page aligned: the ones at either end that reach
    // outside [first, last) are zeroed here, so no block keeps what a hash left in it.
    let head = (first - start).div_ceil(block);
    let tail = (last - start) / block;
    blocks[..head].iter_mut().for_each(erase);
    blocks[tail..].iter_mut().for_each(erase);
    // SAFETY: [first, last) lies inside `blocks`, which this function borrows exclusively,
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
            "could not give the idle password hashing memory back; erased it"
        );
        blocks[head..tail].iter_mut().for_each(erase);
        return false;
    }
    true
}

#[cfg(not(target_os = "linux"))]
fn erase_and_give_back(blocks: &mut [Block]) -> bool {
    blocks.iter_mut().for_each(erase);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(pool: &MemoryPool, blocks: usize, word: u64) {
        pool.with(blocks, |blocks| {
            for b in blocks.iter_mut() {
                b.as_mut().fill(word);
            }
        });
    }

    fn nonzero_words(pool: &MemoryPool, blocks: usize) -> usize {
        pool.with(blocks, |blocks| {
            blocks
                .iter()
                .flat_map(|b| b.as_ref().iter())
                .filter(|w| **w != 0)
                .count()
        })
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn released_buffers_are_erased_given_back_and_stay_usable() {
        // At least two whole pages inside the buffer whatever its alignment.
        let blocks = 3 * page_size().unwrap() / std::mem::size_of::<Block>() + 1;
        let pool = MemoryPool::new(1, blocks);
        fill(&pool, blocks, 0x5a5a_5a5a_5a5a_5a5a);
        assert_eq!(pool.pooled(), 1);
        assert_eq!(nonzero_words(&pool, blocks), blocks * 128, "reused as left");
        pool.release();
        assert_eq!(pool.given_back(), 1, "its whole pages went back");
        assert_eq!(pool.pooled(), 1, "the buffer stays allocated");
        assert_eq!(nonzero_words(&pool, blocks), 0, "every block was erased");
        fill(&pool, blocks, 7);
        assert_eq!(
            nonzero_words(&pool, blocks),
            blocks * 128,
            "and it still works"
        );
    }

    #[test]
    fn an_erased_buffer_is_not_erased_again_until_used() {
        let blocks = 16;
        let pool = MemoryPool::new(1, blocks);
        fill(&pool, blocks, 1);
        pool.release();
        let once = pool.given_back();
        pool.release();
        assert_eq!(pool.given_back(), once, "nothing used it since");
        fill(&pool, blocks, 1);
        pool.release();
        assert_eq!(nonzero_words(&pool, blocks), 0);
    }
}
