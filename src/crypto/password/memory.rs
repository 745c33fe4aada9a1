//! argon2's working memory, reused. Each argon2id hash needs `m` KiB (19 MiB at the
//! defaults). Allocated per hash on whichever blocking thread ran it, glibc kept those
//! blocks in per-thread arenas (and raised its mmap threshold after the first free), so
//! RSS grew to several hundred MiB after a burst of logins. Here the memory is allocated
//! once per permitted concurrent hash and handed from one hash to the next.

use std::sync::Mutex;

use argon2::Block;

/// Buffers of `blocks` argon2 blocks (1 KiB each), at most `capacity` kept.
pub(super) struct MemoryPool {
    free: Mutex<Vec<Vec<Block>>>,
    blocks: usize,
    capacity: usize,
}

impl MemoryPool {
    /// An empty pool; buffers are allocated on first use.
    pub(super) fn new(capacity: usize, blocks: usize) -> Self {
        Self {
            free: Mutex::new(Vec::with_capacity(capacity)),
            blocks,
            capacity,
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
