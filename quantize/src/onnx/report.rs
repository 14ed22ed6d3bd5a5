//! What the import did to the graph, for the quantize report: nothing is changed silently.

use serde::Serialize;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// The opset of the default ONNX domain.
    pub opset: i64,
    /// `producer_name producer_version`, e.g. "pytorch 2.11.0".
    pub producer: String,
    /// Nodes in the graph, `Constant` nodes included.
    pub nodes: usize,
    /// BatchNormalization and constant Add nodes folded into the Conv or Gemm before them.
    pub folded: Vec<String>,
    /// Nodes that change nothing at inference (Dropout, Identity), and a trailing Softmax, whose
    /// removal leaves the logits as the model's output.
    pub dropped: Vec<String>,
    /// Nodes reordered where the result is the same (a Relu after a MaxPool).
    pub moved: Vec<String>,
    /// A QDQ model's quantization: which integer weights and biases were read through their
    /// DequantizeLinear, which activation QuantizeLinear scales and zero points the blob
    /// takes over, and which it does not (and why).
    pub qdq: Vec<String>,
}

impl ImportReport {
    /// Was a trailing Softmax dropped (the outputs are then logits, not probabilities)?
    pub fn softmax_dropped(&self) -> bool {
        self.dropped.iter().any(|d| d.starts_with("Softmax "))
    }
}
