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
use qcnn_core::plan::Schedule;
use qcnn_core::{InferError, Kernels, LayerKind, Model, ModelError, verify_checksum};
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

/// Whether the static arena was sized below the whole-map schedule (`QCNN_MAX_ARENA` at build
/// time): then inference streams the early layers. A constant, so the other path is not linked.
const STREAMING: bool = embedded::ARENA_LEN < embedded::WHOLE_ARENA_LEN;

/// One inference, in the schedule the arena was sized for. Not inlined: `run`'s frame, under
/// every load and inference, stays small.
#[inline(never)]
fn infer<'b>(
    model: &Model<'_>,
    image: &[u8],
    arena: &'b mut [u8],
) -> Result<qcnn_core::Logits<'b>, InferError> {
    if STREAMING {
        model.infer_streaming(image, arena)
    } else {
        model.infer(image, arena)
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

    // What a boot costs: the checksum alone, every other check alone, and the default load
    // (both).
    // The model lands once in this slot: returned by value through the timing functions,
    // each of their frames held a copy of it under the load (the stack peak).
    let mut slot = None;
    let (model, boot) = load(&mut counter, &mut slot)?;
    // Before any inference or printing: calibration and the loads only.
    let stack_at_load = footprint::stack_peak();
    // The fastest schedule the static arena holds: streaming the early layers when it was
    // sized below the whole-map figure (`QCNN_MAX_ARENA` at build time).
    let schedule = model
        .schedule_for_arena(Kernels::NATIVE, arena.len())
        .ok_or_else(|| FirmwareError::ArenaTooSmall {
            needed: model.min_arena_len_for(Kernels::NATIVE),
            available: arena.len(),
        })?;

    // The inference's own peak, apart from the load's: the paint is laid again under `run`'s
    // frame, so the first inference's figure counts what is on the stack while it runs
    // (`run` and above) and its own depth, not the loads' deeper frames.
    footprint::repaint_stack();
    let mut stack_at_first_inference = 0;
    let mut total = 0u64;
    let (mut fewest, mut most) = (u64::MAX, 0u64);
    for (index, image) in embedded::images().enumerate() {
        let (result, instructions) = counter
            .count(|| infer(model, image, arena))
            .map_err(FirmwareError::Counter)?;
        let logits = result.map_err(|source| FirmwareError::Infer {
            image: index,
            source,
        })?;
        if index == 0 {
            // Before anything is printed: only the inference used the stack since the repaint.
            stack_at_first_inference = footprint::stack_peak();
        }
        print_image_line(index, &logits);
        total += instructions;
        fewest = fewest.min(instructions);
        most = most.max(instructions);
    }

    let run = Run {
        total,
        fewest,
        most,
        load_instructions: boot.load,
        unverified_instructions: boot.unverified,
        checksum_instructions: boot.checksum,
        stack_at_load,
        stack_at_first_inference,
    };
    print_figures(model, arena, &schedule, &mut counter, &run)
}

/// `img <i> pred <c> logits <10 int8>`, as `qcnn predict` prints it. Not inlined, like
/// [`print_figures`].
/// What the boot's three loads cost, in instructions.
struct Boot {
    load: u64,
    unverified: u64,
    checksum: u64,
}

/// The checksum alone, the load without it, then the default load, each timed, each in a
/// function of its own: their temporaries stay out of `run`'s frame, which is on the stack
/// under every load and inference the firmware measures.
fn load<'s>(
    counter: &mut InstructionCounter,
    slot: &'s mut Option<Model<'static>>,
) -> Result<(&'s Model<'static>, Boot), FirmwareError> {
    let checksum = time_checksum(counter)?;
    let unverified = time_load(counter, slot, false)?.1;
    let (model, load) = time_load(counter, slot, true)?;
    let boot = Boot {
        load,
        unverified,
        checksum,
    };
    Ok((model, boot))
}

#[inline(never)]
fn time_checksum(counter: &mut InstructionCounter) -> Result<u64, FirmwareError> {
    let (checksum, instructions) = counter
        .count(|| verify_checksum(BLOB))
        .map_err(FirmwareError::Counter)?;
    checksum.map_err(FirmwareError::Model)?;
    Ok(instructions)
}

