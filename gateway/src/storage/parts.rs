//! How an upload is cut into parts, decided before any byte arrives: the validated
//! [`TransferLimits`] and the pure [`PartSchedule`] derived from them. No I/O.
//!
//! FTP never says how large a file will be, and S3 allows 10,000 parts per object. Fixed 8 MiB
//! parts would refuse every upload past 78 GiB, so the part size grows as the upload grows: the
//! schedule doubles it every twentieth of the part budget (every 500 parts), up to the largest
//! part the memory limit can hold twice (one part filling while one uploads) after keeping a
//! small reserve for other transfers ([`MemoryPool`]), and never above S3's 5 GiB. A small
//! file keeps small parts (cheap retries, fine-grained resume); a 5 TiB upload fits with the
//! default limits. As parts grow, fewer of them upload at once, so the
//! bytes one upload has in flight stay near `part_size × parts_in_flight` (but never under
//! one part uploading and one filling). A slow store gets smaller parts
//! ([`PartSchedule::size_at_rate`]), so the part still filling when the data ends never
//! holds the final reply past the client's patience.
//!
//! Stores that need every part but the last to be the same size (Cloudflare R2) keep fixed
//! parts; their largest upload is `part_size × 10,000`, and the refusal says so.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::error::{Detail, Failure};

/// Bytes per ranged GET of a split download (`download.rs`); an upload's first part is at
/// least this large.
pub const CHUNK: u64 = 8 * 1024 * 1024;

/// S3's limit on the number of parts of one object.
pub const MAX_PARTS: u64 = 10_000;
/// S3's floor on every part but the last.
pub const MIN_PART_SIZE: usize = 5 * MIB;
/// S3's ceiling on one part.
pub const MAX_PART_SIZE: usize = 5 * 1024 * MIB;
/// S3's ceiling on one object.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * MIB as u64;
/// The part sizes an upload may start with.
pub const PART_SIZES: RangeInclusive<usize> = MIN_PART_SIZE..=MAX_PART_SIZE;
/// How many parts of one upload may upload at once.
pub const PARTS_IN_FLIGHT: RangeInclusive<usize> = 1..=32;
/// The part budget is cut into this many steps; the part size doubles at each.
const GROWTH_STEPS: u64 = 20;

const MIB: usize = 1024 * 1024;

/// Why a set of transfer limits was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// The part size is outside [`PART_SIZES`].
    #[error("the part size must be between 5 MiB and 5 GiB, got {}", crate::units::human_size(*.0 as u64))]
    PartSize(usize),
    /// The parallelism is outside [`PARTS_IN_FLIGHT`].
    #[error("parts in flight must be between {lo} and {hi}, got {0}", lo = PARTS_IN_FLIGHT.start(), hi = PARTS_IN_FLIGHT.end())]
    PartsInFlight(usize),
    /// The memory limit cannot hold two parts.
    #[error("the memory limit ({}) must hold at least two parts of {}", crate::units::human_size(*.memory as u64), crate::units::human_size(*.part_size as u64))]
    Memory {
        /// The memory limit asked for.
        memory: usize,
        /// The part size asked for.
        part_size: usize,
    },
}

/// Sizes that bound an upload's memory and parallelism, checked once when they are made: a
/// value of this type is always valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferLimits {
    part_size: usize,
    parts_in_flight: usize,
    memory_limit: usize,
    max_parts: u64,
}

impl Default for TransferLimits {
    /// 8 MiB parts, 4 in flight, 1.5 GiB of part buffers in all: enough for a part of
    /// 760 MiB to fill while another uploads (beside a 16 MiB reserve for other transfers),
    /// which is what a 5 TiB upload needs.
    fn default() -> Self {
        Self {
            part_size: 8 * MIB,
            parts_in_flight: 4,
            memory_limit: 1536 * MIB,
            max_parts: MAX_PARTS,
        }
    }
}

impl TransferLimits {
    /// Checks the limits make sense together: `part_size` in [`PART_SIZES`],
    /// `parts_in_flight` in [`PARTS_IN_FLIGHT`], and memory for at least two parts.
    pub fn new(
        part_size: usize,
        parts_in_flight: usize,
        memory_limit: usize,
    ) -> Result<Self, LimitsError> {
        if !PART_SIZES.contains(&part_size) {
            return Err(LimitsError::PartSize(part_size));
        }
        if !PARTS_IN_FLIGHT.contains(&parts_in_flight) {
            return Err(LimitsError::PartsInFlight(parts_in_flight));
        }
        if memory_limit / 2 < part_size {
            return Err(LimitsError::Memory {
                memory: memory_limit,
                part_size,
            });
        }
        Ok(Self {
            part_size,
            parts_in_flight,
            memory_limit,
            max_parts: MAX_PARTS,
        })
    }

