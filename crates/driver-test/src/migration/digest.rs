//! The memory digest carried by the END frame, kept up to date incrementally.
//!
//! Every page holding non-zero data has a 128-bit page hash: the first 16
//! bytes of SHA-256 over a domain tag, the page's index and its content. A
//! page reading as zeros has hash 0. The memory's digest is SHA-256 over the
//! tag, the page count and the **sum modulo 2^128** of all page hashes.
//!
//! Why a sum: a page that changes only replaces its own term (subtract the
//! old hash, add the new one), so the digest can be maintained page by page
//! while the guest still runs, and the pass with the guest paused only hashes
//! what was written since the last update. Why it still proves the transfer:
//! one wrong or missing page changes the sum by `new − old`, which is zero
//! only if two different (index, content) pairs collide in 128 bits of
//! SHA-256, i.e. with probability about 2^-128; several wrong pages cancel
//! out with the same probability since their terms are independent hashes.
//! Including the index in each hash makes a page at the wrong place a wrong
//! page. (A sum, unlike a Merkle tree, is not meant to resist someone who
//! chooses pages to forge a collision; the source is trusted here, the check
//! is against transfer and dirty-tracking bugs. XOR would do as well for
//! that; the sum keeps two equal terms from cancelling.)
//!
//! Both sides compute it from the memory they hold, never from what was sent
//! or received: [`PageDigests::refresh`] re-hashes the pages the memory itself
//! reports as written since the last refresh (`GuestMemory::take_stale_pages`,
//! a bitmap of its own, apart from the one the migration's dirty tracking
//! consumes). So a dirty page the source failed to send, or a page corrupted
//! on the destination, still makes the digests differ. A zero page counts as
//! nothing, so an idle 1 GiB guest costs nothing to check.

use std::sync::Arc;

use migrated_core::{Error, Result};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::memory::{GuestMemory, CHUNK_PAGES, PAGE_SIZE};

/// Separates this digest from any other use of SHA-256 over the same bytes.
const DOMAIN_TAG: &[u8] = b"migrated test memory digest v3";

/// Page hashes of one chunk of guest memory (0 = zero page).
type Chunk = Box<[u128; CHUNK_PAGES]>;

/// The hash of page `index` holding `page` (0 for an all-zero page).
fn page_hash(index: u64, page: Option<&[u8; PAGE_SIZE]>) -> u128 {
    let Some(page) = page.filter(|p| p.iter().any(|&b| b != 0)) else {
        return 0;
    };
    let mut h = Sha256::new();
    h.update(DOMAIN_TAG);
    h.update(index.to_le_bytes());
    h.update(page);
    let out = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&out[..16]);
    u128::from_le_bytes(first)
}

/// The final digest of a memory of `page_count` pages whose hashes sum to `sum`.
fn finish(page_count: u64, sum: u128) -> [u8; 32] {
    let mut outer = Sha256::new();
    outer.update(DOMAIN_TAG);
    outer.update(page_count.to_le_bytes());
    outer.update(sum.to_le_bytes());
    outer.finalize().into()
}

/// The page hashes of one guest memory and their sum, brought up to date by
/// [`PageDigests::refresh`].
///
/// Only one `PageDigests` may follow a given memory at a time (one migration
/// job per guest): refreshing clears the memory's stale bitmap.
pub(crate) struct PageDigests {
    /// Lazily allocated like the memory's page table.
    chunks: Vec<Option<Chunk>>,
    page_count: u64,
    sum: u128,
    /// Whether the first refresh (every allocated page) was done.
    primed: bool,
}

impl PageDigests {
    /// Digests for `memory`, not yet computed: the first
    /// [`PageDigests::refresh`] hashes every page holding data.
    pub(crate) fn new(memory: &GuestMemory) -> Self {
        let page_count = memory.page_count();
        let chunks = (0..page_count.div_ceil(CHUNK_PAGES as u64))
            .map(|_| None)
            .collect();
        Self {
            chunks,
            page_count,
            sum: 0,
            primed: false,
        }
    }

    /// Re-hashes the pages written since the last refresh (every page holding
    /// data on the first call); returns how many were hashed. Concurrent
    /// writes are either seen or left for the next refresh.
    pub(crate) fn refresh(&mut self, memory: &GuestMemory) -> usize {
        // The stale bits are cleared before the pages are read (the memory's
        // dirty-tracking invariant).
        let mut pages = memory.take_stale_pages();
        if !self.primed {
            self.primed = true;
            pages.extend(memory.allocated_page_indices());
            pages.sort_unstable();
            pages.dedup();
        }
        for &index in &pages {
            let hash = memory
                .with_page(index, |page| page_hash(index, page))
                .unwrap_or(0);
            self.set(index, hash);
        }
        pages.len()
    }

