//! End-to-end training with the CPU backend: on real photographs (CIFAR-10) kNN rises well above
//! the untrained network's; on generated images a cancelled run resumes to exactly the weights of
//! an uninterrupted one.

use std::path::Path;

use spreadout::device::DeviceChoice;
use spreadout::lab::demo::DemoFolders;
use spreadout::optim::Schedule;
use spreadout::support::error_kind::ErrorKind;
use spreadout::tensor_files;
use spreadout::tensor_files::TensorValues;
use spreadout::train::{self, Control, TrainConfig, TrainEvent, TrainRequest};

use crate::common::{request, resumed_on, tiny_config, tiny_data};

/// Runs `request`, stopping it (as Stop or Ctrl-C does) once step `step` of epoch `epoch` is
/// reported.
fn run_stopped_at(request: &TrainRequest, epoch: usize, step: usize) -> train::RunSummary {
    let control = Control::default();
    train::run(request, &control, &mut |event| {
        if let TrainEvent::Step {
            epoch: at_epoch,
            step: at_step,
            ..
        } = event
            && (at_epoch, at_step) == (epoch, step)
        {
            control.cancel();
        }
    })
    .unwrap()
}

/// Points of kNN accuracy training must add over the untrained network; see the test below for
/// how it was calibrated.
const KNN_GAIN: f64 = 6.0;

/// Points of view retrieval training must add over the untrained network; calibrated in the
/// same test.
const VIEW_RETRIEVAL_MARGIN: f64 = 1.25;

/// The run's network before its first step: the seeded initialisation it started from, exported
/// with the run's normalisation beside the run.
fn untrained_model(run: &Path) -> spreadout::model_files::LoadedModel {
    use spreadout::{model_files, train::run_folder::runs};
    let record = runs::read_record(run).unwrap();
    let device = burn::tensor::Device::flex();
    let net = record
        .config
        .model_config()
        .init_seeded(&device, record.config.seed);
    let untrained = run.with_file_name("untrained");
    model_files::export_model(
        &untrained,
        &net,
        &model_files::ExportedConfig {
            model: record.config.model_config(),
            normalization: record.normalization,
            tau: record.config.tau,
            steps: 0,
        },
    )
    .unwrap();
    model_files::load_model(&untrained, &device).unwrap()
}

/// kNN (%) of `model` with the test folder against the training folder, as `spreadout eval`.
fn knn_of(model: &spreadout::model_files::LoadedModel, folders: &DemoFolders, run: &Path) -> f64 {
    use spreadout::score;
    score::score_folders(
        model,
        &folders.train,
        &folders.test,
        &spreadout::data::PixelCache::at(run.with_file_name("image-cache")),
        &score::ScoreSettings {
            knn_k: 50,
            knn_sigma: 0.1,
            recall_k: vec![1],
            linear: None,
            seed: 0,
        },
        &|_, _| true,
        &mut |_| {},
    )
    .unwrap()
    .knn_accuracy
    .unwrap()
}

/// View retrieval (%) on the images of `folder`, the two properties the method trains for
/// measured directly: two independent augmentations of every image are embedded, and a hit is an
/// image whose second view is the nearest of all second views to its first.
fn view_retrieval(model: &spreadout::model_files::LoadedModel, folder: &Path, run: &Path) -> f64 {
    use spreadout::augment::AugmentOps;
    use spreadout::embed::{self, View};
    use spreadout::eval::{self, Embeddings};
    let size = model.config.model.image_size;
    let cache = spreadout::data::PixelCache::at(run.with_file_name("image-cache"));
    let set = spreadout::data::load_folder(folder, &cache, size, &|_, _| true).unwrap();
    let views: Vec<Vec<f32>> = [11u64, 12]
        .iter()
        .map(|&seed| {
            embed::embed_images(
                &model.net,
                &set,
                size,
                &model.config.normalization,
                View::Augmented {
                    ops: AugmentOps::default(),
                    seed,
                },
                64,
            )
            .unwrap()
        })
        .collect();
    let dim = model.config.model.dim;
    let nearest = eval::top_k(
        Embeddings::new(&views[0], dim).unwrap(),
        Embeddings::new(&views[1], dim).unwrap(),
        1,
        false,
    )
    .unwrap();
    let hits = nearest
        .iter()
        .enumerate()
        .filter(|(i, n)| n[0].0 == *i)
        .count();
    100.0 * hits as f64 / nearest.len() as f64
}

/// Real photographs for the test that training helps: the first `train` and `test` images (in
/// file-name order) of each of `classes` from the shared CIFAR-10 archive (also present in CI).
fn cifar_folders(dir: &Path, classes: &[&str], train: usize, test: usize) -> DemoFolders {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cifar10-jpg.tar.gz");
    let unpacked = dir.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let patterns: Vec<String> = classes
        .iter()
        .flat_map(|c| [format!("train/{c}/*"), format!("test/{c}/*")])
        .collect();
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked)
        .arg("--wildcards")
        .args(&patterns)
        .status()
        .expect("tar runs");
    assert!(status.success(), "unpacking {}", archive.display());
    for (split, count) in [("train", train), ("test", test)] {
        for class in classes {
            let mut files: Vec<_> = std::fs::read_dir(unpacked.join(split).join(class))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            let target = dir.join("data").join(split).join(class);
            std::fs::create_dir_all(&target).unwrap();
            for file in files.into_iter().take(count) {
                std::fs::rename(&file, target.join(file.file_name().unwrap())).unwrap();
            }
        }
    }
    std::fs::remove_dir_all(&unpacked).unwrap();
    DemoFolders {
        train: dir.join("data/train"),
        test: dir.join("data/test"),
    }
}

