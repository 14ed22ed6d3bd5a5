//! Proves on a Cortex-M4 (issue 7) that the DSP kernel behind `qcnn_core::ops::gemm::gemm`
//! (SMLAD/SXTB16 asm, selected on thumbv7em) gives exactly the portable reference kernel's
//! sums: random shapes (every `k mod 16` tail, 1–16 rows, 1–4 columns, short and long dot
//! products) and random or extreme int8 data. Prints one summary line; exits non-zero on the
//! first mismatch. Run by `run-tests.sh` under qemu mps2-an386.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hprintln;
use panic_semihosting as _;
use qcnn_core::ops::gemm::{MAX_COLUMNS, MAX_ROWS, gemm, gemm_portable};

const CASES: usize = 3000;
/// Longest dot product tried: beyond Linear's 3,136 for the seed model.
const MAX_K: usize = 3200;

/// SplitMix64, as in core's tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[entry]
fn main() -> ! {
    static mut WEIGHTS: [i8; MAX_ROWS * MAX_K] = [0; MAX_ROWS * MAX_K];
    static mut COLUMNS: [i8; MAX_COLUMNS * MAX_K] = [0; MAX_COLUMNS * MAX_K];

    let status = match check(WEIGHTS, COLUMNS) {
        Ok(macs) => {
            hprintln!(
                "dsp_check: {} random cases ({} MACs): DSP gemm identical to gemm_portable",
                CASES,
                macs
            );
            EXIT_SUCCESS
        }
        Err(case) => {
            hprintln!("dsp_check: FAIL: {}", case);
            EXIT_FAILURE
        }
    };
    debug::exit(status);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Runs every case; the MACs compared, or the first mismatching case.
fn check(weights: &mut [i8], columns: &mut [i8]) -> Result<u64, Mismatch> {
    let mut rng = Rng(0x5EED);
    let mut macs = 0u64;
    for case in 0..CASES {
        let k = match rng.below(8) {
            0 => rng.below(MAX_K) + 1,
            1 => 16 * (rng.below(MAX_K / 16) + 1),
            _ => rng.below(160) + 1,
        };
        let (rows, n) = (rng.below(MAX_ROWS) + 1, rng.below(MAX_COLUMNS) + 1);
        let (w, x) = (&mut weights[..rows * k], &mut columns[..n * k]);
        match case % 10 {
            // The largest products, all of one sign, over the whole dot product.
            0 => (w.fill(-128), x.fill(-128)),
            1 => (w.fill(127), x.fill(-128)),
            _ => (
                w.iter_mut().for_each(|v| *v = rng.next() as i8),
                x.iter_mut().for_each(|v| *v = rng.next() as i8),
            ),
        };
        let mut fast = [0x5a5a_5a5a_i32; MAX_ROWS * MAX_COLUMNS + 1];
        let mut portable = fast;
        gemm(w, x, k, &mut fast);
        gemm_portable(w, x, k, &mut portable);
        if fast != portable {
            let at = fast
                .iter()
                .zip(&portable)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(Mismatch {
                case,
                rows,
                n,
                k,
                at,
                fast: fast[at],
                portable: portable[at],
            });
        }
        macs += (rows * n * k) as u64;
    }
    Ok(macs)
}

struct Mismatch {
    case: usize,
    rows: usize,
    n: usize,
    k: usize,
    at: usize,
    fast: i32,
    portable: i32,
}

impl core::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "case {}: {} rows x {} columns, k {}: acc[{}] is {} with the DSP kernel, {} portable",
            self.case, self.rows, self.n, self.k, self.at, self.fast, self.portable
        )
    }
}