/// The load with every check (`verified`: and the checksum), timed; the model lands in `slot`
/// from inside the timed closure. Both loads go through this one function: its frame stays
/// small (the model is not returned by value through it), and it is on the stack under the
/// load's whole depth.
#[inline(never)]
fn time_load<'s>(
    counter: &mut InstructionCounter,
    slot: &'s mut Option<Model<'static>>,
    verified: bool,
) -> Result<(&'s Model<'static>, u64), FirmwareError> {
    let load = || match verified {
        true => Model::from_bytes(BLOB),
        false => Model::from_bytes_unverified(BLOB),
    };
    let (loaded, instructions) = counter
        .count(|| load().map(|model| &*slot.insert(model)))
        .map_err(FirmwareError::Counter)?;
    Ok((loaded.map_err(FirmwareError::Model)?, instructions))
}

#[inline(never)]
fn print_image_line(index: usize, logits: &qcnn_core::Logits<'_>) {
    hprint!("img {} pred {} logits", index, logits.argmax());
    for logit in logits.iter() {
        hprint!(" {}", logit);
    }
    hprintln!();
}

/// What the run measured, for [`print_figures`].
struct Run {
    total: u64,
    fewest: u64,
    most: u64,
    load_instructions: u64,
    unverified_instructions: u64,
    checksum_instructions: u64,
    stack_at_load: usize,
    stack_at_first_inference: usize,
}

/// The `# ` lines. Not inlined: their formatting would otherwise widen `run`'s frame, which
/// is on the stack under every load and inference the firmware measures.
#[inline(never)]
fn print_figures(
    model: &Model<'_>,
    arena: &mut [u8],
    schedule: &Schedule,
    counter: &mut InstructionCounter,
    run: &Run,
) -> Result<(), FirmwareError> {
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
        run.total / images,
        images,
        run.fewest,
        run.most
    );
    let macs = model.macs();
    let milli_per_mac = run.total * 1000 / images / macs;
    hprintln!(
        "# instructions_per_mac {}.{:03} ({} MACs per inference)",
        milli_per_mac / 1000,
        milli_per_mac % 1000,
        macs
    );
    print_profile(model, arena, schedule, counter)?;
    print_boot(
        run.load_instructions,
        run.unverified_instructions,
        run.checksum_instructions,
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
    let ram_static = footprint::ram_static();
    hprintln!(
        "# ram_static_bytes {} (.data + .bss, arena included)",
        ram_static
    );
    hprintln!(
        "# ram_arena_bytes {} (schedule {}; {} layer pairs streamed; whole-map arena {}, least {})",
        arena.len(),
        schedule.arena_len,
        schedule.streamed_pairs(),
        model.arena_len(),
        model.min_arena_len_for(Kernels::NATIVE)
    );
    hprintln!(
        "# model_bytes {} (size_of::<Model>())",
        core::mem::size_of::<Model>()
    );
    hprintln!(
        "# stack_peak_load_bytes {} (reset to the end of the loads: calibration and the three loads)",
        run.stack_at_load
    );
    hprintln!(
        "# stack_peak_inference_bytes {} (the first inference alone: the stack painted again after the loads)",
        run.stack_at_first_inference
    );
    // Both happen on the device, one after the other: the RAM it needs is the larger.
    let stack_peak = run.stack_at_load.max(run.stack_at_first_inference);
    hprintln!(
        "# ram_in_all_bytes {} (static, arena included, + the larger stack peak, load's or inference's: {})",
        ram_static + stack_peak,
        stack_peak
    );
    hprintln!(
        "# stack_peak_total_bytes {} (whole run: the loads, and since them every inference and the semihosting output; stack region {})",
        run.stack_at_load.max(footprint::stack_peak()),
        footprint::stack_size()
    );
    Ok(())
}

/// The boot's three lines. Not inlined: its formatting would otherwise widen `run`'s frame,
/// which is on the stack under every load and inference the firmware measures.
#[inline(never)]
fn print_boot(load_instructions: u64, unverified_instructions: u64, checksum_instructions: u64) {
    hprintln!(
        "# load_instructions {} (Model::from_bytes, the default: every check and the checksum over {} bytes; once per boot)",
        load_instructions,
        BLOB.len()
    );
    hprintln!(
        "# load_unverified_instructions {} (Model::from_bytes_unverified: every check but the checksum)",
        unverified_instructions
    );
    let milli_per_byte = checksum_instructions * 1000 / BLOB.len().max(1) as u64;
    hprintln!(
        "# checksum_instructions {} (verify_checksum: the {} alone, {}.{:03} per byte)",
        checksum_instructions,
        checksum_name(BLOB),
        milli_per_byte / 1000,
        milli_per_byte % 1000
    );
}