#[test]
fn training_lifts_knn_and_view_retrieval_above_the_untrained_network() {
    let dir = tempfile::tempdir().unwrap();
    // Four classes (chance 25 %) on which this short run lifts kNN clearly; on bird, cat, deer
    // and dog (150 images each, width 8, 32 px, ten epochs) it did not lift it at all (33.75 %
    // untrained, 30.62 % trained, commit 2a9c407).
    let classes = ["automobile", "frog", "horse", "ship"];
    let folders = cifar_folders(dir.path(), &classes, 1250, 250);
    // Sized to what two cores train in about a minute and a half: 16 px through a width-4
    // network (width 8, three epochs in about the same time, gained 7.3, 9.4 and 12.7 points
    // with the seeds below) and batches of 32, i.e. many steps, the rate decaying to zero.
    const EPOCHS: usize = 6;
    let config = TrainConfig {
        epochs: EPOCHS,
        batch_size: 32,
        image_size: 16,
        width: 4,
        lr: 0.05,
        schedule: Schedule::Cosine,
        seed: 0,
        knn_k: 50,
        ..TrainConfig::default()
    };
    let mut events = Vec::new();
    let summary = train::run(
        &request(&folders, &dir.path().join("run"), config),
        &Control::default(),
        &mut |event| events.push(event),
    )
    .expect("training succeeds");
    for m in &summary.metrics {
        eprintln!(
            "epoch {} loss {:.4} kNN {:?}",
            m.epoch, m.loss, m.knn_accuracy
        );
    }
    assert_eq!(summary.epochs_completed, EPOCHS);
    let first = &summary.metrics[0];
    let last = summary.metrics.last().unwrap();
    assert!(
        last.loss < first.loss * 0.97,
        "loss {} → {}",
        first.loss,
        last.loss
    );
    // The trained network against the same network untrained: the run's seeded initialisation,
    // before its first step (batch norm's running statistics included), scored as `spreadout
    // eval` scores a model. That scoring of the trained network must give the kNN the run
    // reported for its last epoch (within one of the 1000 test images), so the untrained
    // number is on the product's scale.
    let run = dir.path().join("run");
    let untrained = untrained_model(&run);
    let trained = spreadout::model_files::load_model(&run, &burn::tensor::Device::flex()).unwrap();
    let knn_before = knn_of(&untrained, &folders, &run);
    let knn_after = last.knn_accuracy.expect("labelled evaluation");
    let rescored = knn_of(&trained, &folders, &run);
    assert!(
        (rescored - knn_after).abs() <= 0.1 + 1e-9,
        "kNN of the exported model {rescored:.2} %, the run's last epoch {knn_after:.2} %"
    );
    let views = |model, folder| view_retrieval(model, folder, &run);
    let (views_before, views_after) = (
        views(&untrained, &folders.train),
        views(&trained, &folders.train),
    );
    let (unseen_before, unseen_after) = (
        views(&untrained, &folders.test),
        views(&trained, &folders.test),
    );
    eprintln!(
        "kNN {knn_before:.2} % untrained, {knn_after:.2} % trained; view retrieval on the training images {views_before:.2} % untrained, {views_after:.2} % trained; on the test images {unseen_before:.2} % untrained, {unseen_after:.2} % trained"
    );
    // Measured with seeds 0, 1 and 2 (`seed` above; `cargo test --workspace --features
    // spreadout-app/custom-protocol --test it --
    // training::training_lifts_knn_and_view_retrieval_above_the_untrained_network --nocapture`
    // prints these; seed 0 gives the same numbers with RAYON_NUM_THREADS=1):
    //   kNN, untrained → trained         50.40 → 64.90, 51.10 → 63.50, 43.70 → 62.20 %
    //                                    (gains 14.50, 12.40, 18.50 points)
    //   view retrieval, training images  0.20 → 3.54, 0.34 → 3.14, 0.26 → 2.98 % (chance 0.02 %)
    //   view retrieval, test images      0.80 → 7.80, 0.50 → 6.70, 0.20 → 6.10 % (chance 0.1 %)
    //   loss                             4.708 → 3.705, 4.774 → 3.782, 4.742 → 3.807
    // Both bars are under half the smallest gain. Training without augmentation (every view the
    // centre view: nothing to be invariant to) fails both, seed 0: kNN 50.40 → 47.80 %, view
    // retrieval 0.20 → 0.58 %. (Views drawn identically, and Eq. 7 without the stop-gradient,
    // were measured at the earlier 600-image size only: commit 2a9c407.)
    assert!(
        knn_after >= knn_before + KNN_GAIN,
        "kNN {knn_after:.2} % after training vs {knn_before:.2} % untrained: less than {KNN_GAIN} points gained"
    );
    assert!(
        views_after >= views_before + VIEW_RETRIEVAL_MARGIN,
        "view retrieval {views_after:.2} % after training vs {views_before:.2} % untrained: less than {VIEW_RETRIEVAL_MARGIN} points gained"
    );
    // Six fixed probes with five labelled neighbours each, best first, never the probe itself.
    assert_eq!(last.probes.len(), 6);
    assert_eq!(
        last.probes[0].query, first.probes[0].query,
        "probes are fixed"
    );
    for probe in &last.probes {
        assert_eq!(probe.neighbors.len(), 5);
        assert!(
            probe
                .neighbors
                .iter()
                .all(|n| n.path != probe.query && n.same_label.is_some())
        );
        assert!(probe.neighbors.windows(2).all(|w| w[0].score >= w[1].score));
    }
    // A short run keeps a snapshot of every epoch for Explore to compare.
    let snapshots = train::run_folder::runs::snapshots(&dir.path().join("run"));
    assert_eq!(snapshots.len(), EPOCHS);
    assert!(matches!(
        events.last(),
        Some(TrainEvent::Finished {
            canceled: false,
            epochs_completed: EPOCHS
        })
    ));
    // The run folder holds what the issue promises.
    for file in [
        "model.safetensors",
        "config.json",
        "checkpoint.safetensors",
        "metrics.jsonl",
        "skipped.json",
        "run.json",
    ] {
        assert!(run.join(file).is_file(), "missing {file}");
    }
    assert_eq!(train::read_metrics(&run).unwrap().len(), EPOCHS);
}

