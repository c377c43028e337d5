//! `spreadout eval`: a model scored on labelled folders as JSON, by both of the paper's
//! protocols ([`spreadout::score`]).

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;
use spreadout::device;
use spreadout::eval;
use spreadout::model_files;
use spreadout::score::{self, FolderScores};

use super::Context;
use crate::args::DeviceArg;
use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    /// Run folder or model.safetensors.
    model: PathBuf,
    /// Labelled folder used as the kNN memory and the linear classifier's training set.
    #[arg(long)]
    train: PathBuf,
    /// Labelled folder that is scored; its classes may differ from --train's (unseen categories).
    #[arg(long)]
    test: PathBuf,
    /// kNN neighbours.
    #[arg(long, default_value_t = 200)]
    k: usize,
    /// kNN vote temperature: weights exp(similarity / sigma).
    #[arg(long, default_value_t = 0.1)]
    sigma: f32,
    /// The K of Recall@K, e.g. 1,10,100 for Stanford Online Products.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    recall_k: Vec<usize>,
    /// Also fit a linear classifier (multinomial logistic regression, 100 epochs of SGD on
    /// standardised embeddings) on --train and report its top-1 on --test (paper Table 2).
    #[arg(long)]
    linear: bool,
    #[command(flatten)]
    device: DeviceArg,
}

/// What `eval` prints: the model, then its scores.
#[derive(Serialize)]
struct EvalReport<'a> {
    #[serde(serialize_with = "spreadout::support::paths::serialize")]
    model: &'a Path,
    #[serde(flatten)]
    scores: &'a FolderScores,
}

pub fn run(args: Args, context: &Context) -> Result<()> {
    let Args {
        model,
        train,
        test,
        k,
        sigma,
        recall_k,
        linear,
        device,
    } = args;
    let (model, train_dir, test_dir, cache) = (&model, &train, &test, &context.cache);
    let settings = &score::ScoreSettings {
        knn_k: k,
        knn_sigma: sigma,
        recall_k,
        linear: linear.then(eval::LinearSettings::default),
        seed: 0,
    };
    let selected = device::select(device.choice())?;
    let loaded = model_files::load_model(model, &selected.device)?;
    let scores = score::score_folders(
        &loaded,
        train_dir,
        test_dir,
        cache,
        settings,
        &progress::loading_bar(),
        &mut |folder| progress::report_skipped(&folder.set.skipped),
    )?;
    if scores.knn_accuracy.is_none() {
        eprintln!(
            "none of the {} classes of {} is in {}: unseen categories (paper §4.2), so kNN is not scored; Recall@K and NMI are computed within {}",
            scores.test_classes,
            test_dir.display(),
            train_dir.display(),
            test_dir.display()
        );
    } else if scores.test_classes_in_memory < scores.test_classes {
        eprintln!(
            "{} of the {} classes of {} are not in {}: kNN scores only the {} test images of the other classes",
            scores.test_classes - scores.test_classes_in_memory,
            scores.test_classes,
            test_dir.display(),
            train_dir.display(),
            scores.classified_images
        );
    }
    let report = EvalReport {
        model,
        scores: &scores,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eval_report_names_paths_that_are_not_utf8() {
        #[cfg(unix)]
        let odd = {
            use std::os::unix::ffi::OsStrExt;
            PathBuf::from(std::ffi::OsStr::from_bytes(b"runs/caf\xe9"))
        };
        #[cfg(not(unix))]
        let odd = PathBuf::from("runs/café");
        let scores = FolderScores {
            knn_accuracy: Some(50.0),
            knn_k: 200,
            knn_sigma: 0.1,
            linear_accuracy: None,
            classified_images: 10,
            recall_at: vec![(1, 40.0), (10, 90.0)],
            nmi: 0.5,
            retrieval_scored_on: odd.join("test"),
            test_classes: 2,
            test_classes_in_memory: 2,
            test_classes_left_out: Vec::new(),
            train_images: 20,
            test_images: 10,
        };
        let json: serde_json::Value = serde_json::to_value(EvalReport {
            model: &odd,
            scores: &scores,
        })
        .unwrap();
        let text = |path: &Path| spreadout::support::paths::to_text(path).into_owned();
        assert_eq!(json["model"], text(&odd));
        assert_eq!(json["retrieval_scored_on"], text(&odd.join("test")));
        assert_eq!(json["recall_at"]["10"], 90.0);
        assert_eq!(json["knn_accuracy"], 50.0);
    }
}