    /// A lower part ceiling than S3's 10,000, so that tests reach it with small files.
    #[doc(hidden)]
    pub fn with_part_ceiling(mut self, max_parts: u64) -> Self {
        self.max_parts = max_parts.clamp(1, MAX_PARTS);
        self
    }

    /// Bytes of the first parts (and the threshold between PutObject and multipart).
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// Parts of one upload uploading at once, at the first part size.
    pub fn parts_in_flight(&self) -> usize {
        self.parts_in_flight
    }

    /// Bytes of part buffers across all sessions.
    pub fn memory_limit(&self) -> usize {
        self.memory_limit
    }

    /// The memory pool of all transfers, sized to the memory limit (see [`MemoryPool`]).
    pub fn memory_pool(&self) -> std::sync::Arc<MemoryPool> {
        let reserve = self.reserve();
        std::sync::Arc::new(MemoryPool {
            main: std::sync::Arc::new(tokio::sync::Semaphore::new(
                (self.memory_limit - reserve) / 1024,
            )),
            main_permits: permits((self.memory_limit - reserve) as u64),
            reserve: std::sync::Arc::new(tokio::sync::Semaphore::new(reserve / 1024)),
            reserve_permits: permits(reserve as u64),
        })
    }

    /// The bytes of the memory limit kept back for transfers that hold no buffer: two first
    /// parts or two download chunks, at most a quarter of the limit.
    fn reserve(&self) -> usize {
        let first = self.part_size.max(CHUNK as usize);
        (2 * first).min(self.memory_limit / 4)
    }

    /// The part schedule of one upload to a store that does (`equal_parts`) or does not
    /// need equal parts.
    pub fn schedule(&self, equal_parts: bool) -> PartSchedule {
        let largest = if equal_parts {
            self.part_size
        } else {
            ((self.memory_limit - self.reserve()) / 2).min(MAX_PART_SIZE)
        };
        PartSchedule {
            first: self.part_size as u64,
            largest: largest.max(self.part_size) as u64,
            max_parts: self.max_parts,
            step: (self.max_parts / GROWTH_STEPS).max(1),
            parts_in_flight: self.parts_in_flight as u64,
            memory_limit: self.memory_limit as u64,
            equal_parts,
        }
    }
}

/// The memory-semaphore permits (KiB) a part buffer of `bytes` holds.
pub fn permits(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// The memory for upload part buffers and download chunks of all sessions together, in KiB
/// permits: a main pool and a small reserve. A transfer that already holds a buffer waits
/// for the main pool only; one that holds none may also take the reserve when the main pool
/// has nothing free at once. The largest part is half the main pool, so one upload (a part
/// uploading while the next fills) can take all of the main pool but never the reserve: a
/// download or another upload always gets its first buffer, however large the parts of the
/// uploads before it have grown (tokio's semaphore is fair: a large waiter queued first would
/// otherwise hold back every smaller request behind it).
#[derive(Debug)]
pub struct MemoryPool {
    main: std::sync::Arc<tokio::sync::Semaphore>,
    main_permits: u32,
    reserve: std::sync::Arc<tokio::sync::Semaphore>,
    reserve_permits: u32,
}

/// Memory held for one buffer; given back when it drops.
pub type Held = tokio::sync::OwnedSemaphorePermit;

impl MemoryPool {
    /// The permits a buffer of `bytes` takes from the main pool: never more than it has (a
    /// buffer larger than the pool, possible only at the smallest limits, takes all of it).
    fn main_share(&self, bytes: u64) -> u32 {
        permits(bytes).min(self.main_permits)
    }

    /// Memory for a `bytes`-long buffer from the main pool if it is free now.
    pub fn try_take(&self, bytes: u64) -> Option<Held> {
        self.main
            .clone()
            .try_acquire_many_owned(self.main_share(bytes))
            .ok()
    }

    /// Waits for the memory of a `bytes`-long buffer (an upload part or a download chunk).
    /// `holds_none`: the transfer holds no other buffer, so it may take the reserve.
    pub async fn take(&self, bytes: u64, holds_none: bool) -> Result<Held, Failure> {
        let shutting_down = |e: tokio::sync::AcquireError| {
            Failure::Other(Detail::caused_by("gateway is shutting down", e))
        };
        let main = self.main.clone().acquire_many_owned(self.main_share(bytes));
        if !holds_none || permits(bytes) > self.reserve_permits {
            return main.await.map_err(shutting_down);
        }
        if let Some(held) = self.try_take(bytes) {
            return Ok(held);
        }
        let reserve = self.reserve.clone().acquire_many_owned(permits(bytes));
        tokio::select! {
            biased;
            held = main => held.map_err(shutting_down),
            held = reserve => held.map_err(shutting_down),
        }
    }

    /// Free KiB permits of the main pool and of the reserve (for tests).
    pub fn available(&self) -> (usize, usize) {
        (
            self.main.available_permits(),
            self.reserve.available_permits(),
        )
    }
}

/// The size of every part of one upload (see the module docs). Pure and cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSchedule {
    first: u64,
    largest: u64,
    max_parts: u64,
    step: u64,
    parts_in_flight: u64,
    memory_limit: u64,
    equal_parts: bool,
}