#[test]
fn a_canceled_run_resumes_to_the_same_weights_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 3, 12, 2);
    let config = tiny_config(3, 8);
    let straight = dir.path().join("straight");
    train::run(
        &request(&folders, &straight, config.clone()),
        &Control::default(),
        &mut |_| {},
    )
    .unwrap();

    // Interrupt at the end of epoch 1 (a Stop during its evaluation keeps the epoch).
    let interrupted = dir.path().join("interrupted");
    let summary = run_stopped_at(&request(&folders, &interrupted, config.clone()), 1, 4);
    assert!(summary.canceled);
    assert_eq!(summary.epochs_completed, 1);
    assert_eq!(train::read_metrics(&interrupted).unwrap().len(), 1);

    // Starting fresh over an existing run is refused rather than overwriting it.
    let refused = train::run(
        &request(&folders, &interrupted, config.clone()),
        &Control::default(),
        &mut |_| {},
    );
    let refused = refused.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ExistingRun, "{refused}");

    let resumed = resumed_on(&interrupted, DeviceChoice::Cpu);
    let summary = train::run(&resumed, &Control::default(), &mut |_| {}).unwrap();
    assert_eq!(summary.epochs_completed, 3);
    assert_eq!(train::read_metrics(&interrupted).unwrap().len(), 3);

    assert_same_weights(&straight, &interrupted);
}

#[test]
fn a_worker_reports_bad_input_as_a_failed_event_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("only.png"), b"not an image").unwrap();
    let handle = train::spawn(TrainRequest {
        config: TrainConfig::default(),
        train_dir: dir.path().to_owned(),
        eval_train_dir: None,
        eval_test_dir: None,
        run_dir: dir.path().join("run"),
        start: spreadout::train::Start::Fresh,
        device: DeviceChoice::Cpu,
        cache_dir: Some(dir.path().join("image-cache")),
        accept_changed_folder: false,
        stop_after_epoch: None,
        init_weights: None,
    });
    let events: Vec<TrainEvent> = handle.events.iter().collect();
    let Some(TrainEvent::Failed { message, .. }) = events.last() else {
        panic!("expected a final Failed event, got {events:?}");
    };
    assert!(
        message.contains("only.png") || message.contains("usable"),
        "{message}"
    );
    assert!(handle.worker.join().unwrap().is_err());
}

#[test]
fn a_diverging_run_stops_with_a_message_and_writes_no_weights() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 2, 8, 3);
    // A learning rate this large overflows the weights after the first update.
    let config = TrainConfig {
        lr: 1e30,
        ..tiny_config(2, 4)
    };
    let run = dir.path().join("run");
    let mut events = Vec::new();
    let error = train::run(
        &request(&folders, &run, config),
        &Control::default(),
        &mut |event| events.push(event),
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("diverged"), "{message}");
    assert!(matches!(
        events.last(),
        Some(TrainEvent::Failed {
            code: ErrorKind::Diverged,
            ..
        })
    ));
    assert!(!run.join("model.safetensors").exists());
}

#[test]
fn a_stop_during_evaluation_ends_the_run_and_keeps_the_epoch_just_trained() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 3, 8, 4);
    let run = dir.path().join("run");
    let control = Control::default();
    let summary = train::run(
        &request(&folders, &run, tiny_config(3, 4)),
        &control,
        &mut |event| {
            if let TrainEvent::Phase {
                phase: train::Phase::Evaluating,
            } = event
            {
                control.cancel();
            }
        },
    )
    .unwrap();
    assert!(summary.canceled);
    assert_eq!(summary.epochs_completed, 1);
    // The evaluation stopped before scoring anything, and the epoch's checkpoint and model were
    // still written, so a resume starts at epoch 2.
    let metrics = train::read_metrics(&run).unwrap();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0].knn_accuracy, None);
    assert!(run.join("model.safetensors").is_file());
    let state = train::run_folder::checkpoint::read_state(&run).unwrap();
    assert_eq!(state.epochs_completed, 1);
}

