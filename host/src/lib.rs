//! qcnn's host harness: evaluates int8 models on FashionMNIST and keeps the results in a
//! database. The binary `qcnn` (src/main.rs) is a thin CLI over these modules.

pub mod cli;
pub mod commands;
pub mod database;
pub mod db;
pub mod evaluate;
pub mod evaluation;
pub mod inference;
pub mod model_file;
pub mod predict;
pub mod profile;
pub mod report;
