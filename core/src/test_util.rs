//! Deterministic test data without extra dependencies: core's tests, and (feature `testing`,
//! `no_std`) the firmware's `dsp_check`, so that both draw their cases from one generator.

/// SplitMix64: tiny, fast, and good enough to drive randomized comparisons.
pub struct SplitMix(pub u64);

impl SplitMix {
    // The generator's own name for its step; it is no iterator (it never ends), and core's
    // tests and the firmware's `dsp_check` all call it so.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), up to negligible bias.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Mostly uniform i32, with extremes mixed in often.
    pub fn i32(&mut self) -> i32 {
        const EXTREMES: [i32; 7] = [i32::MIN, i32::MAX, 0, 1, -1, 1 << 30, -(1 << 30)];
        match self.next() % 8 {
            0 => EXTREMES[self.below(EXTREMES.len())],
            1 => (self.next() as i32) >> (self.next() % 31),
            _ => self.next() as i32,
        }
    }

    /// A weight in the range a blob allows, −127..=127.
    pub fn weight(&mut self) -> i8 {
        (self.below(255) as i32 - 127) as i8
    }

    /// Each of `values` set to `constant`, or to a random byte when it is `None`.
    pub fn fill(&mut self, values: &mut [i8], constant: Option<i8>) {
        for v in values {
            *v = constant.unwrap_or(self.next() as i8);
        }
    }

    #[cfg(any(test, feature = "std"))]
    pub fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next() as i8).collect()
    }

    #[cfg(any(test, feature = "std"))]
    pub fn u8s(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Weights in the range a blob allows, −127..=127.
    #[cfg(any(test, feature = "std"))]
    pub fn weights(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.weight()).collect()
    }
}
