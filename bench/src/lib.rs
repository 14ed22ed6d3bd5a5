//! The side-by-side speed table of issue 7: rows of measured engines, each engine's best try
//! per round and the median over the rounds, and the table of ratios to onnxruntime's int8
//! batch-1 figure. The engines are run by `examples/compare.rs` (through `bash
//! bench/compare.sh`).
//!
//! This crate is its own workspace: tract, a dev-dependency here, is a long build that the
//! project's test command does not need.

use anyhow::{Context, Result, ensure};

/// One measured engine and configuration.
pub struct Row {
    pub engine: &'static str,
    pub batch: usize,
    pub threads: usize,
    pub images_per_s: f64,
}

impl Row {
    pub fn new(engine: &'static str, batch: usize, threads: usize, images_per_s: f64) -> Row {
        Row {
            engine,
            batch,
            threads,
            images_per_s,
        }
    }
}

/// Keeps, per engine and configuration, the fastest of the rounds seen so far.
pub fn keep_best(best: &mut Vec<Row>, rows: Vec<Row>) {
    for row in rows {
        match best
            .iter_mut()
            .find(|b| (b.engine, b.batch, b.threads) == (row.engine, row.batch, row.threads))
        {
            Some(b) => b.images_per_s = b.images_per_s.max(row.images_per_s),
            None => best.push(row),
        }
    }
}

/// Per engine and configuration, the median over `rounds` (each round's rows, e.g. each the
/// best of that round's tries), in the first round's order: on a shared machine one lucky or
/// unlucky round moves it less than the best or the mean. An even count takes the mean of
/// the middle two.
pub fn median_of_rounds(rounds: &[Vec<Row>]) -> Vec<Row> {
    let Some(first) = rounds.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|row| {
            let key = (row.engine, row.batch, row.threads);
            let mut figures: Vec<f64> = rounds
                .iter()
                .flat_map(|round| round.iter())
                .filter(|r| (r.engine, r.batch, r.threads) == key)
                .map(|r| r.images_per_s)
                .collect();
            figures.sort_by(f64::total_cmp);
            let middle = figures.len() / 2;
            let median = if figures.len() % 2 == 0 {
                (figures[middle - 1] + figures[middle]) / 2.0
            } else {
                figures[middle]
            };
            Row::new(row.engine, row.batch, row.threads, median)
        })
        .collect()
}

/// The table, the ratios to onnxruntime int8 batch 1, the machine it ran on and `tiers`, the
/// line saying which instruction sets the engines used.
pub fn table(rows: &[Row], tiers: &str) -> Result<String> {
    let find = |engine: &str, batch: usize, threads: usize| {
        rows.iter()
            .find(|r| (r.engine, r.batch, r.threads) == (engine, batch, threads))
            .map(|r| r.images_per_s)
            .with_context(|| format!("no figure for {engine} batch {batch} threads {threads}"))
    };
    let baseline = find("onnxruntime int8", 1, 1)?;
    ensure!(
        baseline > 0.0,
        "onnxruntime int8 batch 1 measured 0 images/s"
    );
    let mut out = format!("machine: {}\n{tiers}\n\n", machine());
    out += &format!(
        "{:<22} {:>5} {:>7} {:>10} {:>22}\n",
        "engine", "batch", "threads", "images/s", "vs onnxruntime int8 b1"
    );
    for r in rows {
        out += &format!(
            "{:<22} {:>5} {:>7} {:>10.0} {:>21.2}x\n",
            r.engine,
            r.batch,
            r.threads,
            r.images_per_s,
            r.images_per_s / baseline
        );
    }
    out += "\n";
    let mut qcnn_batches: Vec<usize> = rows
        .iter()
        .filter(|r| r.engine == "qcnn int8")
        .map(|r| r.batch)
        .collect();
    qcnn_batches.dedup();
    for batch in qcnn_batches {
        out += &format!(
            "qcnn batch {batch}: 2 threads / 1 thread: {:.2}x\n",
            find("qcnn int8", batch, 2)? / find("qcnn int8", batch, 1)?
        );
    }
    Ok(out)
}

/// CPU model and logical CPU count, from /proc/cpuinfo.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map_or("unknown CPU", |(_, name)| name.trim());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cpus} logical CPUs, {}, Linux {}",
        std::env::consts::ARCH,
        kernel.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(qcnn1: f64, ort: f64) -> Vec<Row> {
        vec![
            Row::new("qcnn int8", 1, 1, qcnn1),
            Row::new("qcnn int8", 1, 2, 2.0 * qcnn1),
            Row::new("onnxruntime int8", 1, 1, ort),
        ]
    }

    #[test]
    fn best_round_counts_and_ratios_are_to_onnxruntime_int8_b1() {
        let mut best = Vec::new();
        keep_best(&mut best, rows(300.0, 100.0));
        keep_best(&mut best, rows(200.0, 150.0));
        assert_eq!(best.len(), 3);
        let text = table(&best, "qcnn kernel tier: avx2").unwrap();
        assert!(text.contains("\nqcnn kernel tier: avx2\n"));
        assert!(
            text.contains("qcnn int8                  1       1        300                  2.00x"),
            "{text}"
        );
        assert!(
            text.contains("qcnn batch 1: 2 threads / 1 thread: 2.00x"),
            "{text}"
        );
    }

    #[test]
    fn the_median_of_rounds_ignores_one_outlier() {
        let rounds = vec![rows(300.0, 100.0), rows(200.0, 900.0), rows(250.0, 110.0)];
        let median = median_of_rounds(&rounds);
        let figures: Vec<f64> = median.iter().map(|r| r.images_per_s).collect();
        assert_eq!(figures, [250.0, 500.0, 110.0]);
        let even = median_of_rounds(&rounds[..2]);
        assert_eq!(even[0].images_per_s, 250.0);
        assert!(median_of_rounds(&[]).is_empty());
    }

    #[test]
    fn a_missing_baseline_is_an_error() {
        let err = table(&[Row::new("qcnn int8", 1, 1, 1.0)], "").unwrap_err();
        assert!(
            err.to_string().contains("onnxruntime int8 batch 1"),
            "{err}"
        );
    }
}