#[test]
fn a_loss_that_diverges_later_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 2, 8, 3);
    let run = dir.path().join("run");
    train::run(
        &request(&folders, &run, tiny_config(1, 4)),
        &Control::default(),
        &mut |_| {},
    )
    .unwrap();
    let checkpoint = train::run_folder::checkpoint::path(&run);
    let model_before = std::fs::read(run.join("model.safetensors")).unwrap();
    // Make the rest of the run diverge: the learning rate its record continues with becomes
    // absurd.
    let record_file = run.join(train::RUN_FILE);
    let mut record = train::run_folder::runs::read_record(&run).unwrap();
    record.config.lr = 1e30;
    std::fs::write(&record_file, serde_json::to_vec(&record).unwrap()).unwrap();
    // Without a recorded last rate (as in runs from before it was kept) the extension is not
    // capped at the rate the run ended with, so the absurd rate applies.
    let (tensors, mut metadata) = tensor_files::read_tensors(&checkpoint).unwrap();
    let mut state = train::run_folder::checkpoint::read_state(&run).unwrap();
    state.last_lr = None;
    metadata.insert(
        "spreadout_state".to_owned(),
        serde_json::to_string(&state).unwrap(),
    );
    let tensors: Vec<_> = tensors.into_values().collect();
    tensor_files::write_tensors(&checkpoint, &tensors, metadata).unwrap();
    let checkpoint_before = std::fs::read(&checkpoint).unwrap();

    let extended = TrainRequest::resume(
        &run,
        train::ResumeOverrides {
            epochs: Some(3),
            cache_dir: Some(dir.path().join("image-cache")),
            ..train::ResumeOverrides::default()
        },
    )
    .unwrap()
    .request;
    let error = train::run(&extended, &Control::default(), &mut |_| {}).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("epoch 2") && message.contains("last good checkpoint"),
        "{message}"
    );
    assert_eq!(std::fs::read(&checkpoint).unwrap(), checkpoint_before);
    assert_eq!(
        std::fs::read(run.join("model.safetensors")).unwrap(),
        model_before
    );
    assert_eq!(train::read_metrics(&run).unwrap().len(), 1);
}

#[test]
fn a_torn_metrics_line_is_skipped_and_the_run_stays_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 2, 8, 4);
    let run = dir.path().join("run");
    let config = tiny_config(3, 8);
    let control = Control::default();
    train::run(
        &request(&folders, &run, config.clone()),
        &control,
        &mut |event| {
            if let TrainEvent::Epoch(metrics) = event
                && metrics.epoch == 2
            {
                control.cancel();
            }
        },
    )
    .unwrap();
    // A crash in the middle of an append leaves half a line.
    let metrics = run.join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text.push_str("{\"epoch\":3,\"loss\":4.");
    std::fs::write(&metrics, text).unwrap();

    assert_eq!(train::read_metrics(&run).unwrap().len(), 2);
    let info = train::run_folder::runs::describe(&run).unwrap();
    assert!(info.unfinished);
    assert_eq!(info.epochs_completed, 2);
    assert!(
        train::run_folder::runs::list(dir.path())
            .iter()
            .any(|listed| listed.dir == run),
        "still offered for resume"
    );
    let resumed = resumed_on(&run, DeviceChoice::Cpu);
    let summary = train::run(&resumed, &Control::default(), &mut |_| {}).unwrap();
    assert_eq!(summary.epochs_completed, 3);
    assert_eq!(train::read_metrics(&run).unwrap().len(), 3);
}

#[test]
fn resume_refuses_a_changed_folder_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 2, 8, 5);
    let run = dir.path().join("run");
    let config = tiny_config(2, 8);
    let control = Control::default();
    train::run(
        &request(&folders, &run, config.clone()),
        &control,
        &mut |event| {
            if let TrainEvent::Epoch(_) = event {
                control.cancel();
            }
        },
    )
    .unwrap();
    let first_class = first_class_folder(&folders.train);
    let any_image = std::fs::read_dir(&first_class)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::copy(&any_image, first_class.join("added-later.png")).unwrap();

    let resumed = resumed_on(&run, DeviceChoice::Cpu);
    let error = train::run(&resumed, &Control::default(), &mut |_| {}).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("changed") && message.contains("16 image files, now 17"),
        "{message}"
    );
    let mut warnings = Vec::new();
    let accepted = TrainRequest {
        accept_changed_folder: true,
        stop_after_epoch: None,
        init_weights: None,
        ..resumed
    };
    let summary = train::run(&accepted, &Control::default(), &mut |event| {
        if let TrainEvent::Warning { message } = event {
            warnings.push(message);
        }
    })
    .unwrap();
    assert_eq!(summary.epochs_completed, 2);
    assert!(
        warnings.iter().any(|w| w.contains("continuing as asked")),
        "{warnings:?}"
    );
}

#[test]
fn extending_a_run_keeps_the_rate_it_ended_with_through_every_later_resume() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 2, 8, 6);
    let run = dir.path().join("run");
    let config = TrainConfig {
        lr: 0.1,
        ..tiny_config(5, 8)
    };
    let base = request(&folders, &run, config);
    train::run(&base, &Control::default(), &mut |_| {}).unwrap();
    let resume = |epochs| {
        TrainRequest::resume(
            &run,
            train::ResumeOverrides {
                epochs,
                cache_dir: base.cache_dir.clone(),
                ..train::ResumeOverrides::default()
            },
        )
        .unwrap()
        .request
    };
    // Extended to 8 and stopped after epoch 6, then resumed as the CLI's printed command does:
    // no flags.
    let extended = TrainRequest {
        stop_after_epoch: Some(6),
        ..resume(Some(8))
    };
    train::run(&extended, &Control::default(), &mut |_| {}).unwrap();
    train::run(&resume(None), &Control::default(), &mut |_| {}).unwrap();
    let rates: Vec<f64> = train::read_metrics(&run)
        .unwrap()
        .iter()
        .map(|m| m.lr)
        .collect();
    // Five epochs: ×0.1 from 60 %, ×0.01 from 80 %. Replanned over 8, epochs 6 and 7 would be
    // back at ×0.1; the extension continues at the ×0.01 the run ended with, and so does the
    // resume after its stop (which once re-planned epoch 7 at 0.01 from the epoch counts).
    let expected = [0.1, 0.1, 0.1, 0.01, 0.001, 0.001, 0.001, 0.001];
    assert_eq!(rates.len(), expected.len());
    for (rate, expected) in rates.iter().zip(expected) {
        assert!((rate - expected).abs() < 1e-12, "{rates:?}");
    }
}

