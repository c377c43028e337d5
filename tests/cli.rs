//! The `spreadout` binary end to end: demo training, then embed, neighbours and eval on its output.

use std::path::Path;
use std::process::Command;

fn spreadout(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_spreadout"))
        .args(args)
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
