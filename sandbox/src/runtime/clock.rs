//! The guest's monotonic clock, where no sleep may outlast the call's deadline. A WASI sleep
//! blocks inside the host, where the epoch cannot interrupt it: one that would end past the
//! deadline traps at once, as the guest would at the deadline.

use std::time::Instant;

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::clocks::{WasiClocksCtxView, WasiClocksView};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::{self, Host};

use super::state::GuestState;

/// Replaces `wasi:clocks/monotonic-clock` in `linker` (after WASI's own was added).
pub(super) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = monotonic_clock::add_to_linker::<GuestState, DeadlineClocks>(linker, |state| {
        let deadline = state.deadline();
        DeadlineClock {
            inner: state.clocks(),
            deadline,
        }
    });
    linker.allow_shadowing(false);
    added
}

struct DeadlineClocks;

impl HasData for DeadlineClocks {
    type Data<'a> = DeadlineClock<'a>;
}

struct DeadlineClock<'a> {
    inner: WasiClocksCtxView<'a>,
    deadline: Instant,
}

impl DeadlineClock<'_> {
    /// `nanos`, unless that would sleep past the deadline: then the guest is stopped at once,
    /// as it would be at the deadline (sleeping until then would only hold the lock longer).
    fn cut(&self, nanos: u64) -> wasmtime::Result<u64> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if u128::from(nanos) > left.as_nanos() {
            return Err(wasmtime::Trap::Interrupt.into());
        }
        Ok(nanos)
    }
}

impl Host for DeadlineClock<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        self.inner.now()
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        self.inner.resolution()
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let now = self.inner.now()?;
        self.subscribe_duration(when.saturating_sub(now))
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let duration = self.cut(duration)?;
        self.inner.subscribe_duration(duration)
    }
}
