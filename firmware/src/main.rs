//! Runs the embedded model on each embedded test image and prints, over semihosting, one line
//! per image in `qcnn predict`'s format, then what it cost: lines starting with `# `.
//! Exits 0 when every image ran, non-zero on any error (a panic exits non-zero too).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::fmt;

use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::{hprint, hprintln};
use panic_semihosting as _;
use qcnn_core::{InferError, Model, ModelError};
use qcnn_firmware::embedded::{self, ARENA_LEN, BLOB, IMAGES};
use qcnn_firmware::footprint;
use qcnn_firmware::instructions::{CounterError, InstructionCounter};

#[derive(Debug)]
enum FirmwareError {
    Model(ModelError),
    ArenaTooSmall { needed: usize, available: usize },
    Infer { image: usize, source: InferError },
    Counter(CounterError),
    PeripheralsTaken,
}

impl fmt::Display for FirmwareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FirmwareError::Model(err) => write!(f, "loading the embedded model: {err}"),
            FirmwareError::ArenaTooSmall { needed, available } => {
                write!(
                    f,
                    "the model needs a {needed}-byte arena, the firmware has {available}"
                )
            }
            FirmwareError::Infer { image, source } => write!(f, "image {image}: {source}"),
            FirmwareError::Counter(err) => write!(f, "counting instructions: {err}"),
            FirmwareError::PeripheralsTaken => {
                f.write_str("the core peripherals were already taken")
            }
        }
    }
}

#[entry]
fn main() -> ! {
    // In .bss, so the arena shows in the static RAM figure rather than on the stack.
    // cortex-m-rt turns this `static mut` into a safe `&'static mut`, as `main` runs once.
    static mut ARENA: [u8; ARENA_LEN] = [0; ARENA_LEN];

    let status = match run(ARENA) {
        Ok(()) => EXIT_SUCCESS,
        Err(err) => {
            hprintln!("error: {}", err);
            EXIT_FAILURE
        }
    };
    debug::exit(status);
    // Only reached when no debugger is attached to stop the program.
    loop {
        cortex_m::asm::wfi();
    }
}

fn run(arena: &mut [u8]) -> Result<(), FirmwareError> {
    let peripherals = cortex_m::Peripherals::take().ok_or(FirmwareError::PeripheralsTaken)?;
    let mut counter =
        InstructionCounter::calibrate(peripherals.SYST).map_err(FirmwareError::Counter)?;

    // A load of its own: moving the ~4 KB `Model` out through the counter would cost stack
    // that the 16 KiB micro:bit does not have.
    let (loaded, load_instructions) = counter
        .count(|| Model::from_bytes(BLOB).map(drop))
        .map_err(FirmwareError::Counter)?;
    loaded.map_err(FirmwareError::Model)?;
    let model = Model::from_bytes(BLOB).map_err(FirmwareError::Model)?;
    let needed = model.arena_len();
    if needed > arena.len() {
        return Err(FirmwareError::ArenaTooSmall {
            needed,
            available: arena.len(),
        });
    }

    let mut stack_at_first_inference = 0;
    let mut total = 0u64;
    let (mut fewest, mut most) = (u64::MAX, 0u64);
    for (index, image) in embedded::images().enumerate() {
        let (result, instructions) = counter
            .count(|| model.infer(image, arena))
            .map_err(FirmwareError::Counter)?;
        let logits = result.map_err(|source| FirmwareError::Infer {
            image: index,
            source,
        })?;
        if index == 0 {
            // Before anything is printed: only loading, calibration and inference used the stack.
            stack_at_first_inference = footprint::stack_peak();
        }
        hprint!("img {} pred {} logits", index, logits.argmax());
        for logit in logits.iter() {
            hprint!(" {}", logit);
        }
        hprintln!();
        total += instructions;
        fewest = fewest.min(instructions);
        most = most.max(instructions);
    }

    let images = embedded::images().count() as u64;
    let calibration = counter.calibration();
    let milli = calibration.milli_instructions_per_tick();
    hprintln!(
        "# instructions_per_tick {}.{:03} (calibration loop: {} instructions in {} ticks)",
        milli / 1000,
        milli % 1000,
        calibration.instructions,
        calibration.ticks
    );
    hprintln!(
        "# instructions_per_inference {} (mean of {} images; min {}, max {})",
        total / images,
        images,
        fewest,
        most
    );
    let macs = model.macs();
    let milli_per_mac = total * 1000 / images / macs;
    hprintln!(
        "# instructions_per_mac {}.{:03} ({} MACs per inference)",
        milli_per_mac / 1000,
        milli_per_mac % 1000,
        macs
    );
    hprintln!(
        "# load_instructions {} (Model::from_bytes: CRC over {} bytes, every check; once per boot)",
        load_instructions,
        BLOB.len()
    );
    let flash = footprint::flash_used();
    let data = BLOB.len() + IMAGES.len();
    hprintln!("# flash_total_bytes {}", flash);
    hprintln!(
        "# flash_code_bytes {} (flash without the blob and the test images)",
        flash - data
    );
    hprintln!("# flash_blob_bytes {}", BLOB.len());
    hprintln!("# flash_images_bytes {} ({} images)", IMAGES.len(), images);
    hprintln!(
        "# ram_static_bytes {} (.data + .bss, arena included)",
        footprint::ram_static()
    );
    hprintln!(
        "# ram_arena_bytes {} (model.arena_len() {})",
        arena.len(),
        needed
    );
    hprintln!(
        "# stack_peak_inference_bytes {} (reset to first inference)",
        stack_at_first_inference
    );
    hprintln!(
        "# stack_peak_total_bytes {} (whole run, semihosting output included; stack region {})",
        footprint::stack_peak(),
        footprint::stack_size()
    );
    Ok(())
}
