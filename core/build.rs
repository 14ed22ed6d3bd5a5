//! Sets `cfg(qcnn_arm_dsp)` when the target has the Cortex-M DSP extension (SMLAD, SXTB16),
//! which selects the `ops::arm_dsp` kernel. `target_feature = "dsp"` cannot be tested on
//! stable Rust, so the target name decides: every `thumbv7em` core (Cortex-M4, M7) has it,
//! and any other target can opt in with `-C target-feature=+dsp`.
use std::env;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(qcnn_arm_dsp)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = env::var("TARGET").unwrap_or_default();
    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let arm = env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "arm");
    if arm && (target.starts_with("thumbv7em") || features.split(',').any(|f| f == "dsp")) {
        println!("cargo::rustc-cfg=qcnn_arm_dsp");
    }
}
