//! The memory digest carried by the END frame: SHA-256 over the SHA-256 of
//! each page in order. A zero page contributes a constant digest, so a large,
//! mostly untouched guest is checked in milliseconds — this runs while the
//! source guest is paused, so it is downtime.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::memory::{GuestMemory, PageContent, PAGE_SIZE};

fn zero_page_digest() -> &'static [u8; 32] {
    static ZERO: OnceLock<[u8; 32]> = OnceLock::new();
    ZERO.get_or_init(|| Sha256::digest([0u8; PAGE_SIZE]).into())
}

/// The digest of `memory`; only meaningful while nothing writes to it.
pub(crate) fn memory_digest(memory: &GuestMemory) -> [u8; 32] {
    let mut outer = Sha256::new();
    let mut buf = [0u8; PAGE_SIZE];
    for page in 0..memory.page_count() {
        match memory.read_page(page, &mut buf) {
            Ok(PageContent::Data) => outer.update(Sha256::digest(buf)),
            // Out of range cannot happen for 0..page_count; treat it as zero.
            Ok(PageContent::Zero) | Err(_) => outer.update(zero_page_digest()),
        }
    }
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_follows_content_and_ignores_allocation() {
        let a = GuestMemory::new(4 * PAGE_SIZE as u64).expect("memory");
        let b = GuestMemory::new(4 * PAGE_SIZE as u64).expect("memory");
        assert_eq!(memory_digest(&a), memory_digest(&b));
        a.write_page(1, &[3u8; PAGE_SIZE]).expect("write");
        assert_ne!(memory_digest(&a), memory_digest(&b));
        b.write_page(1, &[3u8; PAGE_SIZE]).expect("write");
        assert_eq!(memory_digest(&a), memory_digest(&b));
        // A page written back to zeros is the same as one never written.
        a.write_page(2, &[9u8; PAGE_SIZE]).expect("write");
        a.write_page(2, &[0u8; PAGE_SIZE]).expect("zero");
        assert_eq!(memory_digest(&a), memory_digest(&b));
        // Page order matters.
        let c = GuestMemory::new(4 * PAGE_SIZE as u64).expect("memory");
        c.write_page(2, &[3u8; PAGE_SIZE]).expect("write");
        assert_ne!(memory_digest(&c), memory_digest(&b));
    }
}