impl PartSchedule {
    /// The size of part `number` (1-based).
    pub fn size(&self, number: u64) -> u64 {
        if self.equal_parts {
            return self.first;
        }
        let doublings = (number.saturating_sub(1) / self.step).min(32);
        self.first.saturating_mul(1 << doublings).min(self.largest)
    }

    /// The size of part `number` when the store takes `rate` bytes a second: no more than
    /// it uploads within `within` (and never below S3's 5 MiB floor), so that the part still
    /// filling when the data ends cannot delay the final reply. Equal-part stores keep the
    /// schedule's size; so does an upload with no rate measured yet.
    pub fn size_at_rate(&self, number: u64, rate: Option<f64>, within: Duration) -> u64 {
        let planned = self.size(number);
        match rate {
            Some(rate) if !self.equal_parts => {
                let fits = (rate * within.as_secs_f64()) as u64;
                planned.min(fits.max(MIN_PART_SIZE as u64))
            }
            _ => planned,
        }
    }

    /// The highest part number allowed.
    pub fn max_parts(&self) -> u64 {
        self.max_parts
    }

    /// The byte range (`first..=last`) of part `number` in the object.
    pub fn range(&self, number: u64) -> (u64, u64) {
        let start = self.offset(number);
        (start, start + self.size(number) - 1)
    }

    /// Where part `number` starts in the object: the sizes of the parts before it.
    pub fn offset(&self, number: u64) -> u64 {
        if self.equal_parts {
            return self.first.saturating_mul(number.saturating_sub(1));
        }
        let before = number.saturating_sub(1);
        let mut offset: u64 = 0;
        let mut done: u64 = 0;
        while done < before {
            let size = self.size(done + 1);
            // The parts up to the next doubling (or all the rest once the size is capped).
            let run = if size == self.largest {
                before - done
            } else {
                (self.step - done % self.step).min(before - done)
            };
            offset = offset.saturating_add(size.saturating_mul(run));
            done += run;
        }
        offset
    }

    /// The whole parts that fit in the first `len` bytes of an object: the part ranges a
    /// resume copies inside the store.
    pub fn whole_parts_within(&self, len: u64) -> Vec<(u64, u64)> {
        let mut ranges = Vec::new();
        let mut number = 1;
        while number <= self.max_parts {
            let (first, last) = self.range(number);
            if last >= len {
                break;
            }
            ranges.push((first, last));
            number += 1;
        }
        ranges
    }

    /// The largest object this schedule can make: every part full, capped at S3's 5 TiB.
    pub fn capacity(&self) -> u64 {
        self.offset(self.max_parts + 1).min(MAX_OBJECT_SIZE)
    }

    /// How many parts of `size` bytes may upload at once: as parts grow, fewer, so that one
    /// upload's part buffers stay near what its first parts needed.
    pub fn in_flight(&self, size: u64) -> usize {
        let budget = self.first * self.parts_in_flight;
        let n = (budget / size.max(1)).clamp(1, self.parts_in_flight);
        usize::try_from(n).unwrap_or(1)
    }

