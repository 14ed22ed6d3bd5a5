//! `qcnn profile`: the arena plan of a model, node by node (op, shapes, MACs, where its
//! input, scratch and output sit in the arena, when its output dies) and the peak, for the
//! kernels of a Cortex-M4 or the portable ones, so users can see what to change in their
//! network to fit a part. `--json` prints the same plan the quantize report carries.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use qcnn_config::config::Config;
use qcnn_core::{Kernels, Model};
use qcnn_dataset::FashionMnist;
use qcnn_quantize::plan::{Place, Plan};

use crate::cli::{ProfileArgs, ProfileKernels};
use crate::model_file;

pub fn run(args: &ProfileArgs, config: &Config) -> Result<()> {
    // Read once, bounded and regular-file-checked; a checkpoint is quantized first, which
    // calibrates on the training split.
    let bytes = model_file::read(&args.model)?;
    let blob = if model_file::is_checkpoint(&args.model) {
        let dataset = FashionMnist::load(&config.data.search_dirs(None))?;
        model_file::load(&args.model, bytes, config, &dataset)?.blob
    } else {
        bytes
    };
    let model = Model::from_bytes(&blob)
        .with_context(|| format!("loading model {}", args.model.display()))?;
    let kernels = match args.kernels {
        ProfileKernels::CortexM4 => Kernels::CortexM4Dsp,
        ProfileKernels::Portable => Kernels::Portable,
    };
    let plan = match args.max_arena {
        None => Plan::of(&model, kernels),
        Some(0) => Plan::within(&model, kernels, model.min_arena_len_for(kernels))
            .map_err(anyhow::Error::msg)?,
        Some(budget) => Plan::within(&model, kernels, budget)
            .map_err(|e| anyhow::anyhow!("--max-arena {budget}: {e}"))?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", table(&plan, model.macs()));
    }
    Ok(())
}

/// The plan as a table, one row per node, then the peak.
pub fn table(plan: &Plan, macs: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} kernels: {} nodes, {macs} MACs, arena {} bytes ({} layer pairs streamed; whole maps {} bytes, least {})",
        plan.kernels,
        plan.nodes.len(),
        plan.arena_bytes,
        plan.streamed_pairs,
        plan.whole_map_arena_bytes,
        plan.least_arena_bytes
    );
    // A graph conv's op (`conv 3x3/s2x2/p[1, 1, 1, 1] g16`) is wider than a layer's.
    let op_width = plan
        .nodes
        .iter()
        .map(|n| n.op.len())
        .max()
        .unwrap_or(0)
        .max(24);
    let _ = writeln!(
        s,
        "{:<4} {:<op_width$} {:<10} {:<10} {:>9} {:>13} {:>13} {:>13} {:>6} {:>7} streaming",
        "node", "op", "input", "output", "MACs", "input@", "scratch@", "output@", "dies", "arena"
    );
    for node in &plan.nodes {
        let dies = node
            .output_dies_after
            .map_or_else(|| "end".to_owned(), |i| format!("{i}"));
        let _ = writeln!(
            s,
            "{:<4} {:<op_width$} {:<10} {:<10} {:>9} {:>13} {:>13} {:>13} {:>6} {:>7} {}",
            node.index,
            node.op,
            shape(&node.input_shape),
            shape(&node.output_shape),
            node.macs,
            place(node.input),
            place(node.scratch),
            place(node.output),
            dies,
            node.arena_bytes,
            match node.streaming {
                "into_next" => "rows into next".to_owned(),
                "from_previous" => "rows from previous".to_owned(),
                _ if node.in_place && node.staged_pixels > 0 => format!(
                    "in place (input staged in scratch, {} pixels a piece)",
                    node.staged_pixels
                ),
                _ if node.in_place => "in place (input staged in scratch)".to_owned(),
                _ => "-".to_owned(),
            }
        );
    }
    let peaks: Vec<String> = plan
        .peak_nodes
        .iter()
        .filter_map(|&i| plan.nodes.get(i))
        .map(|n| format!("node {} ({})", n.index, n.op))
        .collect();
    let _ = writeln!(
        s,
        "peak: {} bytes, set by {}",
        plan.arena_bytes,
        if peaks.is_empty() {
            "the input image".to_owned()
        } else {
            peaks.join(", ")
        }
    );
    let _ = writeln!(
        s,
        "(offset+bytes in the arena; a node's input dies when it ends, its output after node `dies`;\n an in-place node writes its output over its input, which it copies to its scratch piece by piece;\n a streamed pair's first node never writes its map: the rows sit in its scratch)"
    );
    s
}

fn shape(dims: &[usize]) -> String {
    let text: Vec<String> = dims.iter().map(usize::to_string).collect();
    text.join("x")
}

fn place(p: Place) -> String {
    if p.bytes == 0 {
        "-".to_owned()
    } else {
        format!("{}+{}", p.offset, p.bytes)
    }
}
