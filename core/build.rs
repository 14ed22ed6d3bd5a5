//! Sets `cfg(qcnn_arm_dsp)` when the target has the Cortex-M DSP extension (SMLAD, SXTB16),
//! which selects the `ops::arm_dsp` kernel. `target_feature = "dsp"` cannot be tested on
//! stable Rust, so the target name decides: every `thumbv7em` core (Cortex-M4, M7) has it,
//! and any other target can opt in with `-C target-feature=+dsp`.
//!
//! Sets `cfg(qcnn_direct_kernels)` on the other bare-metal targets (`target_os = "none"`:
//! Cortex-M0/M0+/M3, ...): there Conv2d and Linear run their direct loops (one dot product
//! per kernel row or weight row) instead of im2col and the blocked gemm, the same numbers in
//! far less flash. Flash is what such a part lacks; hosts keep the faster portable tier.
//!
//! Also sets `cfg(qcnn_cpu_lacks_<tier>)` for each host kernel tier this machine's CPU lacks
//! when it builds for its own architecture, so that the testing kit's `kernel_tests!` reports
//! those tiers' tests as ignored rather than passed.
use std::env;

/// The host tiers and the CPU features each needs (as `ops::{x86,aarch64}::detect` asks).
const TIERS: [(&str, &str, &[&str]); 4] = [
    ("avx2", "x86_64", &["avx2"]),
    ("avx_vnni", "x86_64", &["avx2", "avxvnni"]),
    (
        "avx512_vnni",
        "x86_64",
        &[
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx512vbmi",
        ],
    ),
    ("neon_dot", "aarch64", &["neon", "dotprod"]),
];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(qcnn_arm_dsp)");
    println!("cargo::rustc-check-cfg=cfg(qcnn_direct_kernels)");
    for (tier, _, _) in TIERS {
        println!("cargo::rustc-check-cfg=cfg(qcnn_cpu_lacks_{tier})");
    }
    let native = env::var("HOST").ok() == env::var("TARGET").ok();
    for (tier, arch, features) in TIERS {
        if native && arch == std::env::consts::ARCH && !features.iter().all(|f| has(f)) {
            println!("cargo::rustc-cfg=qcnn_cpu_lacks_{tier}");
        }
    }
    println!("cargo::rerun-if-changed=build.rs");
    let target = env::var("TARGET").unwrap_or_default();
    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let arm = env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "arm");
    let dsp = arm && (target.starts_with("thumbv7em") || features.split(',').any(|f| f == "dsp"));
    if dsp {
        println!("cargo::rustc-cfg=qcnn_arm_dsp");
    } else if env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "none") {
        println!("cargo::rustc-cfg=qcnn_direct_kernels");
    }
}

/// Whether this machine's CPU has `feature` (the build runs on the machine that tests).
fn has(feature: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    return match feature {
        "avx2" => std::is_x86_feature_detected!("avx2"),
        "avxvnni" => std::is_x86_feature_detected!("avxvnni"),
        "avx512f" => std::is_x86_feature_detected!("avx512f"),
        "avx512bw" => std::is_x86_feature_detected!("avx512bw"),
        "avx512vl" => std::is_x86_feature_detected!("avx512vl"),
        "avx512vnni" => std::is_x86_feature_detected!("avx512vnni"),
        "avx512vbmi" => std::is_x86_feature_detected!("avx512vbmi"),
        _ => false,
    };
    #[cfg(target_arch = "aarch64")]
    return match feature {
        "neon" => std::arch::is_aarch64_feature_detected!("neon"),
        "dotprod" => std::arch::is_aarch64_feature_detected!("dotprod"),
        _ => false,
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return {
        let _ = feature;
        false
    };
}
