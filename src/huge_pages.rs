//! The system allocator, with large blocks marked for transparent huge pages.
//!
//! Compression allocates weight-sized buffers (tens to hundreds of MiB) one after another;
//! with 4 KiB pages each costs tens of thousands of page faults to fill and as many page
//! frees to release. On Linux, where THP is usually in `madvise` mode, advising those blocks
//! `MADV_HUGEPAGE` lets the kernel back them with 2 MiB pages instead.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks at least this large are advised (smaller ones rarely span a whole huge page).
const THRESHOLD: usize = 16 << 20;
/// The huge page size advised for.
const HUGE_PAGE: usize = 2 << 20;

/// [`System`] plus `madvise(MADV_HUGEPAGE)` on the huge-page-aligned interior of large blocks.
pub struct HugePageAllocator;

// SAFETY: every call is forwarded to `System` unchanged; the advice only changes how the
// kernel backs pages of a block the caller owns, never its contents.
unsafe impl GlobalAlloc for HugePageAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let block = unsafe { System.alloc(layout) };
        advise(block, layout.size());
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let block = unsafe { System.alloc_zeroed(layout) };
        advise(block, layout.size());
        block
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(block, layout, new_size) };
        advise(moved, new_size);
        moved
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        unsafe { System.dealloc(block, layout) }
    }
}

/// Advises the whole huge pages inside `[block, block + size)` (Linux only; best effort).
fn advise(block: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    if !block.is_null() && size >= THRESHOLD {
        let start = (block as usize).next_multiple_of(HUGE_PAGE);
        let end = (block as usize + size) / HUGE_PAGE * HUGE_PAGE;
        if end > start {
            // SAFETY: the range lies inside a block this process owns; the advice is a hint
            // whose failure changes nothing, so its result is ignored.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (block, size);
}
