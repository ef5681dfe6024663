//! The memory digest carried by the END frame.
//!
//! SHA-256 over a domain tag, the page count and, for every page holding
//! non-zero data in index order, its index and the SHA-256 of its content.
//! A page that reads as zeros contributes nothing, so two memories have the
//! same digest exactly when every page has the same content (up to SHA-256
//! collisions), and the cost follows the pages in use, not the guest's size:
//! the allocation bitmap lists them, so an idle 1 GiB guest is checked in
//! microseconds. Both sides compute it from the memory itself (never from
//! what was sent or received), so it still proves the transfer, dirty
//! tracking included. The source computes it while the guest is paused
//! (downtime), the destination in Finish.

use sha2::{Digest, Sha256};

use crate::memory::GuestMemory;

/// Separates this digest from any other use of SHA-256 over the same bytes.
const DOMAIN_TAG: &[u8] = b"migrated test memory digest v2";

/// The digest of `memory`; only meaningful while nothing writes to it.
pub(crate) fn memory_digest(memory: &GuestMemory) -> [u8; 32] {
    let mut outer = Sha256::new();
    outer.update(DOMAIN_TAG);
    outer.update(memory.page_count().to_le_bytes());
    for index in memory.allocated_page_indices() {
        let inner = memory.with_page(index, |page| {
            // A page written over with zeros in place still holds its buffer.
            page.filter(|p| p.iter().any(|&b| b != 0))
                .map(|p| Sha256::digest(p.as_slice()))
        });
        if let Ok(Some(inner)) = inner {
            outer.update(index.to_le_bytes());
            outer.update(inner);
        }
    }
    outer.finalize().into()
}

/// The digest the v1 stream used: the SHA-256 of every page's SHA-256, zero
/// pages included. Kept for the test that shows both tell memories apart the
/// same way.
#[cfg(test)]
fn full_digest(memory: &GuestMemory) -> [u8; 32] {
    use crate::memory::PAGE_SIZE;
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
    use crate::memory::PAGE_SIZE;

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
    }

    #[test]
    fn the_memory_size_is_part_of_the_digest() {
        let a = GuestMemory::new(4 * PAGE_SIZE as u64).expect("memory");
        let b = GuestMemory::new(8 * PAGE_SIZE as u64).expect("memory");
        assert_ne!(memory_digest(&a), memory_digest(&b));
    }
}
