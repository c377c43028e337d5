//! The lifecycle of a run through the `spreadout` binary itself, as people drive it the second
//! time: stopped with Ctrl-C or killed, resumed with the command the CLI prints (no flags) or with
//! flags, extended, continued across a change of where views are built, of device and of a grown
//! folder; for every method. Each ending is compared with an uninterrupted run of the same
//! command wherever the comparison is defined: the epochs trained, the rate of every epoch, and
//! the exported weights.
//!
//! Tiny shapes keep the matrix inside CI's time: 2 classes × 16 images of 16 px, a network 4
//! wide, batches of 4 (8 steps an epoch), three epochs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use spreadout::lab::demo::{self, DemoFolders, DemoSpec};
use spreadout::model_files;
use spreadout::tensor_files;
use spreadout::tensor_files::TensorValues;
use spreadout::train;

/// A folder of the test's own: generated images, runs, the image and kernel caches.
struct Bench {
    dir: tempfile::TempDir,
    data: DemoFolders,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = DemoSpec {
            classes: 2,
            train_per_class: 16,
            test_per_class: 2,
            size: 16,
            seed: 7,
        };
        let data = demo::generate(&dir.path().join("data"), &spec).unwrap();
        Self { dir, data }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `spreadout ARGS`, its caches and data folders inside the bench (never the person's).
    fn command(&self, args: &[String]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_spreadout"));
        command
            .args(args)
            .env("SPREADOUT_CACHE_DIR", self.path("image-cache"))
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .env("XDG_DATA_HOME", self.path("xdg-data"))
            .env("NO_COLOR", "1");
        command
    }

    /// Runs `spreadout ARGS` to its end; its output, whether it succeeded or not.
    fn run(&self, args: &[String]) -> Finished {
        Finished::from(self.command(args).output().expect("the binary runs"))
    }

    /// [`Bench::run`] that must succeed.
    fn ok(&self, args: &[String]) -> Finished {
        let finished = self.run(args);
        assert!(finished.success, "spreadout {args:?} failed:\n{finished}");
        finished
    }

    /// Starts `spreadout ARGS` and, once it printed the line of epoch `after`, sends it `signal`
    /// (`INT`, as Ctrl-C does, or `KILL`); its output once it ended.
    fn interrupted(&self, args: &[String], after: usize, signal: &str) -> Finished {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        let wanted = format!("epoch {after:>3}");
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!("spreadout {args:?} ended before epoch {after}:\n{seen}");
            }
            seen.push_str(&line);
            if line.starts_with(&wanted) {
                break;
            }
        }
        let sent = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        stdout.read_to_string(&mut seen).unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        Finished {
            success: status.success(),
            stdout: seen,
            stderr,
        }
    }
}

/// What a command printed, and whether it succeeded.
struct Finished {
    success: bool,
    stdout: String,
    stderr: String,
}

