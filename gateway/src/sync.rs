//! The one policy for a poisoned mutex in this crate: go on with the data. Every mutex here
//! guards plain values (a session list, a login slot, a reason, counters) that each critical
//! section leaves whole before it can panic, so the data behind a poisoned lock are the last
//! complete values; refusing them (or skipping the update, as some places once did) would
//! turn one panic in one session into wrong state for every other. Pure.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, going on with its data if another thread panicked while holding it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_gives_the_last_whole_value() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let mut g = lock(&m2);
            *g = 2;
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*lock(&m), 2);
    }
}
