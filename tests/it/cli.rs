//! The `spreadout` binary end to end: demo training, then embed, neighbours and eval on its output.

use std::path::Path;
use std::process::Command;

/// Runs the binary with its image cache in `cache` (never the user's); its standard output.
fn spreadout_in(cache: &Path, args: &[&str]) -> String {
    spreadout_with_stderr(cache, args).0
}

/// [`spreadout_in`] with what it said on standard error.
fn spreadout_with_stderr(cache: &Path, args: &[&str]) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_spreadout"))
        .args(args)
        .env("SPREADOUT_CACHE_DIR", cache)
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "spreadout {args:?} failed:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
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
    // With the model and a folder instead: the same list's length, and a word on whether the
    // model separates copies yet, from the same measure as Explore's (printed where it does not).
    let (out, said) = spreadout_with_stderr(
        &cache,
        &[
            "neighbors",
            run.to_str().unwrap(),
            query.to_str().unwrap(),
            "--among",
            data.join("test").to_str().unwrap(),
            "--k",
            "5",
            "--device",
            "cpu",
        ],
    );
    assert_eq!(out.lines().count(), 5, "{out}");
    let collection = spreadout::explore::Collection::build(
        &run,
        &data.join("test"),
        &spreadout::data::PixelCache::at(cache.clone()),
        &spreadout::device::cpu().device,
        &|_, _| true,
    )
    .unwrap()
    .scoring_pairs_by(spreadout::explore::PairScore::WholeImages);
    match collection.readiness().unwrap().note {
        Some(note) => assert!(said.contains(&note), "{said}"),
        None => assert!(!said.contains("cannot tell"), "{said}"),
    }

    let out = spreadout(&[
        "eval",
        run.to_str().unwrap(),
        "--train",
        data.join("train").to_str().unwrap(),
        "--test",
        data.join("test").to_str().unwrap(),
        "--k",
        "50",
        "--device",
        "cpu",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The same model on the same folders with the demo's k (50) and σ: eval reproduces the kNN the run
    // reported after its last epoch (both embed centre views on the CPU).
    let knn = report["knn_accuracy"].as_f64().unwrap();
    let metrics = spreadout::train::read_metrics(&run).unwrap();
    let reported = metrics.last().unwrap().knn_accuracy.unwrap();
    assert!(
        (knn - reported).abs() < 1e-9,
        "eval {knn} vs run {reported}"
    );
    assert_eq!(
        report["classified_images"].as_u64(),
        report["test_images"].as_u64()
    );

    // Unseen categories (§4.2): a memory of two classes, a test folder of the other two. kNN is
    // not scored; Recall@K is computed within the test folder and equals Recall@K recomputed here
    // by brute force from `spreadout embed` of that folder.
    let classes: Vec<std::path::PathBuf> = sorted_entries(&data.join("test"));
    assert!(classes.len() >= 4, "the demo has four classes");
    let (seen, unseen) = (root.join("seen"), root.join("unseen"));
    for (target, source, chosen) in [
        (&seen, data.join("train"), &classes[..2]),
        (&unseen, data.join("test"), &classes[2..4]),
    ] {
        for class in chosen {
            let name = class.file_name().unwrap();
            std::fs::create_dir_all(target.join(name)).unwrap();
            for file in sorted_entries(&source.join(name)) {
                std::fs::copy(&file, target.join(name).join(file.file_name().unwrap())).unwrap();
            }
        }
    }
    let out = spreadout(&[
        "eval",
        run.to_str().unwrap(),
        "--train",
        seen.to_str().unwrap(),
        "--test",
        unseen.to_str().unwrap(),
        "--recall-k",
        "1,3",
        "--device",
        "cpu",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["knn_accuracy"].is_null(), "{out}");
    assert_eq!(report["test_classes_in_memory"].as_u64(), Some(0));
    assert_eq!(
        report["retrieval_scored_on"].as_str(),
        unseen.to_str(),
        "{out}"
    );
    let unseen_embeddings = root.join("unseen.safetensors");
    spreadout(&[
        "embed",
        run.to_str().unwrap(),
        unseen.to_str().unwrap(),
        "--out",
        unseen_embeddings.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    let embedded = spreadout::embed::EmbeddingsFile::read(&unseen_embeddings).unwrap();
    let (values, dim, paths) = (&embedded.embeddings, embedded.dim, &embedded.paths);
    let labels: Vec<String> = paths
        .iter()
        .map(|p| {
            p.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for k in [1usize, 3] {
        let hits = (0..paths.len())
            .filter(|&q| {
                let row = |i: usize| &values[i * dim..(i + 1) * dim];
                let mut others: Vec<(usize, f64)> = (0..paths.len())
                    .filter(|&i| i != q)
                    .map(|i| {
                        let s = row(q)
                            .iter()
                            .zip(row(i))
                            .map(|(a, b)| f64::from(a * b))
                            .sum();
                        (i, s)
                    })
                    .collect();
                others.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                others[..k].iter().any(|&(i, _)| labels[i] == labels[q])
            })
            .count();
        let expected = 100.0 * hits as f64 / paths.len() as f64;
        let reported = report["recall_at"][k.to_string()].as_f64().unwrap();
        assert!(
            (reported - expected).abs() < 1e-9,
            "Recall@{k}: eval {reported} vs recomputed {expected}"
        );
    }
    assert!(report["nmi"].is_number(), "{out}");
}

fn sorted_entries(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries
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
    let spec = spreadout::lab::demo::DemoSpec {
        classes: 2,
        train_per_class: 32,
        test_per_class: 4,
        size: 16,
        seed: 3,
    };
    let folders = spreadout::lab::demo::generate(&dir.path().join("data"), &spec).unwrap();
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
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("stopped at") && stderr.contains("--resume"),
        "{stderr}"
    );
    let state = spreadout::train::run_folder::checkpoint::read_state(&run).unwrap();
    assert!(state.epochs_completed >= 1 && state.epochs_completed < 500);
}

#[test]
fn the_demo_keeps_its_data_and_run_where_its_last_line_says() {
    let home = tempfile::tempdir().unwrap();
    let data_home = home.path().join("data-home");
    let output = Command::new(env!("CARGO_BIN_EXE_spreadout"))
        .args(["demo", "--epochs", "1", "--width", "4", "--device", "cpu"])
        .env("SPREADOUT_CACHE_DIR", home.path().join("image-cache"))
        .env("XDG_DATA_HOME", &data_home)
        // Windows keeps its per-user folders under %LOCALAPPDATA%, macOS under ~/Library.
        .env("LOCALAPPDATA", &data_home)
        .env("HOME", &data_home)
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let model = stdout
        .rsplit_once("model in ")
        .map(|(_, path)| Path::new(path.trim()).to_owned())
        .expect("the last line names the model");
    // The platform's per-user data folder, below the home the command was given.
    let demo = if cfg!(windows) {
        data_home.join("Spreadout").join("data").join("demo")
    } else if cfg!(target_os = "macos") {
        data_home.join("Library/Application Support/Spreadout/demo")
    } else {
        data_home.join("spreadout/demo")
    };
    assert!(model.starts_with(&demo), "{}", model.display());
    assert!(
        model.is_file(),
        "{} exists after the demo ended",
        model.display()
    );
}

/// Before any training: `spreadout duplicates DIR` (no model) finds the re-encoded, resized,
/// brightened and noisy copies planted among real photographs by their perceptual hashes alone,
/// at the threshold the folder suggests, with precision at least 0.95.
#[test]
fn duplicates_without_a_model_find_planted_copies_by_their_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cifar10-jpg.tar.gz");
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked)
        .arg("--wildcards")
        .args([
            "train/cat/*",
            "train/ship/*",
            "train/frog/*",
            "train/truck/*",
        ])
        .status();
    let status = match status {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            // Windows 10 and 11 carry tar.exe; Wine has none.
            return crate::skip::because("no `tar` program to unpack CIFAR-10 with");
        }
        status => status.expect("tar runs"),
    };
    assert!(status.success(), "unpacking {}", archive.display());
    let originals = dir.path().join("originals");
    for class in ["cat", "ship", "frog", "truck"] {
        let mut files: Vec<_> = std::fs::read_dir(unpacked.join("train").join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        std::fs::create_dir_all(originals.join(class)).unwrap();
        for file in files.into_iter().take(150) {
            std::fs::rename(&file, originals.join(class).join(file.file_name().unwrap())).unwrap();
        }
    }
    let cache = dir.path().join("cache");
    let planted = dir.path().join("planted");
    let (originals, planted_arg) = (originals.to_str().unwrap(), planted.to_str().unwrap());
    spreadout_in(
        &cache,
        &["plant-copies", originals, planted_arg, "--fraction", "0.25"],
    );
    let truth = planted.join("planted-copies.csv");
    // Decisions about groups go to a throw-away data folder, never the person's.
    let data = dir.path().join("data");
    let duplicates = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_spreadout"))
            .arg("duplicates")
            .arg(planted_arg)
            .args(args)
            .env("SPREADOUT_CACHE_DIR", &cache)
            .env("SPREADOUT_DATA_DIR", &data)
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        (String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
    };
    let (stdout, stderr) = duplicates(&["--json", "--truth", truth.to_str().unwrap()]);
    assert!(
        stderr.contains("no model: perceptual hashes alone"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        json["threshold"].is_null(),
        "no embedding threshold without a model"
    );
    assert!(json["links"][0][0]["stage"] == "hash", "{json}");
    // "planted pairs: precision P (…), recall R (…); recall per edit: jpeg a, downscale b, …"
    let line = stderr
        .lines()
        .find(|l| l.starts_with("planted pairs"))
        .unwrap();
    let number_after = |label: &str| -> f64 {
        let rest = &line[line.find(label).unwrap() + label.len()..];
        rest.trim_start()
            .split([' ', ',', ';'])
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(number_after("precision") >= 0.95, "{line}");
    let recalls: Vec<f64> = ["jpeg", "downscale", "brighten", "noise"]
        .iter()
        .map(|edit| number_after(&format!("{edit} ")))
        .collect();
    let mean = recalls.iter().sum::<f64>() / recalls.len() as f64;
    assert!(mean >= 0.9, "{line}");

    // The copy to keep: a downscaled copy never, since its original has more pixels.
    // "copy to keep: the original in K of N planted pairs found; per edit: jpeg a/b, …"
    let keep_line = stderr
        .lines()
        .find(|l| l.starts_with("copy to keep"))
        .unwrap();
    let per_edit = |edit: &str| -> (usize, usize) {
        let rest = &keep_line[keep_line.find(&format!("{edit} ")).unwrap() + edit.len() + 1..];
        let fraction = rest.split([',', ' ']).next().unwrap();
        let (kept, all) = fraction.split_once('/').unwrap();
        (kept.parse().unwrap(), all.parse().unwrap())
    };
    let (kept, all) = per_edit("downscale");
    assert!(all > 0 && kept == all, "{keep_line}");
    eprintln!("{keep_line}");
    assert!(json["keep"][0]["reason"].is_string(), "{json}");

    // A group marked resolved is set aside by the next search, listed only when asked, and
    // flagged in the export; reopened, it is listed again.
    let first: Vec<&str> = json["groups"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let (_, said) = duplicates(&["--resolve", "1"]);
    assert!(said.contains("group 1 marked resolved, keeping"), "{said}");
    let (listing, _) = duplicates(&[]);
    assert!(
        listing.contains("1 more marked resolved, not listed"),
        "{listing}"
    );
    assert!(!listing.contains("group 1 ("), "{listing}");
    assert!(!listing.contains(first[0]), "{listing}");
    let (listing, _) = duplicates(&["--show-resolved"]);
    assert!(listing.contains("group 1 ("), "{listing}");
    assert!(listing.contains(", resolved)"), "{listing}");
    let (again, _) = duplicates(&["--json"]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["resolved"][0], true);
    assert_eq!(again["resolved"][1], false);
    assert_eq!(again["groups"][0], json["groups"][0]);
    let (_, said) = duplicates(&["--reopen", "1"]);
    assert!(
        said.contains("group 1 is no longer marked resolved"),
        "{said}"
    );
    let (listing, _) = duplicates(&[]);
    assert!(!listing.contains("marked resolved"), "{listing}");
    assert!(listing.contains(first[0]), "{listing}");
}

/// `spreadout bench --phases` after a CPU training row: every phase a row, the four phases adding
/// up to the step, the replayed layers inside their phase's budget (give or take the replays'
/// fresh inputs), and the shares of the four phases summing to the whole step.
#[test]
fn bench_phases_split_a_cpu_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = spreadout_in(
        &dir.path().join("image-cache"),
        &[
            "bench",
            "--device",
            "cpu",
            "--widths",
            "2",
            "--batch-size",
            "4",
            "--image-size",
            "16",
            "--steps",
            "2",
            "--warmup",
            "0",
            "--no-data",
            "--phases",
            "--json",
        ],
    );
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows[0]["task"], "train", "{out}");
    let phases: Vec<(String, f64)> = rows[1..]
        .iter()
        .map(|row| {
            assert_eq!(row["task"], "phase");
            let detail = row["detail"].as_str().unwrap();
            let name = detail
                .split(": ")
                .nth(1)
                .unwrap()
                .split(", ")
                .next()
                .unwrap();
            (name.to_owned(), row["seconds"].as_f64().unwrap())
        })
        .collect();
    let names: Vec<&str> = phases.iter().map(|(name, _)| name.trim()).collect();
    assert_eq!(
        names,
        [
            "forward",
            "the 20 convolutions (replayed)",
            "the 20 batch norms (replayed)",
            "the rest (ReLU",
            "loss (Eq. 7)",
            "backward",
            "the 20 convolutions (replayed)",
            "the 20 batch norms (replayed)",
            "the rest (ReLU",
            "SGD update",
            "step",
        ],
        "{out}"
    );
    let seconds = |name: &str| phases.iter().find(|(n, _)| n == name).unwrap().1;
    let sum =
        seconds("forward") + seconds("loss (Eq. 7)") + seconds("backward") + seconds("SGD update");
    assert!((sum - seconds("step")).abs() < 1e-9, "{out}");
    assert!(
        phases.iter().all(|(_, s)| *s >= 0.0 && s.is_finite()),
        "{out}"
    );
    assert!(
        seconds("backward") > 0.0 && seconds("forward") > 0.0,
        "{out}"
    );
}

/// A device that queues its work cannot have its step timed by phase: the refusal comes before
/// any work reaches it, and names the device and the backend that can.
#[test]
fn bench_phases_refuse_a_queued_device() {
    use spreadout::device::{self, DeviceChoice};
    use spreadout::lab::bench;
    let adapters = device::list_adapters();
    let Some(adapter) = adapters.first() else {
        return crate::skip::because("no wgpu adapter");
    };
    let selected = device::select_from(DeviceChoice::Adapter(adapter.index), &adapters).unwrap();
    let case = bench::TrainingCase {
        width: 2,
        batch_size: 2,
        image_size: 16,
        precision: spreadout::model::Precision::F32,
        augment_on: spreadout::train::AugmentOn::Auto,
    };
    let error = bench::step_phases(&selected, case, 1).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&selected.name) && message.contains("--phases times the CPU backend"),
        "{message}"
    );
}