    /// The refusal for an upload that outgrew the schedule (552), naming the limit that
    /// follows and what raises it.
    pub fn too_large(&self) -> Failure {
        use crate::units::human_size;
        let capacity = human_size(self.capacity());
        Failure::TooLarge(if self.capacity() == MAX_OBJECT_SIZE {
            format!("larger than S3's object size limit of {capacity}; nothing was stored")
        } else if self.equal_parts {
            format!(
                "this store needs parts of one size: with {} parts the largest upload is {capacity} \
                 ({} parts); raise part_size to store larger files; nothing was stored",
                human_size(self.first),
                self.max_parts
            )
        } else {
            format!(
                "the largest upload with memory_limit {} is {capacity} ({} parts of up to {}); \
                 raise memory_limit to store larger files; nothing was stored",
                human_size(self.memory_limit),
                self.max_parts,
                human_size(self.largest)
            )
        }
        .into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TIB: u64 = 1024 * 1024 * MIB as u64;

    #[test]
    fn limits_are_checked_once() {
        assert!(TransferLimits::new(8 * MIB, 4, 512 * MIB).is_ok());
        assert_eq!(
            TransferLimits::new(1024, 4, 512 * MIB),
            Err(LimitsError::PartSize(1024))
        );
        assert_eq!(
            TransferLimits::new(8 * MIB, 0, 512 * MIB),
            Err(LimitsError::PartsInFlight(0))
        );
        assert_eq!(
            TransferLimits::new(8 * MIB, 33, 512 * MIB),
            Err(LimitsError::PartsInFlight(33))
        );
        assert!(matches!(
            TransferLimits::new(8 * MIB, 4, 15 * MIB),
            Err(LimitsError::Memory { .. })
        ));
        let d = TransferLimits::default();
        assert_eq!(
            TransferLimits::new(d.part_size(), d.parts_in_flight(), d.memory_limit()),
            Ok(d)
        );
        assert!(
            LimitsError::PartSize(1024)
                .to_string()
                .contains("between 5 MiB and 5 GiB")
        );
    }

    #[test]
    fn part_sizes_grow_every_twentieth_of_the_budget() {
        let s = TransferLimits::default().schedule(false);
        // (part number, size in MiB)
        let table = [
            (1, 8),
            (500, 8),
            (501, 16),
            (1000, 16),
            (1001, 32),
            (1501, 64),
            (2001, 128),
            (2501, 256),
            (3001, 512),
            (3501, 760),
            (10_000, 760),
        ];
        for (n, mib) in table {
            assert_eq!(s.size(n), mib * MIB as u64, "part {n}");
        }
    }

    #[test]
    fn offsets_add_up_the_sizes_before() {
        let s = TransferLimits::new(5 * MIB, 4, 64 * MIB)
            .unwrap()
            .with_part_ceiling(40)
            .schedule(false);
        let mut offset = 0;
        for n in 1..=41 {
            assert_eq!(s.offset(n), offset, "part {n}");
            if n <= 40 {
                assert_eq!(s.range(n), (offset, offset + s.size(n) - 1));
                offset += s.size(n);
            }
        }
        assert_eq!(s.capacity(), offset);
    }

    #[test]
    fn the_defaults_reach_five_tib() {
        let s = TransferLimits::default().schedule(false);
        assert_eq!(s.capacity(), 5 * TIB);
        // 512 MiB of memory: parts up to 256 MiB, about 1.9 TiB, and the refusal says why.
        let small = TransferLimits::new(8 * MIB, 4, 512 * MIB)
            .unwrap()
            .schedule(false);
        assert!(small.capacity() > TIB && small.capacity() < 2 * TIB);
        let text = small.too_large().to_string();
        assert!(text.contains("memory_limit 512 MiB"), "{text}");
        assert_eq!(small.too_large().reply_code(), 552);
        assert!(s.too_large().to_string().contains("5 TiB"));
    }

    #[test]
    fn equal_parts_stay_fixed_and_say_their_limit() {
        let s = TransferLimits::default().schedule(true);
        assert_eq!(s.size(1), 8 * MIB as u64);
        assert_eq!(s.size(9_999), 8 * MIB as u64);
        assert_eq!(s.capacity(), 10_000 * 8 * MIB as u64);
        assert_eq!(s.offset(3), 16 * MIB as u64);
        let text = s.too_large().to_string();
        assert!(
            text.contains("78.1 GiB") && text.contains("part_size"),
            "{text}"
        );
    }

    #[test]
    fn a_slow_store_gets_parts_it_can_take_in_time() {
        let s = TransferLimits::default().schedule(false);
        let m = MIB as u64;
        let five = Duration::from_secs(5);
        // part 3001 is 512 MiB by the schedule.
        assert_eq!(s.size_at_rate(3001, None, five), 512 * m);
        assert_eq!(s.size_at_rate(3001, Some(1e9), five), 512 * m);
        assert_eq!(s.size_at_rate(3001, Some(10e6), five), 50_000_000);
        assert_eq!(s.size_at_rate(3001, Some(1e3), five), 5 * m);
        assert_eq!(s.size_at_rate(1, Some(1e6), five), 5 * m);
        let equal = TransferLimits::default().schedule(true);
        assert_eq!(equal.size_at_rate(3001, Some(1e3), five), 8 * m);
    }

    #[test]
    fn fewer_parts_in_flight_as_parts_grow() {
        let s = TransferLimits::default().schedule(false);
        assert_eq!(s.in_flight(8 * MIB as u64), 4);
        assert_eq!(s.in_flight(16 * MIB as u64), 2);
        assert_eq!(s.in_flight(32 * MIB as u64), 1);
        assert_eq!(s.in_flight(768 * MIB as u64), 1);
        // Never more part memory than the limit: two of the largest parts fit.
        assert!(2 * s.size(10_000) <= TransferLimits::default().memory_limit() as u64);
    }

    #[test]
    fn resume_copies_whole_parts_of_the_schedule() {
        let s = TransferLimits::new(5 * MIB, 2, 64 * MIB)
            .unwrap()
            .with_part_ceiling(20)
            .schedule(false);
        // One part per step: 5, 10, 20, 24 (capped: half of 64 MiB less a 16 MiB reserve), ...
        assert_eq!(s.size(2), 10 * MIB as u64);
        assert_eq!(s.size(4), 24 * MIB as u64);
        let m = MIB as u64;
        assert_eq!(s.whole_parts_within(5 * m - 1), vec![]);
        assert_eq!(
            s.whole_parts_within(16 * m),
            vec![(0, 5 * m - 1), (5 * m, 15 * m - 1)]
        );
        assert_eq!(s.whole_parts_within(35 * m).len(), 3);
        // Never more parts than the ceiling.
        assert_eq!(s.whole_parts_within(u64::MAX).len(), 20);
    }

    #[test]
    fn one_upload_cannot_take_the_reserve() {
        // (part size, memory limit, reserve, largest part) in MiB: the reserve holds two
        // first parts or two 8 MiB download chunks, at most a quarter of the limit; the
        // largest part is half of what is left, so two of them never reach the reserve.
        let table = [
            (8, 1536, 16, 760),
            (8, 512, 16, 248),
            (5, 64, 16, 24),
            (32, 1024, 64, 480),
            (5, 12, 3, 5),
        ];
        for (part, memory, reserve, largest) in table {
            let l = TransferLimits::new(part * MIB, 2, memory * MIB).unwrap();
            assert_eq!(l.reserve(), reserve * MIB, "{part}/{memory}");
            let s = l.schedule(false);
            assert_eq!(s.size(10_000), (largest * MIB) as u64, "{part}/{memory}");
            assert!(2 * largest <= memory - reserve || largest == part);
        }
    }

    #[tokio::test]
    async fn the_reserve_serves_transfers_that_hold_nothing() {
        let m = MIB as u64;
        let pool = TransferLimits::new(5 * MIB, 2, 64 * MIB)
            .unwrap()
            .memory_pool();
        assert_eq!(pool.available(), (48 * 1024, 16 * 1024));
        // One upload's two largest parts take the whole main pool.
        let a = pool.take(24 * m, true).await.unwrap();
        let b = pool.take(24 * m, false).await.unwrap();
        assert_eq!(pool.available(), (0, 16 * 1024));
        assert!(pool.try_take(8 * m).is_none());
        // A download chunk (or a first part) still gets memory, from the reserve...
        let chunk = pool.take(8 * m, true).await.unwrap();
        assert_eq!(pool.available(), (0, 8 * 1024));
        // ...but a transfer that already holds a buffer waits for the main pool.
        let waiting = pool.take(8 * m, false);
        let timed_out = tokio::time::timeout(Duration::from_millis(50), waiting).await;
        assert!(timed_out.is_err());
        // A buffer larger than the reserve never takes it.
        let big = pool.take(24 * m, true);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), big)
                .await
                .is_err()
        );
        drop((a, chunk));
        assert_eq!(pool.available(), (24 * 1024, 16 * 1024));
        // Free main memory is taken first.
        let c = pool.take(8 * m, true).await.unwrap();
        assert_eq!(pool.available(), (16 * 1024, 16 * 1024));
        drop((b, c));
    }
}