/// A file whose name is not UTF-8 (Latin-1 archives, Samba shares) goes through training, the
/// metrics file, Explore and the embeddings export, used by its exact name throughout.
#[cfg(unix)]
#[test]
fn a_file_name_that_is_not_utf8_goes_through_a_whole_run() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 2, 8, 7);
    let class = first_class_folder(&folders.train);
    let original = std::fs::read_dir(&class)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let latin1 = class.join(std::ffi::OsStr::from_bytes(b"caf\xe9 cr\xe8me.png"));
    std::fs::rename(&original, &latin1).unwrap();

    let run = dir.path().join("run");
    let summary = train::run(
        &request(&folders, &run, tiny_config(2, 8)),
        &Control::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(summary.epochs_completed, 2);
    assert_eq!(train::read_metrics(&run).unwrap().len(), 2);

    let cache = spreadout::data::PixelCache::at(dir.path().join("image-cache"));
    let collection = spreadout::explore::Collection::build(
        &run,
        &folders.train,
        &cache,
        &spreadout::device::cpu().device,
        &|_, _| true,
    )
    .unwrap();
    let row = collection
        .entries()
        .iter()
        .position(|entry| entry.path == latin1)
        .expect("the exact name is kept");
    assert_eq!(collection.neighbors(row, 3).unwrap().len(), 3);
    let exported = dir.path().join("embeddings.safetensors");
    collection.embedded().write(&exported, &run).unwrap();
    let (_, metadata) = tensor_files::read_tensors(&exported).unwrap();
    let paths: Vec<String> = serde_json::from_str(&metadata["paths"]).unwrap();
    assert!(
        paths
            .iter()
            .any(|text| spreadout::support::paths::from_text(text) == latin1),
        "the exported list names the file exactly"
    );
}

/// A folder where HEIC and camera raw files sit among the images, some of them broken: the run
/// trains on every readable one and lists each broken file in `skipped.json` with its reason.
#[test]
fn a_run_over_heic_and_raw_files_trains_on_the_readable_and_lists_the_broken_as_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 2, 8, 11);
    let class = first_class_folder(&folders.train);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/heif");
    std::fs::copy(fixtures.join("photo.heic"), class.join("iphone.heic")).unwrap();
    std::fs::copy(fixtures.join("rotated.heic"), class.join("portrait.HEIC")).unwrap();
    let whole = std::fs::read(fixtures.join("photo.heic")).unwrap();
    let broken: [(&str, &[u8]); 4] = [
        ("cut.heic", &whole[..whole.len() / 2]),
        ("empty.heic", b""),
        ("garbage.nef", &[0x4D; 4096]),
        ("empty.cr3", b""),
    ];
    for (name, bytes) in broken {
        std::fs::write(class.join(name), bytes).unwrap();
    }

    let run = dir.path().join("run");
    let summary = train::run(
        &request(&folders, &run, tiny_config(1, 8)),
        &Control::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(summary.epochs_completed, 1);
    let skipped: Vec<spreadout::data::SkippedFile> =
        serde_json::from_slice(&std::fs::read(run.join("skipped.json")).unwrap()).unwrap();
    let mut names: Vec<_> = skipped
        .iter()
        .map(|file| {
            file.path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    if cfg!(feature = "heic") {
        assert_eq!(
            names,
            ["cut.heic", "empty.cr3", "empty.heic", "garbage.nef"]
        );
    } else {
        assert_eq!(
            names,
            [
                "cut.heic",
                "empty.cr3",
                "empty.heic",
                "garbage.nef",
                "iphone.heic",
                "portrait.HEIC"
            ]
        );
    }
    for file in &skipped {
        assert!(!file.reason.is_empty(), "{}", file.path.display());
    }
}

#[test]
fn a_run_stopped_mid_epoch_checkpoints_its_position_and_resumes_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 3, 12, 2);
    let config = tiny_config(3, 8);
    let run = dir.path().join("run");
    let summary = run_stopped_at(&request(&folders, &run, config.clone()), 2, 2);
    // The Stop (Ctrl-C in the CLI) came while step 3 of epoch 2 waited (losses are read a step
    // late): the checkpoint holds the three steps done, not just epoch 1.
    assert!(summary.canceled);
    assert_eq!((summary.epochs_completed, summary.steps_into_epoch), (1, 3));
    let state = train::run_folder::checkpoint::read_state(&run).unwrap();
    assert_eq!((state.epochs_completed, state.steps_into_epoch), (1, 3));

    let mut first_step = None;
    let resumed = resumed_on(&run, DeviceChoice::Cpu);
    let summary = train::run(&resumed, &Control::default(), &mut |event| {
        if let TrainEvent::Step { epoch, step, .. } = event {
            first_step.get_or_insert((epoch, step));
        }
    })
    .unwrap();
    assert_eq!(
        first_step,
        Some((2, 4)),
        "only the step not yet trained runs again"
    );
    assert_eq!(summary.epochs_completed, 3);
    assert_eq!(train::read_metrics(&run).unwrap().len(), 3);

    let straight = dir.path().join("straight");
    train::run(
        &request(&folders, &straight, tiny_config(3, 8)),
        &Control::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_same_weights(&straight, &run);
}

/// Every tensor of the two runs' `model.safetensors` agrees to float rounding.
fn assert_same_weights(a: &Path, b: &Path) {
    let (a, _) = tensor_files::read_tensors(&a.join("model.safetensors")).unwrap();
    let (b, _) = tensor_files::read_tensors(&b.join("model.safetensors")).unwrap();
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, tensor) in &a {
        match (&tensor.values, &b[name].values) {
            (TensorValues::F32(x), TensorValues::F32(y)) => {
                for (p, q) in x.iter().zip(y) {
                    assert!(
                        (p - q).abs() <= 1e-5 * (1.0 + p.abs()),
                        "{name}: {p} vs {q}"
                    );
                }
            }
            (x, y) => assert_eq!(x, y, "{name}"),
        }
    }
}

