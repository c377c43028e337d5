//! Run folders people already have on their disks keep working: `tests/fixtures/run-bd697c5` was
//! written by the release before identifiers and JSON keys took one (American) spelling, and it
//! must still be listed, read and resumed.

use std::fs;
use std::path::Path;

use spreadout::device::DeviceChoice;
use spreadout::eval::PairKind;
use spreadout::lab::demo::{self, DemoSpec};
use spreadout::train::run_folder::runs;
use spreadout::train::{self, Control, ResumeOverrides, TrainRequest};

fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-bd697c5");
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "README.md" {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn a_run_folder_from_bd697c5_opens_and_resumes() {
    let temp = tempfile::tempdir().unwrap();
    let run = temp.path().join("run");
    copy_fixture(&run);

    // Listed and described, with every epoch's metrics under their old keys.
    let info = runs::describe(&run).expect("the old run folder opens");
    assert_eq!(info.epochs_completed, 2);
    assert_eq!(info.record.config.width, 4);
    assert_eq!(info.metrics.len(), 2);
    let last = &info.metrics[1];
    assert!(last.knn_accuracy.is_some());
    let similarity = last.similarity.as_ref().expect("similarity histograms");
    assert_eq!(similarity.kind, PairKind::SameClassNeighbors);
    assert!(!last.probes.is_empty());
    assert!(last.probes.iter().all(|probe| !probe.neighbors.is_empty()));
    assert_eq!(runs::list(temp.path()).len(), 1);

    // Resumed for one more epoch; the images it was trained on lived in a temporary folder, so a
    // labelled folder of the same size stands in for them.
    let data = demo::generate(
        &temp.path().join("data"),
        &DemoSpec {
            classes: 8,
            train_per_class: 4,
            test_per_class: 2,
            size: 32,
            seed: 5,
        },
    )
    .unwrap();
    let request = TrainRequest::resume(
        &run,
        ResumeOverrides {
            epochs: Some(3),
            train_dir: Some(data.train.clone()),
            eval_train_dir: None,
            eval_test_dir: Some(data.test.clone()),
            device: Some(DeviceChoice::Cpu),
            cache_dir: Some(temp.path().join("cache")),
            accept_changed_folder: true,
            ..ResumeOverrides::default()
        },
    )
    .expect("a resume request from the old run.json")
    .request;
    assert_eq!(request.config.seed, 3);
    let summary = train::run(&request, &Control::default(), &mut |_| {}).expect("resumes");
    assert_eq!(summary.epochs_completed, 3);
    assert_eq!(runs::describe(&run).unwrap().metrics.len(), 3);
}
