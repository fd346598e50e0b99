//! Upload part buffers.
//!
//! A part is filled from the client, handed to the store as `Bytes` (no copy), and freed when
//! the store has it. On Linux with glibc each buffer is an anonymous memory mapping of its
//! own: taken from the heap, glibc keeps freed blocks of 8 MiB and more in its per-thread
//! arenas for reuse, so the process's resident memory climbed well past the part bound
//! (`TransferLimits`) on every upload; a mapping goes back to the system the moment its last
//! `Bytes` is dropped. Elsewhere the buffer is a zeroed heap block (the system allocators of
//! Windows and macOS give large blocks back themselves). Either way untouched pages cost no
//! memory, so a small file in a large part buffer stays small.

use bytes::Bytes;

/// The memory behind a buffer.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Memory = memmap2::MmapMut;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Memory = Vec<u8>;

/// `capacity` bytes of zeroed memory.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn memory(capacity: usize) -> std::io::Result<Memory> {
    // A mapping cannot be empty: one byte more than asked, never offered (`PartBuf::capacity`).
    memmap2::MmapMut::map_anon(capacity.max(1))
}

/// `capacity` bytes of zeroed memory.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn memory(capacity: usize) -> std::io::Result<Memory> {
    Ok(vec![0; capacity])
}

/// A buffer of fixed capacity filled from the front.
pub(crate) struct PartBuf {
    memory: Memory,
    /// The bytes it may hold (the memory can be larger: a mapping is never empty).
    capacity: usize,
    len: usize,
}

impl PartBuf {
    /// An empty buffer that can hold `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> std::io::Result<Self> {
        Ok(Self {
            memory: memory(capacity)?,
            capacity,
            len: 0,
        })
    }

    /// The bytes filled so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was filled.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether it holds its capacity.
    pub(crate) fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    /// The room after the filled part, to read into.
    pub(crate) fn room(&mut self) -> &mut [u8] {
        &mut self.memory[self.len..self.capacity]
    }

    /// Counts `n` more bytes (just read into [`PartBuf::room`]) as filled.
    pub(crate) fn filled(&mut self, n: usize) {
        self.len = self.len.saturating_add(n).min(self.capacity);
    }

    /// The filled bytes, without a copy; the memory is released with the last clone.
    pub(crate) fn freeze(self) -> Bytes {
        let len = self.len;
        Bytes::from_owner(self.memory).slice(..len)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn fills_to_capacity_then_freezes_what_was_filled() {
        let mut b = PartBuf::new(10).unwrap();
        assert!(b.is_empty());
        b.room()[..4].copy_from_slice(b"abcd");
        b.filled(4);
        assert_eq!(b.room().len(), 6, "room never passes the capacity");
        b.room()[..3].copy_from_slice(b"efg");
        b.filled(3);
        assert_eq!(b.len(), 7);
        assert!(!b.is_full());
        b.filled(5);
        assert!(b.is_full(), "filled never passes the capacity");
        assert!(b.room().is_empty());
        assert_eq!(&b.freeze()[..7], b"abcdefg");
    }

    #[test]
    fn an_empty_buffer_has_no_room_and_freezes_empty() {
        let mut b = PartBuf::new(0).unwrap();
        assert!(b.is_full());
        assert!(b.room().is_empty());
        b.filled(1);
        assert!(b.is_empty());
        assert!(b.freeze().is_empty());
    }
}
