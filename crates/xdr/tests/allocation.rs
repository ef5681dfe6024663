//! Hostile lengths must fail before allocating: this test binary counts the
//! bytes its own thread asks the allocator for while decoding.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use migrated_xdr::bounded::{BoundedBytes, BoundedString, BoundedVec};
use migrated_xdr::{from_bytes, Error};
use serde::de::DeserializeOwned;

thread_local! {
    // Const-initialised and without Drop, so using it inside the allocator
    // never allocates or registers a destructor.
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: defers every operation to `System` unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get() + layout.size()));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get() + new_size));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Decodes `input` as `T` and returns the error and the bytes allocated.
fn decode_counting<T: DeserializeOwned>(input: &[u8]) -> (Option<Error>, usize) {
    let before = ALLOCATED.with(Cell::get);
    let err = from_bytes::<T>(input).err();
    let after = ALLOCATED.with(Cell::get);
    (err, after - before)
}

#[test]
fn length_0xfffffff0_in_twelve_bytes_errors_without_allocating() {
    let input = [0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0, 0, 0, 0, 0];
    let expected = Some(Error::LengthOverRemaining {
        len: 0xffff_fff0,
        remaining: 8,
    });
    for (what, (err, allocated)) in [
        ("String", decode_counting::<String>(&input)),
        ("ByteBuf", decode_counting::<serde_bytes::ByteBuf>(&input)),
        ("Vec<u64>", decode_counting::<Vec<u64>>(&input)),
        ("Vec<String>", decode_counting::<Vec<String>>(&input)),
        (
            "BoundedString",
            decode_counting::<BoundedString<0xffff_ffff>>(&input),
        ),
        (
            "BoundedBytes",
            decode_counting::<BoundedBytes<0xffff_ffff>>(&input),
        ),
        (
            "BoundedVec",
            decode_counting::<BoundedVec<Vec<String>, 0xffff_ffff>>(&input),
        ),
    ] {
        assert_eq!(err, expected, "{what}");
        assert_eq!(allocated, 0, "{what} allocated {allocated} bytes");
    }
}

#[test]
fn plausible_array_count_allocates_no_more_than_a_quarter_of_the_input_per_element() {
    // Count 2 with 8 bytes left passes the check, then the first element is
    // short: at most 2 slots may have been reserved.
    let input = [0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0];
    let (err, allocated) = decode_counting::<Vec<String>>(&input);
    assert!(err.is_some());
    assert!(
        allocated <= 2 * std::mem::size_of::<String>(),
        "allocated {allocated} bytes"
    );
}
