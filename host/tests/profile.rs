//! `qcnn profile`: the arena plan of the release model, as a table and as JSON, checked
//! against the engine's own figures.

mod support;

use qcnn_core::{Kernels, Model};
use support::cli::{TestEnv, release_blob};

fn release_model_figures() -> (Vec<u8>, usize, usize, u64) {
    let blob = std::fs::read(release_blob()).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    let (m4, portable, macs) = (
        model.arena_len_for(Kernels::CortexM4Dsp),
        model.arena_len_for(Kernels::Portable),
        model.macs(),
    );
    (blob, m4, portable, macs)
}

#[test]
fn profile_prints_every_node_and_the_peak() {
    let (_, m4_arena, _, macs) = release_model_figures();
    let env = TestEnv::new();
    let run = env.run(&["profile", "--model", release_blob().to_str().unwrap()]);
    run.assert_success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    let blob = std::fs::read(release_blob()).unwrap();
    let least = Model::from_bytes(&blob)
        .unwrap()
        .min_arena_len_for(Kernels::CortexM4Dsp);
    assert_eq!(
        lines[0],
        format!(
            "cortex-m4 kernels: 5 nodes, {macs} MACs, arena {m4_arena} bytes \
             (0 layer pairs streamed; whole maps {m4_arena} bytes, least {least})"
        )
    );
    // A header, then one row per node: index, op, input and output shapes, MACs, places.
    let rows: Vec<Vec<&str>> = lines[2..7]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0][..5],
        ["0", "conv2d", "3x3/p1+relu", "1x28x28", "8x28x28"]
    );
    assert_eq!(
        rows[1][..5],
        ["1", "conv2d", "3x3/p1+relu+pool2", "8x28x28", "16x14x14"]
    );
    assert_eq!(rows[2][..4], ["2", "flatten", "16x14x14", "3136"]);
    assert_eq!(rows[3][..4], ["3", "linear+relu", "3136", "256"]);
    assert_eq!(rows[4][..4], ["4", "linear", "256", "10"]);
    // conv2 sets the arena: its input at the back, its output at the front, its scratch
    // between them, and its row's need is the whole arena.
    // (Columns: node, op (two words for a conv), input, output, MACs, input@, scratch@,
    // output@, dies, arena.)
    assert_eq!(rows[1][6], format!("{}+6272", m4_arena - 6272));
    assert_eq!(rows[1][7], format!("3136+{}", m4_arena - 6272 - 3136));
    assert_eq!(rows[1][8], "0+3136");
    assert_eq!(rows[1][10], m4_arena.to_string());
    assert_eq!(rows[4][8], "end", "the logits outlive the inference");
    assert_eq!(
        lines[7],
        format!("peak: {m4_arena} bytes, set by node 1 (conv2d 3x3/p1+relu+pool2)")
    );
}

#[test]
fn profile_json_is_the_plan_for_the_kernels_asked() {
    let (_, m4_arena, portable_arena, _) = release_model_figures();
    let env = TestEnv::new();
    let blob = release_blob().to_str().unwrap();
    let m4 = env.run(&["profile", "--model", blob, "--json"]).json();
    assert_eq!(m4["kernels"], "cortex-m4");
    assert_eq!(m4["arena_bytes"], m4_arena);
    assert_eq!(m4["peak_nodes"], serde_json::json!([1]));
    let conv2 = &m4["nodes"][1];
    assert_eq!(
        conv2["output_dies_after"], 3,
        "Flatten passes it on to the first Linear"
    );
    let bytes = |key: &str| conv2[key]["bytes"].as_u64().unwrap() as usize;
    assert_eq!(
        bytes("input") + bytes("scratch") + bytes("output"),
        m4_arena
    );

    let portable = env
        .run(&[
            "profile",
            "--model",
            blob,
            "--kernels",
            "portable",
            "--json",
        ])
        .json();
    assert_eq!(portable["kernels"], "portable");
    assert_eq!(portable["arena_bytes"], portable_arena);
    assert!(
        portable_arena < m4_arena,
        "the portable kernels need less scratch"
    );
}

#[test]
fn profile_of_a_broken_blob_names_the_file() {
    let (mut blob, ..) = release_model_figures();
    blob.truncate(100);
    let env = TestEnv::new();
    let path = env.path("short.qcnn");
    std::fs::write(&path, blob).unwrap();
    env.run(&["profile", "--model", path.to_str().unwrap()])
        .assert_clean_failure(&format!("loading model {}", path.display()));
}

/// `--max-arena`: the fastest schedule within the budget streams conv1's rows into conv2, and
/// a budget below the least arena is refused with that figure.
#[test]
fn profile_within_a_budget_streams_the_first_conv() {
    let (blob, m4_arena, _, _) = release_model_figures();
    let least = Model::from_bytes(&blob)
        .unwrap()
        .min_arena_len_for(Kernels::CortexM4Dsp);
    assert!(least < m4_arena);
    let env = TestEnv::new();
    let path = release_blob().to_str().unwrap();
    let budget = least.to_string();
    let plan = env
        .run(&["profile", "--model", path, "--max-arena", &budget, "--json"])
        .json();
    assert_eq!(plan["arena_bytes"], least);
    assert_eq!(plan["least_arena_bytes"], least);
    assert_eq!(plan["whole_map_arena_bytes"], m4_arena);
    assert_eq!(plan["streamed_pairs"], 1);
    assert_eq!(plan["nodes"][0]["streaming"], "into_next");
    assert_eq!(plan["nodes"][1]["streaming"], "from_previous");
    assert_eq!(plan["nodes"][3]["streaming"], "no");
    for node in plan["nodes"].as_array().unwrap() {
        assert!(node["arena_bytes"].as_u64().unwrap() as usize <= least);
    }
    // `0`: the least arena.
    let zero = env
        .run(&["profile", "--model", path, "--max-arena", "0", "--json"])
        .json();
    assert_eq!(zero["arena_bytes"], least);
    let short = (least - 1).to_string();
    env.run(&["profile", "--model", path, "--max-arena", &short])
        .assert_clean_failure(&format!(
            "--max-arena {short}: the model needs at least {least} bytes of arena with the cortex-m4 kernels"
        ));
}