/// The checksum the blob's format version names (the blob loaded, so its prefix is valid).
fn checksum_name(blob: &[u8]) -> &'static str {
    let version = u16::from_le_bytes([
        blob.get(4).copied().unwrap_or(0),
        blob.get(5).copied().unwrap_or(0),
    ]);
    match qcnn_core::format::framing(version) {
        Some(framing) => framing.checksum.name(),
        None => "unknown checksum",
    }
}

/// Times every layer of one more inference of image 0 and prints a line per layer: its op,
/// instructions, MACs, the arena it needs (input + scratch + output) and its scratch.
fn print_profile(
    model: &Model<'_>,
    arena: &mut [u8],
    schedule: &Schedule,
    counter: &mut InstructionCounter,
) -> Result<(), FirmwareError> {
    // Room for a layer sequence's layers or a graph's nodes.
    let mut marks = [0_u32; qcnn_core::graph::MAX_NODES + 1];
    let image = embedded::images().next().unwrap_or(&[]);
    let (result, _) = counter
        .count(|| {
            let mut mark = |n: usize| {
                if let Some(mark) = marks.get_mut(n) {
                    *mark = InstructionCounter::mark();
                }
            };
            if STREAMING {
                model.infer_streaming_observed(image, arena, &mut mark)
            } else {
                model.infer_observed(image, arena, &mut mark)
            }
            .map(drop)
        })
        .map_err(FirmwareError::Counter)?;
    result.map_err(|source| FirmwareError::Infer { image: 0, source })?;
    let between = |index: usize| {
        marks
            .get(index)
            .zip(marks.get(index + 1))
            .map_or(0, |(&start, &end)| counter.between(start, end))
    };
    if let Some(graph) = model.graph() {
        // A graph's tensors sit at planned offsets; each node's scratch is what the loader
        // sized for its kernel (and its staging, when it runs over its input).
        for node in graph.nodes() {
            let name = match node.node.op {
                qcnn_core::graph::NodeOp::Conv(_) => "conv",
                qcnn_core::graph::NodeOp::MaxPool(_) => "maxpool",
                qcnn_core::graph::NodeOp::AveragePool { .. } => "avgpool",
                qcnn_core::graph::NodeOp::GlobalAveragePool => "globalavgpool",
                qcnn_core::graph::NodeOp::Add(_) => "add",
                qcnn_core::graph::NodeOp::Gemm(_) => "gemm",
                qcnn_core::graph::NodeOp::ConvAdd(_) => "conv+add",
            };
            hprintln!(
                "# node {} {} instructions {} macs {} arena_bytes {} scratch_bytes {}",
                node.index,
                name,
                between(node.index),
                node.macs,
                model.arena_len(),
                graph.node_scratch_len(&node, Kernels::NATIVE),
            );
        }
        return Ok(());
    }
    for (index, layer) in model.layers().enumerate() {
        let name = match layer.kind() {
            LayerKind::Conv2d { .. } => "conv2d",
            LayerKind::MaxPool2d(_) => "maxpool2d",
            LayerKind::Flatten => "flatten",
            LayerKind::Linear { .. } => "linear",
        };
        // A streamed pair runs as one node: its first layer's line counts both.
        let streamed = if schedule.streams(index) {
            " (streams its rows into the next node; instructions of both)"
        } else if index > 0 && schedule.streams(index - 1) {
            " (streamed from the previous node)"
        } else {
            ""
        };
        hprintln!(
            "# node {} {} instructions {} macs {} arena_bytes {} scratch_bytes {}{}",
            index,
            name,
            between(index),
            layer.macs(),
            layer.arena_need(Kernels::NATIVE).unwrap_or(usize::MAX),
            layer.scratch_len(Kernels::NATIVE),
            streamed
        );
    }
    Ok(())
}
