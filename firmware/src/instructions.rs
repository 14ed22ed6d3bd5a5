//! Instructions executed, counted with SysTick and calibrated against a loop of known length.
//!
//! qemu has no cycle counter (DWT.CYCCNT reads 0), but under `-icount shift=0` every guest
//! instruction advances virtual time by exactly 1 ns, and SysTick counts the core clock in
//! virtual time. So ticks are proportional to instructions; the ratio (40 on mps2-an386, whose
//! core clock is 25 MHz) is measured here rather than assumed. On real silicon the same ticks
//! are core clock cycles, and the calibration then reports cycles per loop instruction instead.
#![allow(unsafe_code)] // the calibration loop is inline assembly, so its length is known exactly

use core::arch::asm;
use core::hint::black_box;
use core::sync::atomic::{Ordering, compiler_fence};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;

/// SysTick is a 24-bit down-counter.
const RELOAD: u32 = 0x00FF_FFFF;
/// Each iteration of `known_loop` is SUBS + BNE.
const LOOP_INSTRUCTIONS_PER_ITERATION: u64 = 2;
const SHORT_LOOP: u32 = 250_000;
const LONG_LOOP: u32 = 1_250_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterError {
    /// SysTick did not advance during calibration: no clock drives it on this machine.
    NotCounting,
    /// The measured code ran longer than one SysTick period, so the count would be ambiguous.
    Overflow,
}

impl core::fmt::Display for CounterError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CounterError::NotCounting => f.write_str("SysTick does not count on this machine"),
            CounterError::Overflow => {
                f.write_str("the measured code outran one SysTick period (2^24 ticks)")
            }
        }
    }
}

impl core::error::Error for CounterError {}

/// `instructions` of the known loop took `ticks` SysTick ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    pub instructions: u64,
    pub ticks: u64,
}

impl Calibration {
    /// Instructions per tick, times 1000, rounded down.
    pub fn milli_instructions_per_tick(&self) -> u64 {
        self.instructions * 1000 / self.ticks
    }
}

pub struct InstructionCounter {
    syst: SYST,
    calibration: Calibration,
}

impl InstructionCounter {
    /// Starts SysTick on the core clock and calibrates it. The two loop lengths are differenced
    /// so that the fixed cost of entering the loop and reading the counter cancels.
    pub fn calibrate(mut syst: SYST) -> Result<InstructionCounter, CounterError> {
        syst.disable_interrupt();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_counter();
        let ((), short) = ticks(&mut syst, || known_loop(SHORT_LOOP))?;
        let ((), long) = ticks(&mut syst, || known_loop(LONG_LOOP))?;
        if long <= short {
            return Err(CounterError::NotCounting);
        }
        let calibration = Calibration {
            instructions: LOOP_INSTRUCTIONS_PER_ITERATION * u64::from(LONG_LOOP - SHORT_LOOP),
            ticks: long - short,
        };
        Ok(InstructionCounter { syst, calibration })
    }

    pub fn calibration(&self) -> Calibration {
        self.calibration
    }

    /// The SysTick count now (it counts down), to mark points inside a [`Self::count`].
    pub fn mark() -> u32 {
        SYST::get_current()
    }

    /// Instructions between two marks taken in one [`Self::count`] (`earlier` first), which
    /// therefore did not wrap.
    pub fn between(&self, earlier: u32, later: u32) -> u64 {
        u64::from(earlier.saturating_sub(later)) * self.calibration.instructions
            / self.calibration.ticks
    }

    /// Runs `f`; returns its result and the instructions it took, to within one tick's worth.
    pub fn count<R>(&mut self, f: impl FnOnce() -> R) -> Result<(R, u64), CounterError> {
        let (result, ticks) = ticks(&mut self.syst, f)?;
        Ok((
            result,
            ticks * self.calibration.instructions / self.calibration.ticks,
        ))
    }
}

/// SysTick ticks taken by `f`; fails rather than guess when the counter wrapped.
fn ticks<R>(syst: &mut SYST, f: impl FnOnce() -> R) -> Result<(R, u64), CounterError> {
    // Writing the current value restarts the count from RELOAD and clears COUNTFLAG.
    syst.clear_current();
    let start = SYST::get_current();
    compiler_fence(Ordering::SeqCst);
    let result = black_box(f());
    compiler_fence(Ordering::SeqCst);
    let end = SYST::get_current();
    if syst.has_wrapped() {
        return Err(CounterError::Overflow);
    }
    // A counter just cleared reads 0 until its next tick reloads it.
    let start = if start == 0 { RELOAD + 1 } else { start };
    Ok((result, u64::from(start - end)))
}

/// Runs exactly `LOOP_INSTRUCTIONS_PER_ITERATION * iterations` instructions in its loop.
#[inline(never)]
fn known_loop(iterations: u32) {
    // SAFETY: only counts a register down to zero; touches no memory and no stack.
    unsafe {
        asm!(
            "2:",
            "subs {n}, {n}, #1",
            "bne 2b",
            n = inout(reg) iterations => _,
            options(nostack),
        );
    }
}
