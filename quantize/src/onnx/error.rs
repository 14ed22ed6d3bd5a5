//! Why an ONNX file cannot be imported. Every error names the file, and where a node is at
//! fault, the node's name and operator type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("reading {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not an ONNX model (protobuf decoding failed)", path.display())]
    Decode {
        path: PathBuf,
        source: prost::DecodeError,
    },
    #[error("{}: not an ONNX model: it holds no graph", path.display())]
    NoGraph { path: PathBuf },
    #[error(
        "{}: opset {version} of the default domain is not supported; qcnn reads opset 13 to 18",
        path.display()
    )]
    Opset { path: PathBuf, version: i64 },
    #[error("{}: the model imports no opset of the default ONNX domain", path.display())]
    NoOpset { path: PathBuf },
    /// Something about the graph as a whole: its inputs, outputs or final shape.
    #[error("{}: {message}", path.display())]
    Graph { path: PathBuf, message: String },
    #[error("{}: initializer {name}: {message}", path.display())]
    Initializer {
        path: PathBuf,
        name: String,
        message: String,
    },
    #[error("{}: node {node} ({op}): {message}", path.display())]
    Node {
        path: PathBuf,
        /// The node's name, or `#<position>` when it has none.
        node: String,
        op: String,
        message: String,
    },
}