    fn set(&mut self, index: u64, hash: u128) {
        let (Ok(chunk), Ok(slot)) = (
            usize::try_from(index / CHUNK_PAGES as u64),
            usize::try_from(index % CHUNK_PAGES as u64),
        ) else {
            return;
        };
        let Some(entry) = self.chunks.get_mut(chunk) else {
            return;
        };
        if entry.is_none() {
            if hash == 0 {
                return;
            }
            *entry = Some(Box::new([0; CHUNK_PAGES]));
        }
        let Some(old) = entry.as_mut().map(|c| &mut c[slot]) else {
            return;
        };
        self.sum = self.sum.wrapping_sub(*old).wrapping_add(hash);
        *old = hash;
    }

    /// The digest as of the last refresh; it is the memory's digest when
    /// nothing was written since.
    pub(crate) fn digest(&self) -> [u8; 32] {
        finish(self.page_count, self.sum)
    }
}

/// [`PageDigests`] of one memory, refreshed on a blocking thread so that
/// hashing overlaps with sending (source) or receiving (destination).
pub(crate) struct BackgroundDigests {
    memory: Arc<GuestMemory>,
    idle: Option<PageDigests>,
    running: Option<JoinHandle<PageDigests>>,
}

impl BackgroundDigests {
    /// Digests following `memory`, nothing hashed yet.
    pub(crate) fn new(memory: Arc<GuestMemory>) -> Self {
        let idle = Some(PageDigests::new(&memory));
        Self {
            memory,
            idle,
            running: None,
        }
    }

    /// Waits for a running refresh to end.
    pub(crate) async fn settle(&mut self) -> Result<()> {
        if let Some(task) = self.running.take() {
            let digests = task
                .await
                .map_err(|e| Error::internal(format!("memory digest task failed: {e}")))?;
            self.idle = Some(digests);
        }
        Ok(())
    }

    /// Starts a refresh in the background, after the running one (if any).
    pub(crate) async fn start(&mut self) -> Result<()> {
        self.settle().await?;
        if let Some(mut digests) = self.idle.take() {
            let memory = Arc::clone(&self.memory);
            self.running = Some(tokio::task::spawn_blocking(move || {
                digests.refresh(&memory);
                digests
            }));
        }
        Ok(())
    }

    /// Starts a refresh unless one is still running (never waits long).
    pub(crate) async fn start_if_idle(&mut self) -> Result<()> {
        if self.running.as_ref().is_some_and(|t| !t.is_finished()) {
            return Ok(());
        }
        self.start().await
    }

    /// The memory's digest now: the last refresh, then one more for what was
    /// written since. Only meaningful while nothing writes to the memory.
    pub(crate) async fn finish(&mut self) -> Result<[u8; 32]> {
        self.start().await?;
        self.settle().await?;
        self.idle
            .as_ref()
            .map(PageDigests::digest)
            .ok_or_else(|| Error::internal("memory digest lost its state"))
    }
}

/// The digest of `memory` computed from scratch (every allocated page), the
/// reference the incremental one must equal; only meaningful while nothing
/// writes to it. It leaves the memory's stale bitmap alone.
#[cfg(test)]
pub(crate) fn memory_digest(memory: &GuestMemory) -> [u8; 32] {
    let sum = memory
        .allocated_page_indices()
        .into_iter()
        .map(|index| {
            memory
                .with_page(index, |page| page_hash(index, page))
                .unwrap_or(0)
        })
        .fold(0u128, u128::wrapping_add);
    finish(memory.page_count(), sum)
}

