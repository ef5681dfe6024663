//! Guest memory of a running test domain: real 4 KiB pages with dirty tracking.
//!
//! Pages are allocated on first write; an unallocated page reads as zeros, so a
//! guest "of 1 GiB" costs only what its workload touched. The page table itself
//! comes in chunks of [`CHUNK_PAGES`] slots, also allocated on first write, so
//! creating or dropping a large idle guest (a migration's Prepare and Confirm)
//! costs microseconds. Each page sits behind its own lock so the workload
//! thread and a migration reader never block each other on different pages.
//!
//! Dirty-tracking invariant: a writer sets the page's dirty bit *after* writing
//! the data, while still holding the page lock; [`GuestMemory::take_dirty_pages`]
//! clears bits *before* the caller reads the pages. A write racing with a
//! migration round is therefore either seen by the read or leaves its bit set
//! for the next round — never lost.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use migrated_core::{Error, Result};
use sha2::{Digest, Sha256};

use crate::workload::Workload;

/// Size of one guest page in bytes.
pub const PAGE_SIZE: usize = 4096;

/// Largest guest memory the test driver will model (a fully touched page table
/// takes 16 bytes per page, 32 MiB for this size).
pub const MAX_MEMORY_BYTES: u64 = 8 << 30;

/// Page slots per chunk of the page table (2 MiB of guest memory).
pub const CHUNK_PAGES: usize = 512;

type Page = Box<[u8; PAGE_SIZE]>;
type Slot = Mutex<Option<Page>>;

/// What [`GuestMemory::read_page`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageContent {
    /// Never written (or last written with zeros): the buffer was zero-filled.
    Zero,
    /// Real data was copied into the buffer.
    Data,
}

/// The memory of one running test guest.
pub struct GuestMemory {
    /// Chunks of [`CHUNK_PAGES`] slots; a chunk never written reads as zeros.
    chunks: Box<[OnceLock<Box<[Slot]>>]>,
    page_count: usize,
    dirty: Box<[AtomicU64]>,
    /// A second dirty bitmap, kept apart from `dirty` for the migration
    /// digest (`migration::digest`): set by the same writes, cleared only by
    /// [`GuestMemory::take_stale_pages`]. The digest therefore follows the
    /// memory itself, not what the migration's own dirty tracking chose to
    /// send.
    stale: Box<[AtomicU64]>,
    /// One bit per page holding data (`Some`), changed under the page's lock,
    /// so the migration scans a sparse guest in microseconds.
    allocated: Box<[AtomicU64]>,
    throttle_percent: AtomicU8,
}

impl std::fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestMemory")
            .field("pages", &self.page_count)
            .field("throttle_percent", &self.throttle_percent())
            .finish_non_exhaustive()
    }
}