/// The paper's unseen-category protocol (§4.2): the test folder's classes are not the training
/// folder's, so Recall@K and NMI are computed within the test folder and kNN is not reported.
#[test]
fn unseen_test_classes_are_scored_within_the_test_folder() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 4, 8, 9);
    let classes = |folder: &Path| -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(folder)
            .unwrap()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.is_dir())
            .collect();
        found.sort();
        found
    };
    // Train on the first two classes, test on the other two.
    for class in &classes(&folders.train)[2..] {
        std::fs::remove_dir_all(class).unwrap();
    }
    for class in &classes(&folders.test)[..2] {
        std::fs::remove_dir_all(class).unwrap();
    }
    let run = dir.path().join("run");
    let mut warnings = Vec::new();
    let config = TrainConfig {
        recall_k: vec![1, 3, 7],
        ..tiny_config(1, 8)
    };
    let summary = train::run(
        &request(&folders, &run, config),
        &Control::default(),
        &mut |event| {
            if let TrainEvent::Warning { message } = event {
                warnings.push(message);
            }
        },
    )
    .unwrap();
    let metrics = &summary.metrics[0];
    assert_eq!(metrics.knn_accuracy, None);
    assert_eq!(metrics.scored_on, Some(train::ScoredOn::TestFolder));
    let recall = metrics.recall_at.as_ref().unwrap();
    assert!(recall.iter().all(|&(_, r)| (0.0..=100.0).contains(&r)));
    assert!(metrics.nmi.is_some());
    assert!(
        warnings.iter().any(|w| w.contains("unseen categories")),
        "{warnings:?}"
    );
    let ks: Vec<usize> = recall.iter().map(|&(k, _)| k).collect();
    assert_eq!(ks, [1, 3, 7], "the requested K");
    // Computed on the 8 test images (two classes of 4): Recall@7 looks at all 7 others, 3 of
    // them of the query's class, so it is 100 %.
    assert_eq!(recall[2].1, 100.0);
}

/// The comparison methods keep state beside the network (NCE's memory bank and Z, Exemplar's
/// instance classifier with its momentum): a run stopped inside an epoch resumes to exactly the
/// weights and state of an uninterrupted one.
#[test]
fn the_comparison_methods_resume_their_state_exactly() {
    use spreadout::method::Method;
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 3, 12, 2);
    for method in [Method::Nce, Method::Exemplar, Method::TripletHard] {
        let config = TrainConfig {
            method,
            tau: method.default_tau(),
            ..tiny_config(2, 8)
        };
        let straight = dir.path().join(format!("{}-straight", method.name()));
        train::run(
            &request(&folders, &straight, config.clone()),
            &Control::default(),
            &mut |_| {},
        )
        .unwrap();
        let stopped = dir.path().join(format!("{}-stopped", method.name()));
        let summary = run_stopped_at(&request(&folders, &stopped, config.clone()), 2, 1);
        assert_eq!(
            (summary.epochs_completed, summary.steps_into_epoch),
            (1, 2),
            "{method:?}"
        );
        let resumed = resumed_on(&stopped, DeviceChoice::Cpu);
        train::run(&resumed, &Control::default(), &mut |_| {}).unwrap();
        assert_same_weights(&straight, &stopped);
        let (a, _) =
            tensor_files::read_tensors(&train::run_folder::checkpoint::path(&straight)).unwrap();
        let (b, _) =
            tensor_files::read_tensors(&train::run_folder::checkpoint::path(&stopped)).unwrap();
        let state: Vec<&String> = a.keys().filter(|k| k.starts_with("method/")).collect();
        match method {
            Method::TripletHard => assert!(state.is_empty()),
            Method::Nce => assert!(state.iter().any(|k| *k == "method/nce_z"), "{state:?}"),
            _ => assert!(
                state.iter().any(|k| k.starts_with("method/momentum/")),
                "{state:?}"
            ),
        }
        for key in state {
            let (TensorValues::F32(x), TensorValues::F32(y)) = (&a[key].values, &b[key].values)
            else {
                assert_eq!(a[key].values, b[key].values, "{key}");
                continue;
            };
            assert_eq!(x.len(), y.len(), "{key}");
            for (p, q) in x.iter().zip(y) {
                assert!(
                    (p - q).abs() <= 1e-5 * (1.0 + p.abs()),
                    "{method:?} {key}: {p} vs {q}"
                );
            }
        }
    }
}

/// Names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    names.sort();
    names
}