/// The digest the v1 stream used: the SHA-256 of every page's SHA-256, zero
/// pages included. Kept for the test that shows both tell memories apart the
/// same way.
#[cfg(test)]
fn full_digest(memory: &GuestMemory) -> [u8; 32] {
    let zero: [u8; 32] = Sha256::digest([0u8; PAGE_SIZE]).into();
    let mut outer = Sha256::new();
    let mut buf = [0u8; PAGE_SIZE];
    for page in 0..memory.page_count() {
        match memory.read_page(page, &mut buf) {
            Ok(crate::memory::PageContent::Data) => outer.update(Sha256::digest(buf)),
            _ => outer.update(zero),
        }
    }
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &GuestMemory, b: &GuestMemory) -> bool {
        let sparse = memory_digest(a) == memory_digest(b);
        assert_eq!(sparse, full_digest(a) == full_digest(b), "digests disagree");
        sparse
    }

    #[test]
    fn digest_follows_content_and_ignores_allocation() {
        let a = GuestMemory::new(4 * PAGE_SIZE as u64).expect("memory");
        let b = GuestMemory::new(4 * PAGE_SIZE as u64).expect("memory");
        assert!(same(&a, &b));
        a.write_page(1, &[3u8; PAGE_SIZE]).expect("write");
        assert!(!same(&a, &b));
        b.write_page(1, &[3u8; PAGE_SIZE]).expect("write");
        assert!(same(&a, &b));
        // A page written back to zeros is the same as one never written.
        a.write_page(2, &[9u8; PAGE_SIZE]).expect("write");
        a.write_page(2, &[0u8; PAGE_SIZE]).expect("zero");
        assert!(same(&a, &b));
        // Also when it is zeroed in place (the page stays allocated).
        a.modify_page(3, |p| p[5] = 1);
        assert!(!same(&a, &b));
        a.modify_page(3, |p| p[5] = 0);
        assert!(same(&a, &b));
        // Page order matters.
        let c = GuestMemory::new(4 * PAGE_SIZE as u64).expect("memory");
        c.write_page(2, &[3u8; PAGE_SIZE]).expect("write");
        assert!(!same(&c, &b));
        // So does one changed byte.
        let d = GuestMemory::new(4 * PAGE_SIZE as u64).expect("memory");
        d.write_page(1, &[3u8; PAGE_SIZE]).expect("write");
        d.modify_page(1, |p| p[4095] = 4);
        assert!(!same(&d, &b));
        // Two equal pages swapped between indices are a difference too.
        let e = GuestMemory::new(4 * PAGE_SIZE as u64).expect("memory");
        let f = GuestMemory::new(4 * PAGE_SIZE as u64).expect("memory");
        e.write_page(0, &[1u8; PAGE_SIZE]).expect("write");
        e.write_page(1, &[2u8; PAGE_SIZE]).expect("write");
        f.write_page(0, &[2u8; PAGE_SIZE]).expect("write");
        f.write_page(1, &[1u8; PAGE_SIZE]).expect("write");
        assert!(!same(&e, &f));
    }

    #[test]
    fn the_memory_size_is_part_of_the_digest() {
        let a = GuestMemory::new(4 * PAGE_SIZE as u64).expect("memory");
        let b = GuestMemory::new(8 * PAGE_SIZE as u64).expect("memory");
        assert_ne!(memory_digest(&a), memory_digest(&b));
    }

    /// A small deterministic generator (no extra dependency).
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn the_incremental_digest_equals_one_computed_from_scratch() {
        let pages = 3 * CHUNK_PAGES as u64 + 7;
        let mem = GuestMemory::new(pages * PAGE_SIZE as u64).expect("memory");
        // Data written before the digests exist is picked up by the first refresh.
        mem.write_page(0, &[7u8; PAGE_SIZE]).expect("write");
        mem.modify_page(CHUNK_PAGES + 3, |p| p[0] = 1);
        let mut digests = PageDigests::new(&mem);
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for round in 0..40 {
            for _ in 0..50 {
                let page = next(&mut seed) % pages;
                match next(&mut seed) % 4 {
                    0 => mem.write_page(page, &[0u8; PAGE_SIZE]).expect("zero"),
                    1 => mem
                        .write_page(page, &[round as u8 + 1; PAGE_SIZE])
                        .expect("w"),
                    _ => {
                        let at = (next(&mut seed) % PAGE_SIZE as u64) as usize;
                        let byte = next(&mut seed) as u8;
                        mem.modify_page(page as usize, |p| p[at] = byte);
                    }
                }
            }
            digests.refresh(&mem);
            assert_eq!(digests.digest(), memory_digest(&mem), "round {round}");
        }
        // Nothing written: a refresh hashes nothing and changes nothing.
        assert_eq!(digests.refresh(&mem), 0);
        assert_eq!(digests.digest(), memory_digest(&mem));
    }

    #[test]
    fn a_write_after_the_last_refresh_is_not_in_the_digest_until_the_next() {
        let mem = GuestMemory::new(8 * PAGE_SIZE as u64).expect("memory");
        let mut digests = PageDigests::new(&mem);
        digests.refresh(&mem);
        let before = digests.digest();
        mem.modify_page(5, |p| p[1] = 9);
        assert_eq!(digests.digest(), before, "no refresh yet");
        assert_eq!(digests.refresh(&mem), 1, "only the written page is hashed");
        assert_ne!(digests.digest(), before);
        assert_eq!(digests.digest(), memory_digest(&mem));
    }
}
