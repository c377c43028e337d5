//! The `spreadout` binary end to end: demo training, then embed, neighbours and eval on its output.

use std::path::Path;
use std::process::Command;

/// Runs the binary with its image cache in `cache` (never the user's).
fn spreadout_in(cache: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_spreadout"))
        .args(args)
        .env("SPREADOUT_CACHE_DIR", cache)
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "spreadout {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

#[test]
fn demo_then_embed_neighbors_and_eval() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let root_str = root.to_str().unwrap();
    let cache = root.join("image-cache");
    let spreadout = |args: &[&str]| spreadout_in(&cache, args);
    let out = spreadout(&[
        "demo", "--out", root_str, "--epochs", "2", "--width", "4", "--device", "cpu",
    ]);
    assert!(out.contains("kNN accuracy"), "{out}");
    let run = root.join("run");
    let data = root.join("data");

    let embeddings = root.join("emb.safetensors");
    let out = spreadout(&[
        "embed",
        run.to_str().unwrap(),
        data.join("test").to_str().unwrap(),
        "--out",
        embeddings.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(out.contains("embedded"), "{out}");

    let query = first_png(&data.join("test"));
    let out = spreadout(&[
        "neighbors",
        embeddings.to_str().unwrap(),
        query.to_str().unwrap(),
        "--k",
        "5",
        "--device",
        "cpu",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    let scores: Vec<f32> = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "sorted by score: {scores:?}"
    );
    assert!(
        !out.contains(query.to_str().unwrap()),
        "the query is not its own neighbour"
    );

    let out = spreadout(&[
        "eval",
        run.to_str().unwrap(),
        "--train",
        data.join("train").to_str().unwrap(),
        "--test",
        data.join("test").to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let knn = report["knn_accuracy"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&knn));
    assert!(
        report["recall_at"]["1"].is_number() && report["nmi"].is_number(),
        "{out}"
    );
}

fn first_png(dir: &Path) -> std::path::PathBuf {
    let class = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    std::fs::read_dir(class)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap()
}

/// Ctrl-C stops a run the way the app's Stop does: the step finishes, a checkpoint is written,
/// and the command ends normally saying how to resume.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_training_with_a_checkpoint_and_the_resume_command() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let spec = spreadout::demo::DemoSpec {
        classes: 2,
        train_per_class: 32,
        test_per_class: 4,
        size: 16,
        seed: 3,
    };
    let folders = spreadout::demo::generate(&dir.path().join("data"), &spec).unwrap();
    let run = dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_spreadout"))
        .args([
            "train",
            folders.train.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ])
        .args([
            "--epochs",
            "500",
            "--width",
            "4",
            "--image-size",
            "16",
            "--batch-size",
            "8",
        ])
        .args(["--device", "cpu"])
        .env("SPREADOUT_CACHE_DIR", dir.path().join("image-cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it trains (the first epoch line), then press Ctrl-C.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("epoch") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "training ended early"
        );
    }
    // SAFETY: sending a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("stopped at") && stderr.contains("--resume"),
        "{stderr}"
    );
    let state = spreadout::train::checkpoint::read_state(&run).unwrap();
    assert!(state.epochs_completed >= 1 && state.epochs_completed < 500);
}
