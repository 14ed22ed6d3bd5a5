//! Human-readable tables for `qcnn evaluate` and `qcnn results`.

use std::fmt::Write;

use qcnn_dataset::CLASS_NAMES;

use crate::db::ResultRow;
use crate::evaluation::Evaluation;
use qcnn_dataset::scores::Scores;

/// `text` with control characters (newlines, ANSI escape sequences) escaped, so that a stored
/// path cannot rewrite the terminal or forge table rows.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub fn evaluation(e: &Evaluation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "model      {}", printable(&e.model_path));
    let _ = writeln!(out, "blob       sha256 {}", e.model_sha256);
    let _ = writeln!(
        out,
        "samples    {}   threads {}   int8 engine {:.0} images/s\n",
        e.samples, e.threads, e.images_per_s
    );
    let _ = writeln!(
        out,
        "{:<10} {:>8} {:>9} {:>9}",
        "", "loss", "accuracy", "macro-F1"
    );
    let mut variants = vec![("int8", &e.int8)];
    variants.extend(e.float.as_ref().map(|f| ("float", f)));
    for (name, s) in &variants {
        let _ = writeln!(
            out,
            "{name:<10} {:>8.4} {:>9.4} {:>9.4}",
            s.loss, s.accuracy, s.f1_macro
        );
    }
    if let Some(agreement) = e.agreement {
        let _ = writeln!(out, "float/int8 agreement {agreement:.4}");
    }
    for (name, s) in &variants {
        out.push('\n');
        out.push_str(&per_class(name, s));
    }
    let _ = writeln!(
        out,
        "\ngate       accuracy ≥ {} and macro-F1 ≥ {}: {}",
        e.gate.min_accuracy,
        e.gate.min_f1_macro,
        if e.gate.passed { "passed" } else { "FAILED" }
    );
    let _ = writeln!(
        out,
        "recorded   result {} in {}",
        e.result_id,
        printable(&e.database)
    );
    out
}

/// Per-class figures and the confusion matrix (rows: true class, columns: predicted).
fn per_class(variant: &str, s: &Scores) -> String {
    let mut out = String::new();
    let classes = s.per_class.len();
    let _ = write!(
        out,
        "{variant:<5} {:<12} {:>9} {:>7} {:>7} {:>7} |",
        "class", "precision", "recall", "F1", "support"
    );
    for predicted in 0..classes {
        let _ = write!(out, " {predicted:>4}");
    }
    out.push('\n');
    for (class, (m, row)) in s.per_class.iter().zip(s.confusion.rows()).enumerate() {
        let name = CLASS_NAMES.get(class).copied().unwrap_or("");
        let _ = write!(
            out,
            "{class:>5} {name:<12} {:>9.4} {:>7.4} {:>7.4} {:>7} |",
            m.precision, m.recall, m.f1, m.support
        );
        for count in row {
            let _ = write!(out, " {count:>4}");
        }
        out.push('\n');
    }
    out
}

/// Why the gate failed, naming each threshold missed.
pub fn gate_failure(e: &Evaluation) -> String {
    let mut missed = Vec::new();
    if e.int8.accuracy < e.gate.min_accuracy {
        missed.push(format!(
            "int8 accuracy {:.4} is below evaluate.min_accuracy {}",
            e.int8.accuracy, e.gate.min_accuracy
        ));
    }
    if e.int8.f1_macro < e.gate.min_f1_macro {
        missed.push(format!(
            "int8 macro-F1 {:.4} is below evaluate.min_f1_macro {}",
            e.int8.f1_macro, e.gate.min_f1_macro
        ));
    }
    format!(
        "gate failed: {} (result {} recorded)",
        missed.join("; "),
        e.result_id
    )
}

pub fn results_table(rows: &[ResultRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5} {:<26} {:>7} {:>3} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8}  model",
        "id",
        "created (UTC)",
        "samples",
        "thr",
        "images/s",
        "loss",
        "accuracy",
        "macro-F1",
        "fl. acc",
        "agree"
    );
    let optional = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
    for r in rows {
        let _ = writeln!(
            out,
            "{:>5} {:<26} {:>7} {:>3} {:>9.0} {:>7.4} {:>8.4} {:>8.4} {:>8} {:>8}  {}",
            r.id,
            printable(&r.created_at),
            r.samples,
            r.threads,
            r.images_per_s,
            r.loss,
            r.accuracy,
            r.f1_macro,
            optional(r.float_accuracy),
            optional(r.agreement),
            printable(&r.model_path)
        );
    }
    if rows.is_empty() {
        out.push_str("(no results yet: run `qcnn evaluate`)\n");
    }
    out
}