#[test]
fn a_run_folder_on_or_above_its_images_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 2, 8, 3);
    let data = folders.train.parent().unwrap().to_owned();
    let before = (
        listing(&data),
        listing(&folders.train),
        listing(&folders.test),
    );
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut refused = vec![
        folders.train.clone(),
        data.clone(),
        folders.test.clone(),
        folders.train.join(".."),
    ];
    #[cfg(unix)]
    {
        let link = dir.path().join("link to photos");
        std::os::unix::fs::symlink(&folders.train, &link).unwrap();
        refused.push(link);
    }
    for out in refused {
        let mut events = Vec::new();
        let error = train::run(
            &request(&folders, &out, tiny_config(1, 4)),
            &Control::default(),
            &mut |event| events.push(event),
        )
        .unwrap_err();
        assert!(
            matches!(error, train::TrainError::OutHoldsImages { .. }),
            "{}: {error}",
            out.display()
        );
        assert!(
            error.to_string().contains("apart from the images"),
            "{error}"
        );
        assert!(
            !events.iter().any(|e| matches!(e, TrainEvent::Phase { .. })),
            "refused before loading anything"
        );
        assert_eq!(
            (
                listing(&data),
                listing(&folders.train),
                listing(&folders.test)
            ),
            before,
            "nothing written for {}",
            out.display()
        );
    }

    // Beside the images (a run folder not made yet, under their parent) is fine.
    let beside = data.join("runs").join("first");
    let summary = train::run(
        &request(&folders, &beside, tiny_config(1, 4)),
        &Control::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(summary.epochs_completed, 1);
    assert!(beside.join(train::RUN_FILE).is_file());
}

#[test]
fn an_evaluation_setting_out_of_range_is_refused_before_the_first_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 2, 8, 3);
    let run = dir.path().join("run");
    let config = TrainConfig {
        knn_k: 0,
        ..tiny_config(1, 4)
    };
    let mut stepped = false;
    let error = train::run(
        &request(&folders, &run, config),
        &Control::default(),
        &mut |event| stepped |= matches!(event, TrainEvent::Step { .. }),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            train::TrainError::Config {
                setting: "knn_k",
                ..
            }
        ),
        "{error}"
    );
    assert!(!stepped, "no step was trained");
    assert!(!run.exists(), "nothing was written");
}

#[test]
fn a_failed_evaluation_keeps_the_epoch_and_the_run_resumes_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 3, 8, 4);
    let run = dir.path().join("run");
    let cache = dir.path().join("image-cache");
    // The cached pixels become unreadable once the epoch is trained, so its evaluation fails
    // reading the test images.
    let truncate_cached_pixels = || {
        for entry in walkdir::WalkDir::new(&cache) {
            let path = entry.unwrap().into_path();
            let name = path.file_name().unwrap().to_string_lossy();
            if name.starts_with("pixels-") && name.ends_with(".bin") {
                let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                file.set_len(0).unwrap();
            }
        }
    };
    let error = train::run(
        &request(&folders, &run, tiny_config(2, 4)),
        &Control::default(),
        &mut |event| {
            if let TrainEvent::Phase {
                phase: train::Phase::Evaluating,
            } = event
            {
                truncate_cached_pixels();
            }
        },
    )
    .unwrap_err();
    assert!(
        matches!(error, train::TrainError::Data(_)),
        "the evaluation failed reading: {error}"
    );
    let state = train::run_folder::checkpoint::read_state(&run).unwrap();
    assert_eq!((state.epochs_completed, state.steps_into_epoch), (1, 0));
    assert!(run.join("model.safetensors").is_file());
    assert_eq!(train::read_metrics(&run).unwrap().len(), 1);

    // With the cache made afresh, the resume trains epoch 2 only.
    std::fs::remove_dir_all(&cache).unwrap();
    let mut first_step = None;
    let resumed = resumed_on(&run, DeviceChoice::Cpu);
    let summary = train::run(&resumed, &Control::default(), &mut |event| {
        if let TrainEvent::Step { epoch, step, .. } = event {
            first_step.get_or_insert((epoch, step));
        }
    })
    .unwrap();
    assert_eq!(first_step, Some((2, 1)));
    assert_eq!(summary.epochs_completed, 2);
    assert_eq!(train::read_metrics(&run).unwrap().len(), 2);
}

#[test]
fn a_run_stopped_in_its_first_epoch_is_listed_and_resumes() {
    use spreadout::train::run_folder::runs;
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 3, 12, 2);
    let config = tiny_config(2, 8);
    let run = dir.path().join("run");
    let summary = run_stopped_at(&request(&folders, &run, config.clone()), 1, 2);
    assert_eq!((summary.epochs_completed, summary.steps_into_epoch), (0, 3));
    assert!(!run.join(train::METRICS_FILE).exists());

    let listed = runs::list(dir.path());
    assert_eq!(listed.len(), 1, "the run is listed");
    let info = &listed[0];
    assert_eq!(info.dir, run);
    assert_eq!((info.epochs_completed, info.metrics.len()), (0, 0));
    assert!(info.unfinished);

    let resumed = TrainRequest::resume(
        &run,
        train::ResumeOverrides {
            device: Some(DeviceChoice::Cpu),
            cache_dir: Some(dir.path().join("image-cache")),
            ..train::ResumeOverrides::default()
        },
    )
    .unwrap()
    .request;
    let summary = train::run(&resumed, &Control::default(), &mut |_| {}).unwrap();
    assert_eq!(summary.epochs_completed, 2);
    assert!(!runs::describe(&run).unwrap().unfinished);
}

