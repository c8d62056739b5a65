//! SQLite's share of the memory budget. SQLite's heap limit is process-wide, so it is shared
//! out: while migrations run, the hard limit is what SQLite had in use when the first of them
//! began plus the budget of each one running. A statement that would go past it fails with
//! SQLITE_NOMEM (a `zeroblob` of gigabytes, a huge sort, hundreds of big statements), and the
//! process stays within its bound.

use std::sync::Mutex;

use rusqlite::ffi;

struct Shared {
    /// Migrations running now.
    running: usize,
    /// Their budgets added up.
    budgets: i64,
    /// SQLite's usage when the first of them began.
    base: i64,
    /// The limit in force before, put back when the last one ends.
    before: i64,
}

static SHARED: Mutex<Shared> = Mutex::new(Shared {
    running: 0,
    budgets: 0,
    base: 0,
    before: 0,
});

/// One running migration's share; given back on drop.
pub(crate) struct Reservation {
    budget: i64,
}

/// Raises SQLite's hard heap limit by `budget` bytes for as long as the reservation lives.
pub(crate) fn reserve(budget: usize) -> Reservation {
    let budget = i64::try_from(budget).unwrap_or(i64::MAX / 4);
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if shared.running == 0 {
        // SAFETY: both calls only read or set SQLite's global counters, under its own mutex.
        shared.before = unsafe { ffi::sqlite3_hard_heap_limit64(-1) };
        shared.base = unsafe { ffi::sqlite3_memory_used() };
    }
    shared.running += 1;
    shared.budgets += budget;
    apply(&shared);
    Reservation { budget }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        shared.running -= 1;
        shared.budgets -= self.budget;
        if shared.running == 0 {
            // SAFETY: as in `reserve`.
            unsafe { ffi::sqlite3_hard_heap_limit64(shared.before) };
        } else {
            apply(&shared);
        }
    }
}

fn apply(shared: &Shared) {
    // SAFETY: as in `reserve`.
    unsafe { ffi::sqlite3_hard_heap_limit64(shared.base.saturating_add(shared.budgets)) };
}
