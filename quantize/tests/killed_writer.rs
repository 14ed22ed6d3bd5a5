//! Issue 17: a writer killed at a random instant leaves each destination either as it was or
//! complete, never a mix or a truncation, and a later write removes what the killed one left.
//!
//! A plain `main` (harness = false): the test starts this same binary with `--child DIR` as
//! the writer, which rewrites two files in a loop, and kills it with SIGKILL at random
//! instants.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use qcnn_dataset::rng::SplitMix64;
use qcnn_quantize::output::write_all_or_nothing;

const NAME: &str = "killed_writer_leaves_the_old_file_or_the_new";
const KILLS: usize = 40;

/// Two versions of each file, of different lengths, so a mix or a truncation shows.
fn versions() -> [[Vec<u8>; 2]; 2] {
    let make = |byte: u8, len: usize| vec![byte; len];
    [
        [make(b'a', 3 << 20), make(b'b', (2 << 20) + 17)],
        [make(b'x', 100_003), make(b'y', 50_001)],
    ]
}

fn write_version(dir: &Path, version: usize) {
    let files = versions();
    write_all_or_nothing(&[
        (&dir.join("model.qcnn"), &files[0][version]),
        (&dir.join("report.json"), &files[1][version]),
    ])
    .expect("writing");
}

fn child(dir: &Path) -> ! {
    loop {
        write_version(dir, 1);
        write_version(dir, 0);
    }
}

fn parent() {
    let seed = std::env::var("QCNN_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    println!("{NAME}: seed {seed} (QCNN_KILL_SEED reproduces it)");
    // The project's seeded RNG (the split's); the seed is printed to reproduce a run.
    let mut random = SplitMix64::new(seed);
    let dir = tempfile::tempdir().unwrap();
    write_version(dir.path(), 0);
    let versions = versions();
    let mut leftovers_seen = 0;
    for kill in 0..KILLS {
        let mut writer = Command::new(std::env::current_exe().unwrap())
            .arg("--child")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(random.below(60_000)));
        writer.kill().unwrap();
        writer.wait().unwrap();
        for (name, versions) in ["model.qcnn", "report.json"].iter().zip(&versions) {
            let bytes = std::fs::read(dir.path().join(name)).unwrap();
            assert!(
                versions.contains(&bytes),
                "kill {kill}: {name} is neither version ({} bytes; seed {seed})",
                bytes.len()
            );
        }
        leftovers_seen += std::fs::read_dir(dir.path()).unwrap().count() - 2;
    }
    println!("{NAME}: {KILLS} kills, {leftovers_seen} temporary files left by them");
    write_version(dir.path(), 1);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["model.qcnn", "report.json"],
        "a later write removes what killed writers left"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        child(Path::new(&args[at + 1]));
    }
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    parent();
    println!("test {NAME} ... ok");
}