/// The method's tensors of a run's checkpoint, by name within `method/`.
fn method_tensors(run: &Path) -> std::collections::BTreeMap<String, tensor_files::NamedTensor> {
    let (tensors, _) =
        tensor_files::read_tensors(&train::run_folder::checkpoint::path(run)).unwrap();
    tensors
        .into_iter()
        .filter_map(|(name, tensor)| Some((name.strip_prefix("method/")?.to_owned(), tensor)))
        .collect()
}

#[test]
fn a_stateful_run_resumed_on_a_changed_folder_keeps_each_images_rows_and_resumes_again() {
    use spreadout::method::Method;
    let dir = tempfile::tempdir().unwrap();
    for method in [Method::Nce, Method::Exemplar] {
        let folders = tiny_data(&dir.path().join(method.name()), 3, 12, 2);
        let config = TrainConfig {
            method,
            tau: method.default_tau(),
            ..tiny_config(2, 8)
        };
        let run = dir.path().join(format!("{}-run", method.name()));
        let first = TrainRequest {
            stop_after_epoch: Some(1),
            ..request(&folders, &run, config.clone())
        };
        train::run(&first, &Control::default(), &mut |_| {}).unwrap();
        let before = method_tensors(&run);

        // The first image of the first class goes (every later row's index shifts) and two new
        // ones come (the folder grows: rows past the saved memory's end).
        let class = folders.train.join(&listing(&folders.train)[0]);
        let first_image = class.join(&listing(&class)[0]);
        std::fs::copy(&first_image, class.join("zz-added-later.png")).unwrap();
        std::fs::copy(&first_image, class.join("zz-added-later-too.png")).unwrap();
        std::fs::remove_file(&first_image).unwrap();

        let resumed = TrainRequest {
            accept_changed_folder: true,
            ..resumed_on(&run, DeviceChoice::Cpu)
        };
        let control = Control::default();
        let summary = train::run(&resumed, &control, &mut |event| {
            if let TrainEvent::Step { .. } = event {
                control.cancel();
            }
        })
        .unwrap_or_else(|error| panic!("{method:?}: {error}"));
        assert_eq!(summary.epochs_completed, 1, "{method:?}");
        let after = method_tensors(&run);
        let keys = |tensors: &std::collections::BTreeMap<String, tensor_files::NamedTensor>| {
            match &tensors["instance_keys"].values {
                TensorValues::I64(keys) => keys.clone(),
                TensorValues::F32(_) => panic!("keys are i64"),
            }
        };
        let (old_keys, new_keys) = (keys(&before), keys(&after));
        assert_eq!((old_keys.len(), new_keys.len()), (36, 37), "{method:?}");
        assert_eq!(
            new_keys
                .iter()
                .filter(|key| !old_keys.contains(key))
                .count(),
            2,
            "two new images"
        );
        for (name, tensor) in &after {
            if let TensorValues::F32(values) = &tensor.values
                && name != "nce_z"
            {
                assert_eq!(
                    values.len() % 37,
                    0,
                    "{method:?} {name} has a row per image"
                );
            }
        }
        if method == Method::Nce {
            // The one or two steps taken rewrote at most two batches' rows; every other image
            // kept its own row, found by its name, not by its place in the folder.
            let (TensorValues::F32(old), TensorValues::F32(new)) =
                (&before["memory"].values, &after["memory"].values)
            else {
                panic!("memory is f32");
            };
            let width = config.dim;
            let kept = new_keys
                .iter()
                .enumerate()
                .filter(|(row, key)| {
                    old_keys
                        .iter()
                        .position(|old_key| old_key == *key)
                        .is_some_and(|old_row| {
                            new[row * width..(row + 1) * width]
                                == old[old_row * width..(old_row + 1) * width]
                        })
                })
                .count();
            assert!(kept >= 35 - 16, "only {kept} rows followed their images");
        }

        // The changed folder is now the run's: it resumes again without being asked to accept.
        let again = resumed_on(&run, DeviceChoice::Cpu);
        let summary = train::run(&again, &Control::default(), &mut |_| {})
            .unwrap_or_else(|error| panic!("{method:?}: {error}"));
        assert_eq!(summary.epochs_completed, 2, "{method:?}");
    }
}

#[test]
fn a_pause_writes_a_checkpoint_so_quitting_while_paused_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 3, 12, 2);
    let run = dir.path().join("run");
    let control = std::sync::Arc::new(Control::default());
    let worker = {
        let (control, request) = (control.clone(), request(&folders, &run, tiny_config(2, 8)));
        std::thread::spawn(move || {
            // Paused as the second step is reported, as the app's Pause button does; here on the
            // worker's own thread, so the pause lands inside the first epoch on a busy machine too.
            train::run(&request, &control, &mut |event| {
                if let TrainEvent::Step { step: 2, .. } = event {
                    control.pause();
                }
            })
        })
    };
    let waited = std::time::Instant::now();
    while !train::run_folder::checkpoint::path(&run).exists() {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(120),
            "no checkpoint while paused"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let state = train::run_folder::checkpoint::read_state(&run).unwrap();
    assert_eq!(state.epochs_completed, 0);
    assert!(state.steps_into_epoch >= 2, "{}", state.steps_into_epoch);
    // Quitting now (the process ends while paused) leaves exactly this position to resume from.
    control.cancel();
    let summary = worker.join().unwrap().unwrap();
    assert_eq!(summary.steps_into_epoch, state.steps_into_epoch);
}

/// The first label folder of a training folder, in directory order.
fn first_class_folder(train: &Path) -> std::path::PathBuf {
    std::fs::read_dir(train)
        .unwrap()
        .flatten()
        .find(|entry| entry.path().is_dir())
        .unwrap()
        .path()
}