impl From<Output> for Finished {
    fn from(output: Output) -> Self {
        Self {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

fn text(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

/// `spreadout train DIR --out OUT`, tiny, `epochs` long, with the method's own flags.
fn train_args(dir: &Path, out: &Path, epochs: usize, method: &[&str]) -> Vec<String> {
    let mut args = vec!["train".to_owned(), text(dir), "--out".to_owned(), text(out)];
    args.extend(strings(&[
        "--epochs",
        &epochs.to_string(),
        "--batch-size",
        "4",
        "--knn-k",
        "5",
        "--dim",
        "8",
        "--device",
        "cpu",
        // A checkpoint every few steps, so that a killed run resumes from inside an epoch.
        "--checkpoint-minutes",
        "0.001",
    ]));
    if !method.contains(&"--width") {
        args.extend(strings(&["--width", "4", "--image-size", "16"]));
    }
    args.extend(strings(method));
    args
}

/// The resume command the CLI prints after a stop, with `flags` added.
fn resume_args(dir: &Path, out: &Path, flags: &[&str]) -> Vec<String> {
    let mut args = vec![
        "train".to_owned(),
        text(dir),
        "--out".to_owned(),
        text(out),
        "--resume".to_owned(),
    ];
    args.extend(strings(flags));
    args
}

/// Each epoch's rate, from the run's metrics.
fn rates(run: &Path) -> Vec<f64> {
    train::read_metrics(run)
        .unwrap()
        .iter()
        .map(|metrics| metrics.lr)
        .collect()
}

/// The exported weights of a run.
fn weights(run: &Path) -> BTreeMap<String, Vec<f32>> {
    tensor_files::read_tensors(&run.join(model_files::MODEL_FILE))
        .unwrap()
        .0
        .into_iter()
        .filter_map(|(name, tensor)| match tensor.values {
            TensorValues::F32(values) => Some((name, values)),
            _ => None,
        })
        .collect()
}

/// The largest difference between two runs' exported weights, relative to the weight.
fn weights_apart(a: &Path, b: &Path) -> f32 {
    let (a, b) = (weights(a), weights(b));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same tensors"
    );
    a.iter()
        .flat_map(|(name, x)| x.iter().zip(&b[name]))
        .map(|(p, q)| (p - q).abs() / (1.0 + p.abs()))
        .fold(0.0, f32::max)
}

/// `run` ended as the uninterrupted `straight` did: as many epochs, each at the same rate, and
/// the same weights (a resume continues exactly where it stopped).
fn assert_same_run(what: &str, run: &Path, straight: &Path) {
    let (got, expected) = (rates(run), rates(straight));
    assert_eq!(
        got.len(),
        expected.len(),
        "{what}: epochs {got:?} vs {expected:?}"
    );
    for (got_rate, expected_rate) in got.iter().zip(&expected) {
        assert!(
            (got_rate - expected_rate).abs() < 1e-12,
            "{what}: rates {got:?} vs uninterrupted {expected:?}"
        );
    }
    let apart = weights_apart(run, straight);
    assert!(apart < 1e-4, "{what}: weights differ by {apart:e}");
}

/// The lifecycle of one method (its `train` flags in `method`).
fn lifecycle(method: &[&str]) {
    let started = std::time::Instant::now();
    let bench = Bench::new();
    let train_dir = bench.data.train.clone();
    let straight = bench.path("straight");
    bench.ok(&train_args(&train_dir, &straight, 3, method));

    // Ctrl-C after the first epoch, then the printed resume with where views are built and the
    // checkpoint interval changed: each change said, the device views falling back to the CPU
    // (this backend has no views kernel) with its reason, and the run ending as an
    // uninterrupted one.
    let stopped = bench.path("stopped");
    let stop = bench.interrupted(&train_args(&train_dir, &stopped, 3, method), 1, "INT");
    assert!(
        stop.success && stop.stderr.contains("--resume"),
        "a Ctrl-C stop says how to resume:\n{stop}"
    );
    let resumed = bench.ok(&resume_args(
        &train_dir,
        &stopped,
        &["--augment-on", "device", "--checkpoint-minutes", "5"],
    ));
    for said in [
        "resuming with --augment-on auto → device",
        "resuming with --checkpoint-minutes 0.001 → 5",
        "built on the CPU instead",
    ] {
        assert!(resumed.stderr.contains(said), "{said}:\n{resumed}");
    }
    assert_same_run("stopped and resumed with flags", &stopped, &straight);
    let record = train::run_folder::runs::read_record(&stopped).unwrap();
    assert_eq!(record.config.epochs, 3, "no --epochs: the recorded length");
    assert_eq!(record.config.augment_on, train::AugmentOn::Device);
    let again = bench.ok(&resume_args(&train_dir, &stopped, &[]));
    assert!(
        again.stdout.contains("is complete: 3 of 3 epochs"),
        "a finished run resumed again says so:\n{again}"
    );
    assert_same_run("resumed when complete", &stopped, &straight);
    // Extended by an epoch: it trains one more, never above the rate it ended with.
    let longer = bench.ok(&resume_args(&train_dir, &stopped, &["--epochs", "4"]));
    assert!(
        longer.stderr.contains("resuming with --epochs 3 → 4"),
        "{longer}"
    );
    let extended = rates(&stopped);
    assert_eq!(extended.len(), 4, "{extended:?}");
    assert!(extended[3] <= extended[2], "{extended:?}");

    // Killed (kill -9) inside the second epoch, resumed from its last checkpoint on another
    // device choice (auto finds no GPU here and trains on the CPU, as before).
    let killed = bench.path("killed");
    let kill = bench.interrupted(&train_args(&train_dir, &killed, 3, method), 1, "KILL");
    assert!(!kill.success, "killed:\n{kill}");
    let resumed = bench.ok(&resume_args(&train_dir, &killed, &["--device", "auto"]));
    assert!(
        resumed.stderr.contains("resuming with --device cpu → auto"),
        "{resumed}"
    );
    assert_same_run("killed and resumed", &killed, &straight);

    // Stopped, then the folder grows: the plain resume is refused naming the flag that accepts
    // the change, which then trains the rest of the run on the folder as it is.
    let grown_dir = bench.path("grown");
    copy_dir(&train_dir, &grown_dir);
    let grown = bench.path("grown-run");
    let stop = bench.interrupted(&train_args(&grown_dir, &grown, 3, method), 1, "INT");
    assert!(stop.success, "{stop}");
    add_images(&grown_dir, 4);
    let refused = bench.run(&resume_args(&grown_dir, &grown, &[]));
    assert!(
        !refused.success && refused.stderr.contains("--accept-changed-folder"),
        "{refused}"
    );
    bench.ok(&resume_args(
        &grown_dir,
        &grown,
        &["--accept-changed-folder"],
    ));
    let grown_rates = rates(&grown);
    assert_eq!(grown_rates.len(), 3, "{grown_rates:?}");
    assert!(
        grown_rates.windows(2).all(|pair| pair[1] <= pair[0]),
        "the rate never climbs again: {grown_rates:?}"
    );
    eprintln!(
        "lifecycle of {method:?}: {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Adds `count` images to the first class folder of `dir` (copies of its images, new names).
fn add_images(dir: &Path, count: usize) {
    let class = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .min()
        .unwrap();
    let mut images: Vec<PathBuf> = std::fs::read_dir(&class)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    images.sort();
    for (n, image) in images.iter().take(count).enumerate() {
        std::fs::copy(image, class.join(format!("added-{n}.png"))).unwrap();
    }
}

macro_rules! lifecycle_of {
    ($($name:ident: [$($flag:expr),*];)*) => {$(
        #[test]
        fn $name() {
            lifecycle(&[$($flag),*]);
        }
    )*};
}

lifecycle_of! {
    spread_out: [];
    spread_out_hard_negatives: ["--negatives", "hard"];
    spread_out_easy_negatives: ["--negatives", "easy"];
    spread_out_nearest_positive: ["--positive", "nearest"];
    npsoftmax: ["--method", "npsoftmax"];
    nce: ["--method", "nce"];
    exemplar: ["--method", "exemplar"];
    triplet: ["--method", "triplet"];
    triplet_hard: ["--method", "triplet-hard"];
    pretrained_start: [
        "--init",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pytorch/resnet18-w1.pth"),
        "--width",
        "1",
        "--image-size",
        "65"
    ];
}

/// The issue's own walk through a resume: a 3-epoch run stopped in epoch 2 and resumed with no
/// flags finishes epoch 3 and stops; resumed again it says the run is complete; with
/// `--epochs 5` it trains epochs 4 and 5 at the rates an uninterrupted 5-epoch run uses, and a
/// second stop and resume keeps them.
#[test]
fn a_stopped_run_resumes_completes_and_extends_at_the_rates_of_an_uninterrupted_one() {
    let bench = Bench::new();
    let train_dir = bench.data.train.clone();
    let five = bench.path("five");
    bench.ok(&train_args(&train_dir, &five, 5, &[]));
    let three = bench.path("three");
    bench.ok(&train_args(&train_dir, &three, 3, &[]));

    let run = bench.path("run");
    let stop = bench.interrupted(&train_args(&train_dir, &run, 3, &[]), 1, "INT");
    assert!(stop.stderr.contains("stopped at"), "{stop}");
    let state = train::run_folder::checkpoint::read_state(&run).unwrap();
    assert!(state.epochs_completed < 3, "stopped before the end");
    let resumed = bench.ok(&resume_args(&train_dir, &run, &[]));
    assert!(
        !resumed.stderr.contains("resuming with"),
        "no change: {resumed}"
    );
    assert_eq!(rates(&run).len(), 3, "finishes epoch 3 and stops");
    assert_eq!(
        train::run_folder::runs::read_record(&run)
            .unwrap()
            .config
            .epochs,
        3
    );
    assert_same_run("3 epochs, stopped and resumed", &run, &three);
    let complete = bench.ok(&resume_args(&train_dir, &run, &[]));
    assert!(
        complete.stdout.contains("is complete: 3 of 3"),
        "{complete}"
    );

    // Extended to 5, stopped in epoch 4 or 5, resumed with no flags.
    let extend = bench.interrupted(&resume_args(&train_dir, &run, &["--epochs", "5"]), 4, "INT");
    assert!(
        extend.stderr.contains("resuming with --epochs 3 → 5"),
        "{extend}"
    );
    bench.ok(&resume_args(&train_dir, &run, &[]));
    let (extended, uninterrupted) = (rates(&run), rates(&five));
    eprintln!("epoch  extended, stopped and resumed  uninterrupted 5-epoch run");
    for (epoch, (got, expected)) in extended.iter().zip(&uninterrupted).enumerate() {
        eprintln!("{:>5}  {got:>29.6}  {expected:>25.6}", epoch + 1);
    }
    assert_eq!(extended.len(), 5);
    for epoch in 3..5 {
        assert!(
            (extended[epoch] - uninterrupted[epoch]).abs() < 1e-12,
            "epoch {}: {extended:?} vs {uninterrupted:?}",
            epoch + 1
        );
    }
}

/// A run folder is Spreadout's or it is refused: a fresh run into a folder of someone's files
/// writes nothing there; into a run, it asks for `--resume` or `--overwrite`, and
/// `--overwrite` moves the earlier run into the folder's trash, deleting nothing.
#[test]
fn a_fresh_run_never_writes_over_a_folder_it_does_not_own() {
    let bench = Bench::new();
    let train_dir = bench.data.train.clone();
    let theirs = bench.path("their-model");
    std::fs::create_dir_all(&theirs).unwrap();
    for (name, content) in [
        ("config.json", "{\"hidden_size\": 768}"),
        ("notes.txt", "mine"),
    ] {
        std::fs::write(theirs.join(name), content).unwrap();
    }
    let refused = bench.run(&train_args(&train_dir, &theirs, 1, &[]));
    assert!(
        !refused.success && refused.stderr.contains("holds no Spreadout run"),
        "{refused}"
    );
    let mut left: Vec<_> = std::fs::read_dir(&theirs)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["config.json", "notes.txt"], "nothing written");
    assert_eq!(
        std::fs::read_to_string(theirs.join("config.json")).unwrap(),
        "{\"hidden_size\": 768}"
    );

    let run = bench.path("run");
    bench.ok(&train_args(&train_dir, &run, 1, &[]));
    let first = weights(&run);
    let again = bench.run(&train_args(&train_dir, &run, 1, &["--seed", "1"]));
    assert!(
        !again.success && again.stderr.contains("--resume") && again.stderr.contains("--overwrite"),
        "{again}"
    );
    let overwritten = bench.ok(&train_args(
        &train_dir,
        &run,
        1,
        &["--seed", "1", "--overwrite"],
    ));
    assert!(
        overwritten.stderr.contains("were moved into"),
        "{overwritten}"
    );
    let trash: Vec<PathBuf> = std::fs::read_dir(run.join(train::run_folder::runs::TRASH_DIR))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(trash.len(), 1);
    assert_eq!(
        weights(&trash[0]),
        first,
        "the earlier run, whole, in the trash"
    );
    assert_eq!(train::read_metrics(&trash[0]).unwrap().len(), 1);
    assert_ne!(weights(&run), first, "the new run in its place");
    let deleted = train::run_folder::runs::delete(&run).unwrap();
    assert!(
        deleted.kept.is_empty(),
        "the trash is the run's own: {:?}",
        deleted.kept
    );
    assert!(!run.exists());
}

/// Flags that describe the run itself cannot change on a resume: refused, naming them, before
/// anything is trained.
#[test]
fn a_resume_refuses_flags_it_cannot_honour() {
    let bench = Bench::new();
    let train_dir = bench.data.train.clone();
    let run = bench.path("run");
    bench.ok(&train_args(&train_dir, &run, 1, &[]));
    let refused = bench.run(&resume_args(
        &train_dir,
        &run,
        &["--lr", "0.5", "--width", "8"],
    ));
    assert!(
        !refused.success
            && refused.stderr.contains("--width, --lr")
            && refused.stderr.contains("cannot change when a run resumes"),
        "{refused}"
    );
    let fewer = bench.run(&resume_args(&train_dir, &run, &["--epochs", "0"]));
    assert!(
        !fewer.success && fewer.stderr.contains("--epochs"),
        "{fewer}"
    );
}