impl GuestMemory {
    /// Memory of `size_bytes`, rounded up to whole pages, all zero and clean.
    ///
    /// # Errors
    /// [`Error::ConfigUnsupported`] above [`MAX_MEMORY_BYTES`].
    pub fn new(size_bytes: u64) -> Result<Self> {
        if size_bytes > MAX_MEMORY_BYTES {
            return Err(Error::ConfigUnsupported {
                reason: format!(
                    "test driver guests are limited to {} MiB of memory, {} MiB requested",
                    MAX_MEMORY_BYTES >> 20,
                    size_bytes >> 20
                ),
            });
        }
        let count = size_bytes.div_ceil(PAGE_SIZE as u64);
        let count = usize::try_from(count).map_err(|_| Error::ConfigUnsupported {
            reason: format!("{size_bytes} bytes of guest memory do not fit this host"),
        })?;
        let chunks = (0..count.div_ceil(CHUNK_PAGES))
            .map(|_| OnceLock::new())
            .collect();
        let dirty = (0..count.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        let stale = (0..count.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        let allocated = (0..count.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        Ok(Self {
            chunks,
            page_count: count,
            dirty,
            stale,
            allocated,
            throttle_percent: AtomicU8::new(0),
        })
    }

    /// Number of pages.
    pub fn page_count(&self) -> u64 {
        self.page_count as u64
    }

    /// Size in bytes (whole pages).
    pub fn size_bytes(&self) -> u64 {
        self.page_count() * PAGE_SIZE as u64
    }

    /// Number of pages currently holding data (not the zero page).
    pub fn allocated_pages(&self) -> u64 {
        self.allocated
            .iter()
            .map(|w| u64::from(w.load(Ordering::Acquire).count_ones()))
            .sum()
    }

    /// Indices of the pages holding data now, in order. Pages not listed read
    /// as zeros; a page allocated later is marked dirty by that write.
    pub fn allocated_page_indices(&self) -> Vec<u64> {
        bit_indices(&self.allocated, |w| w.load(Ordering::Acquire))
    }

    fn slot(&self, index: u64, operation: &'static str) -> Result<usize> {
        usize::try_from(index)
            .ok()
            .filter(|&i| i < self.page_count)
            .ok_or_else(|| Error::InvalidArg {
                operation,
                reason: format!(
                    "page {index} is outside guest memory of {} pages",
                    self.page_count
                ),
            })
    }

    /// The slot of page `i` (`i` < page count), `None` while its chunk was
    /// never written (the page reads as zeros).
    fn existing(&self, i: usize) -> Option<&Slot> {
        self.chunks[i / CHUNK_PAGES]
            .get()
            .map(|c| &c[i % CHUNK_PAGES])
    }

    /// The slot of page `i` (`i` < page count), allocating its chunk.
    fn slot_mut(&self, i: usize) -> &Slot {
        let chunk = self.chunks[i / CHUNK_PAGES]
            .get_or_init(|| (0..CHUNK_PAGES).map(|_| Mutex::new(None)).collect());
        &chunk[i % CHUNK_PAGES]
    }

    fn lock(slot: &Slot) -> MutexGuard<'_, Option<Page>> {
        // A panic while holding a page lock cannot leave the page half-valid
        // (the copy is the only operation), so a poisoned lock is still usable.
        slot.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks page `i` written, for the migration and for the digest; called
    /// after the write, with the page's lock held where it has one.
    fn mark_dirty(&self, i: usize) {
        self.dirty[i / 64].fetch_or(1 << (i % 64), Ordering::AcqRel);
        self.stale[i / 64].fetch_or(1 << (i % 64), Ordering::AcqRel);
    }

    /// Records whether page `i` holds data; called with its lock held.
    fn mark_allocated(&self, i: usize, allocated: bool) {
        let bit = 1 << (i % 64);
        if allocated {
            self.allocated[i / 64].fetch_or(bit, Ordering::AcqRel);
        } else {
            self.allocated[i / 64].fetch_and(!bit, Ordering::AcqRel);
        }
    }

    /// Calls `f` with the data of page `index` under its lock, or with `None`
    /// for a page that reads as zeros; no copy is made.
    ///
    /// # Errors
    /// [`Error::InvalidArg`] if `index` is out of range.
    pub fn with_page<T>(
        &self,
        index: u64,
        f: impl FnOnce(Option<&[u8; PAGE_SIZE]>) -> T,
    ) -> Result<T> {
        let i = self.slot(index, "read guest page")?;
        Ok(match self.existing(i) {
            Some(slot) => f(Self::lock(slot).as_deref()),
            None => f(None),
        })
    }

    /// Copies page `index` into `buf`.
    ///
    /// # Errors
    /// [`Error::InvalidArg`] if `index` is out of range.
    pub fn read_page(&self, index: u64, buf: &mut [u8; PAGE_SIZE]) -> Result<PageContent> {
        self.with_page(index, |page| match page {
            Some(page) => {
                buf.copy_from_slice(page);
                PageContent::Data
            }
            None => {
                buf.fill(0);
                PageContent::Zero
            }
        })
    }

    /// Replaces page `index` with `data` and marks it dirty; an all-zero page is
    /// stored as the zero page (its memory released).
    ///
    /// # Errors
    /// [`Error::InvalidArg`] if `index` is out of range or `data` is not one page.
    pub fn write_page(&self, index: u64, data: &[u8]) -> Result<()> {
        let i = self.slot(index, "write guest page")?;
        let data: &[u8; PAGE_SIZE] = data.try_into().map_err(|_| Error::InvalidArg {
            operation: "write guest page",
            reason: format!("page data is {} bytes, expected {PAGE_SIZE}", data.len()),
        })?;
        let zero = data.iter().all(|&b| b == 0);
        if zero && self.existing(i).is_none() {
            // Already zeros, and it stays so without allocating its chunk.
            self.mark_dirty(i);
            return Ok(());
        }
        let mut slot = Self::lock(self.slot_mut(i));
        if zero {
            *slot = None;
        } else {
            match slot.as_deref_mut() {
                Some(page) => page.copy_from_slice(data),
                None => *slot = Some(Box::new(*data)),
            }
        }
        self.mark_allocated(i, !zero);
        self.mark_dirty(i);
        Ok(())
    }

    /// Applies `f` to page `index` in place (allocating it if needed) and marks
    /// it dirty. Used by the workload, which changes a few bytes per write.
    pub(crate) fn modify_page(&self, index: usize, f: impl FnOnce(&mut [u8; PAGE_SIZE])) {
        if index >= self.page_count {
            return;
        }
        let mut slot = Self::lock(self.slot_mut(index));
        f(slot.get_or_insert_with(|| Box::new([0; PAGE_SIZE])));
        self.mark_allocated(index, true);
        self.mark_dirty(index);
    }

    /// Indices of every page written since the last call, clearing them.
    ///
    /// Each bitmap word is swapped atomically, so a concurrent write either lands
    /// in this result or stays marked for the next call.
    pub fn take_dirty_pages(&self) -> Vec<u64> {
        bit_indices(&self.dirty, |w| w.swap(0, Ordering::AcqRel))
    }

    /// Indices of every page written since the last call, clearing them: the
    /// digest's own dirty bitmap, independent of [`GuestMemory::take_dirty_pages`].
    /// Same invariant: a concurrent write lands in this result or in the next.
    pub(crate) fn take_stale_pages(&self) -> Vec<u64> {
        bit_indices(&self.stale, |w| w.swap(0, Ordering::AcqRel))
    }

    /// Number of pages currently marked dirty (without clearing them).
    pub fn dirty_count(&self) -> u64 {
        self.dirty
            .iter()
            .map(|w| u64::from(w.load(Ordering::Acquire).count_ones()))
            .sum()
    }

    /// SHA-256 over all pages in order, zero pages included as zeros.
    ///
    /// Pages are read one at a time, so the result is only meaningful while
    /// nothing writes (guest paused or workload stopped).
    pub fn checksum(&self) -> [u8; 32] {
        let zero = [0u8; PAGE_SIZE];
        let mut hasher = Sha256::new();
        for i in 0..self.page_count {
            match self.existing(i) {
                Some(slot) => match Self::lock(slot).as_deref() {
                    Some(page) => hasher.update(page),
                    None => hasher.update(zero),
                },
                None => hasher.update(zero),
            }
        }
        hasher.finalize().into()
    }

    /// [`GuestMemory::checksum`] as lowercase hex.
    pub fn checksum_hex(&self) -> String {
        self.checksum().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Current workload throttle (auto-converge), 0–99 percent.
    pub fn throttle_percent(&self) -> u8 {
        self.throttle_percent.load(Ordering::Relaxed)
    }

    /// Slows the workload down by `percent` (clamped to 99: a throttled guest
    /// still runs, as with QEMU's auto-converge).
    pub fn set_throttle_percent(&self, percent: u8) {
        self.throttle_percent
            .store(percent.min(99), Ordering::Relaxed);
    }

    /// Starts a thread writing `pages_per_sec` pages (before throttling) round-robin
    /// over the first `working_set_pages` pages. It stops when the returned handle is
    /// stopped or dropped.
    ///
    /// # Errors
    /// [`Error::System`] if the thread cannot be spawned.
    pub fn start_workload(
        self: &Arc<Self>,
        pages_per_sec: u64,
        working_set_pages: u64,
    ) -> Result<Workload> {
        Workload::start(Arc::clone(self), pages_per_sec, working_set_pages)
    }
}

/// The indices of the set bits of `words`, each word read once with `read`.
fn bit_indices(words: &[AtomicU64], read: impl Fn(&AtomicU64) -> u64) -> Vec<u64> {
    let mut out = Vec::new();
    for (w, word) in words.iter().enumerate() {
        let mut bits = read(word);
        while bits != 0 {
            out.push(w as u64 * 64 + u64::from(bits.trailing_zeros()));
            bits &= bits - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_of(byte: u8) -> Vec<u8> {
        vec![byte; PAGE_SIZE]
    }

    #[test]
    fn size_rounds_up_to_whole_pages_and_starts_zero() {
        let mem = GuestMemory::new(3 * PAGE_SIZE as u64 + 1).expect("small");
        assert_eq!(mem.page_count(), 4);
        let mut buf = [0xffu8; PAGE_SIZE];
        assert_eq!(
            mem.read_page(3, &mut buf).expect("in range"),
            PageContent::Zero
        );
        assert!(buf.iter().all(|&b| b == 0));
        assert_eq!(mem.allocated_pages(), 0);
        assert!(mem.take_dirty_pages().is_empty());
    }

    #[test]
    fn oversized_memory_is_refused() {
        let err = GuestMemory::new(MAX_MEMORY_BYTES + 1).expect_err("too big");
        assert_eq!(
            err.code(),
            migrated_core::error::ErrorCode::ConfigUnsupported
        );
    }

    #[test]
    fn writes_are_read_back_and_marked_dirty_once() {
        let mem = GuestMemory::new(200 * PAGE_SIZE as u64).expect("small");
        mem.write_page(5, &page_of(7)).expect("write");
        mem.write_page(130, &page_of(9)).expect("write");
        mem.write_page(5, &page_of(8)).expect("rewrite");
        let mut buf = [0u8; PAGE_SIZE];
        assert_eq!(mem.read_page(5, &mut buf).expect("read"), PageContent::Data);
        assert!(buf.iter().all(|&b| b == 8));
        assert_eq!(mem.dirty_count(), 2);
        assert_eq!(mem.take_dirty_pages(), vec![5, 130]);
        assert!(
            mem.take_dirty_pages().is_empty(),
            "taking clears the bitmap"
        );
    }

    #[test]
    fn out_of_range_and_short_writes_are_errors_not_panics() {
        let mem = GuestMemory::new(PAGE_SIZE as u64).expect("one page");
        let mut buf = [0u8; PAGE_SIZE];
        assert!(mem.read_page(1, &mut buf).is_err());
        assert!(mem.read_page(u64::MAX, &mut buf).is_err());
        assert!(mem.write_page(1, &page_of(1)).is_err());
        let err = mem.write_page(0, &[1u8; 100]).expect_err("short");
        assert!(err.to_string().contains("100 bytes"), "{err}");
    }

    #[test]
    fn allocated_indices_follow_writes_zeroing_and_modification() {
        let mem = GuestMemory::new(200 * PAGE_SIZE as u64).expect("small");
        assert!(mem.allocated_page_indices().is_empty());
        mem.write_page(130, &page_of(1)).expect("write");
        mem.write_page(3, &page_of(2)).expect("write");
        mem.modify_page(64, |p| p[7] = 9);
        assert_eq!(mem.allocated_page_indices(), vec![3, 64, 130]);
        assert_eq!(mem.allocated_pages(), 3);
        mem.write_page(3, &page_of(0)).expect("zero");
        assert_eq!(mem.allocated_page_indices(), vec![64, 130]);
        let seen = mem.with_page(64, |p| p.map(|p| p[7])).expect("in range");
        assert_eq!(seen, Some(9));
        assert!(mem.with_page(3, |p| p.is_none()).expect("in range"));
        assert!(mem.with_page(200, |_| ()).is_err());
    }

    #[test]
    fn chunks_of_the_page_table_are_allocated_on_first_write_only() {
        let mem = GuestMemory::new(3 * CHUNK_PAGES as u64 * PAGE_SIZE as u64).expect("6 MiB");
        let allocated = |m: &GuestMemory| m.chunks.iter().filter(|c| c.get().is_some()).count();
        let mut buf = [1u8; PAGE_SIZE];
        assert_eq!(mem.read_page(5, &mut buf).expect("read"), PageContent::Zero);
        mem.write_page(CHUNK_PAGES as u64 + 1, &page_of(0))
            .expect("zeros");
        assert_eq!(allocated(&mem), 0, "reads and zero writes allocate nothing");
        assert_eq!(mem.take_dirty_pages(), vec![CHUNK_PAGES as u64 + 1]);
        mem.write_page(2 * CHUNK_PAGES as u64, &page_of(4))
            .expect("write");
        assert_eq!(allocated(&mem), 1);
        assert_eq!(
            mem.read_page(2 * CHUNK_PAGES as u64, &mut buf)
                .expect("read"),
            PageContent::Data
        );
        assert!(buf.iter().all(|&b| b == 4));
        assert_eq!(mem.allocated_page_indices(), vec![2 * CHUNK_PAGES as u64]);
    }

    #[test]
    fn writing_zeros_releases_the_page() {
        let mem = GuestMemory::new(2 * PAGE_SIZE as u64).expect("small");
        mem.write_page(1, &page_of(3)).expect("write");
        assert_eq!(mem.allocated_pages(), 1);
        mem.write_page(1, &page_of(0)).expect("zero");
        assert_eq!(mem.allocated_pages(), 0);
        assert_eq!(mem.take_dirty_pages(), vec![1], "zeroing is a change too");
    }

    #[test]
    fn checksum_depends_on_content_and_matches_a_copy() {
        let a = GuestMemory::new(16 * PAGE_SIZE as u64).expect("small");
        let b = GuestMemory::new(16 * PAGE_SIZE as u64).expect("small");
        assert_eq!(a.checksum(), b.checksum());
        a.write_page(3, &page_of(1)).expect("write");
        assert_ne!(a.checksum(), b.checksum());
        let mut buf = [0u8; PAGE_SIZE];
        for page in a.take_dirty_pages() {
            if a.read_page(page, &mut buf).expect("read") == PageContent::Data {
                b.write_page(page, &buf).expect("copy");
            }
        }
        assert_eq!(a.checksum(), b.checksum());
        assert_eq!(a.checksum_hex().len(), 64);
    }

    #[test]
    fn concurrent_writes_are_never_lost_by_take_dirty_pages() {
        let mem = Arc::new(GuestMemory::new(1024 * PAGE_SIZE as u64).expect("4 MiB"));
        let writer = {
            let mem = Arc::clone(&mem);
            std::thread::spawn(move || {
                for round in 0..20u8 {
                    for page in 0..1024 {
                        mem.modify_page(page, |p| p[0] = round.wrapping_add(1));
                    }
                }
            })
        };
        let mut seen = std::collections::BTreeSet::new();
        while !writer.is_finished() {
            seen.extend(mem.take_dirty_pages());
        }
        writer.join().expect("writer thread");
        seen.extend(mem.take_dirty_pages());
        assert_eq!(seen.len(), 1024, "every written page was reported");
    }
}
