//! Comparisons on one folder: which runs a comparison trains (methods of the paper's Table 1 and
//! Fig. 3, the augmentation ablations of Table 7, the sampling ablations of Table 8), where each
//! run lives, and the table of kNN per epoch read back from the runs' own `metrics.jsonl`.
//!
//! Every variant is an ordinary run in its own folder under the comparison's folder, so an
//! interrupted comparison resumes run by run, a finished one is reused as it is, and any run can
//! be opened in the app on its own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::augment::AugmentOps;
use crate::method::{Method, NegativeSampling};
use crate::tensor_files::FileError;
use crate::train::run_folder::checkpoint;
use crate::train::{self, EpochMetrics, TrainConfig, TrainRequest};

/// One run of a comparison: a method, or the spread-out method with one thing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// A method with the base settings.
    Method(Method),
    /// Spread-out without one augmentation (`crop`, `color`, `gray`, `flip`; Table 7).
    Without(&'static str),
    /// Spread-out without any augmentation (Table 8, "No DA").
    NoAugmentation,
    /// Spread-out with only the hardest or easiest half of the negatives (Table 8).
    Negatives(NegativeSampling),
}

/// A variant or preset name that is not known.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown variant {0:?}; expected a method (spreadout, npsoftmax, nce, exemplar, triplet, triplet-hard), an ablation (no-crop, no-color, no-gray, no-flip, no-aug, hard, easy) or a preset (fig3, table1, table7, table8)"
)]
pub struct UnknownVariant(pub String);

impl Variant {
    /// The variants `names` list, presets expanded, each once, in order.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Variant>, UnknownVariant> {
        let mut variants = Vec::new();
        for name in names {
            let name = name.as_ref().trim();
            let expanded: Vec<Variant> = match name {
                "fig3" => [
                    Method::SpreadOut,
                    Method::NpSoftmax,
                    Method::Nce,
                    Method::Exemplar,
                ]
                .map(Variant::Method)
                .to_vec(),
                "table1" => Method::ALL.map(Variant::Method).to_vec(),
                "table7" => vec![
                    Variant::Method(Method::SpreadOut),
                    Variant::Without("crop"),
                    Variant::Without("gray"),
                    Variant::Without("color"),
                    Variant::Without("flip"),
                ],
                "table8" => vec![
                    Variant::Method(Method::SpreadOut),
                    Variant::NoAugmentation,
                    Variant::Negatives(NegativeSampling::HardestHalf),
                    Variant::Negatives(NegativeSampling::EasiestHalf),
                ],
                single => vec![Self::parse(single)?],
            };
            for variant in expanded {
                if !variants.contains(&variant) {
                    variants.push(variant);
                }
            }
        }
        Ok(variants)
    }

    fn parse(name: &str) -> Result<Variant, UnknownVariant> {
        if let Some(method) = Method::ALL.into_iter().find(|m| m.name() == name) {
            return Ok(Variant::Method(method));
        }
        Ok(match name {
            "no-crop" => Variant::Without("crop"),
            "no-color" => Variant::Without("color"),
            "no-gray" => Variant::Without("gray"),
            "no-flip" => Variant::Without("flip"),
            "no-aug" => Variant::NoAugmentation,
            "hard" => Variant::Negatives(NegativeSampling::HardestHalf),
            "easy" => Variant::Negatives(NegativeSampling::EasiestHalf),
            _ => return Err(UnknownVariant(name.to_owned())),
        })
    }

    /// The variant's name: its run folder's name and its row in the table.
    pub fn name(self) -> String {
        match self {
            Variant::Method(method) => method.name().to_owned(),
            Variant::Without(op) => format!("no-{op}"),
            Variant::NoAugmentation => "no-aug".to_owned(),
            Variant::Negatives(NegativeSampling::HardestHalf) => "hard".to_owned(),
            Variant::Negatives(NegativeSampling::EasiestHalf) => "easy".to_owned(),
            Variant::Negatives(NegativeSampling::All) => "spreadout".to_owned(),
        }
    }

    /// The configuration this variant trains with: `base` with the variant's change; `tau`
    /// when given, else the method's published temperature.
    pub fn config(self, base: &TrainConfig, tau: Option<f32>) -> TrainConfig {
        let mut config = TrainConfig {
            method: Method::SpreadOut,
            negatives: NegativeSampling::All,
            augment: AugmentOps::default(),
            ..base.clone()
        };
        match self {
            Variant::Method(method) => config.method = method,
            Variant::Without(op) => config
                .augment
                .disable(op)
                .expect("variant names are known augmentations"),
            Variant::NoAugmentation => config.augment = AugmentOps::none(),
            Variant::Negatives(sampling) => config.negatives = sampling,
        }
        config.tau = tau.unwrap_or_else(|| config.method.default_tau());
        config
    }

    /// The training request of this variant up to `epoch`: `base` (folders, device, cache,
    /// epochs) pointed at the variant's run folder under `root`, resuming it when it already
    /// holds a run (through [`TrainRequest::resume`], so a longer comparison extends each run as
    /// a longer `--resume` would).
    ///
    /// # Errors
    /// Those of [`TrainRequest::resume`].
    pub fn request(
        self,
        base: &TrainRequest,
        root: &Path,
        tau: Option<f32>,
        epoch: usize,
    ) -> Result<TrainRequest, train::TrainError> {
        let out = run_dir(root, self);
        if checkpoint::path(&out).exists() {
            let resumption = TrainRequest::resume(
                &out,
                train::ResumeOverrides {
                    epochs: Some(base.config.epochs),
                    train_dir: Some(base.train_dir.clone()),
                    eval_train_dir: base.eval_train_dir.clone(),
                    eval_test_dir: base.eval_test_dir.clone(),
                    device: Some(base.device.clone()),
                    cache_dir: base.cache_dir.clone(),
                    ..train::ResumeOverrides::default()
                },
            )?;
            return Ok(resumption.request.stopping_after_epoch(Some(epoch)));
        }
        Ok(
            TrainRequest::new(self.config(&base.config, tau), base.train_dir.clone(), out)
                .evaluated_on(base.eval_train_dir.clone(), base.eval_test_dir.clone())
                .on(base.device.clone())
                .with_cache_dir(base.cache_dir.clone())
                .stopping_after_epoch(Some(epoch)),
        )
    }
}

/// What is left of a comparison of `variants` over `epochs` epochs under `root`, in the order to
/// run it: one epoch of each variant in turn (`(variant, stop after epoch e)`), so that all
/// learning curves grow together and a comparison stopped early still compares every variant
/// at the epochs reached. Epochs already in a variant's checkpoint are skipped.
pub fn plan(root: &Path, variants: &[Variant], epochs: usize) -> Vec<(Variant, usize)> {
    let done: Vec<usize> = variants
        .iter()
        .map(|&variant| {
            checkpoint::read_state(&run_dir(root, variant))
                .map_or(0, |state| state.epochs_completed)
        })
        .collect();
    (1..=epochs)
        .flat_map(|epoch| {
            variants
                .iter()
                .zip(&done)
                .filter(move |&(_, &done)| done < epoch)
                .map(move |(&variant, _)| (variant, epoch))
        })
        .collect()
}

/// The run folder of `variant` under a comparison's `root`.
pub fn run_dir(root: &Path, variant: Variant) -> PathBuf {
    root.join(variant.name())
}

/// The comparison's results: kNN per epoch of every variant, from the runs' metrics.
#[derive(Debug, Clone, Serialize)]
pub struct CompareTable {
    /// One row per variant, in the order asked.
    pub rows: Vec<CompareRow>,
}

/// One variant's results.
#[derive(Debug, Clone, Serialize)]
pub struct CompareRow {
    /// The variant's name.
    pub variant: String,
    /// kNN top-1 (%) after each epoch; `None` where the epoch was not scored.
    pub knn: Vec<Option<f64>>,
    /// Recall@1 (%) and NMI after the last epoch, where computed.
    pub recall_at_1: Option<f64>,
    /// NMI after the last epoch.
    pub nmi: Option<f64>,
    /// Mean seconds per epoch (training and scoring).
    pub seconds_per_epoch: f64,
}

/// Reads the table of `variants` from their runs under `root`.
pub fn collect(root: &Path, variants: &[Variant]) -> Result<CompareTable, FileError> {
    let rows = variants
        .iter()
        .map(|&variant| {
            let metrics = train::read_metrics(&run_dir(root, variant))?;
            Ok(row(variant.name(), &metrics))
        })
        .collect::<Result<_, FileError>>()?;
    Ok(CompareTable { rows })
}

/// The report's file in the comparison's folder.
pub const REPORT_FILE: &str = "compare.md";

/// The comparison's report on `train_dir`: what the runs were trained with (the first variant's
/// record, not the settings of the command that asks), the table of `variants`, and whether
/// spread-out led the paper's baselines at every epoch (Fig. 3's claim). Also written to
/// [`REPORT_FILE`] under `root`.
///
/// # Errors
/// [`FileError`] naming a run file that cannot be read or the report that cannot be written.
pub fn write_report(
    root: &Path,
    variants: &[Variant],
    train_dir: &Path,
) -> Result<String, FileError> {
    let table = collect(root, variants)?;
    let config = match variants.first() {
        Some(&first) => train::run_folder::runs::read_record(&run_dir(root, first))?.config,
        None => TrainConfig::default(),
    };
    let mut report = format!(
        "kNN top-1 (%) after each epoch of {} ({} epochs planned, width {}, batch {}, {} px, seed {})\n\n{}",
        train_dir.display(),
        config.epochs,
        config.width,
        config.batch_size,
        config.image_size,
        config.seed,
        table.to_markdown()
    );
    let baselines = ["npsoftmax", "nce", "exemplar"];
    if let Some(leads) = table.leads_at_every_epoch("spreadout", &baselines) {
        let _ = writeln!(
            report,
            "\nspreadout above npsoftmax, nce and exemplar at every epoch: {}",
            if leads { "yes" } else { "no" }
        );
    }
    let file = root.join(REPORT_FILE);
    crate::support::atomic_file::write(&file, report.as_bytes()).map_err(FileError::io(&file))?;
    Ok(report)
}

fn row(variant: String, metrics: &[EpochMetrics]) -> CompareRow {
    let last = metrics.last();
    CompareRow {
        variant,
        knn: metrics.iter().map(|m| m.knn_accuracy).collect(),
        recall_at_1: last
            .and_then(|m| m.recall_at.as_ref())
            .and_then(|recall| recall.iter().find(|(k, _)| *k == 1).map(|(_, r)| *r)),
        nmi: last.and_then(|m| m.nmi),
        seconds_per_epoch: if metrics.is_empty() {
            0.0
        } else {
            metrics.iter().map(|m| m.seconds).sum::<f64>() / metrics.len() as f64
        },
    }
}

impl CompareTable {
    /// Whether `leader` scores above each of `others` at every epoch both were scored (the
    /// paper's Fig. 3 claim for spread-out over NPSoftmax, NCE and Exemplar); `None` when a row
    /// is missing or no epoch was scored by both.
    pub fn leads_at_every_epoch(&self, leader: &str, others: &[&str]) -> Option<bool> {
        let find = |name: &str| self.rows.iter().find(|r| r.variant == name);
        let leader = find(leader)?;
        let mut compared = false;
        for other in others {
            let other = find(other)?;
            for (a, b) in leader.knn.iter().zip(&other.knn) {
                if let (Some(a), Some(b)) = (a, b) {
                    compared = true;
                    if a <= b {
                        return Some(false);
                    }
                }
            }
        }
        compared.then_some(true)
    }

    /// The table as Markdown: kNN (%) per epoch, then the final Recall@1 and NMI.
    pub fn to_markdown(&self) -> String {
        let epochs = self.rows.iter().map(|r| r.knn.len()).max().unwrap_or(0);
        let mut out = String::from("| variant |");
        for epoch in 1..=epochs {
            let _ = write!(out, " {epoch} |");
        }
        out.push_str(" R@1 | NMI | s/epoch |\n|---|");
        out.push_str(&"---:|".repeat(epochs + 3));
        out.push('\n');
        let cell = |value: Option<f64>, digits: usize| {
            value.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
        };
        for row in &self.rows {
            let _ = write!(out, "| {} |", row.variant);
            for epoch in 0..epochs {
                let _ = write!(out, " {} |", cell(row.knn.get(epoch).copied().flatten(), 1));
            }
            let _ = writeln!(
                out,
                " {} | {} | {:.0} |",
                cell(row.recall_at_1, 1),
                cell(row.nmi, 3),
                row.seconds_per_epoch
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_expand_once_each_and_unknown_names_are_named() {
        let variants = Variant::parse_list(&["fig3", "spreadout", "table8"]).unwrap();
        let names: Vec<String> = variants.iter().map(|v| v.name()).collect();
        assert_eq!(
            names,
            [
                "spreadout",
                "npsoftmax",
                "nce",
                "exemplar",
                "no-aug",
                "hard",
                "easy"
            ]
        );
        let error = Variant::parse_list(&["fig3", "simclr"]).unwrap_err();
        assert!(error.to_string().contains("\"simclr\""), "{error}");
    }

    #[test]
    fn variants_change_only_their_setting_and_take_their_method_tau() {
        let base = TrainConfig {
            epochs: 3,
            width: 16,
            ..TrainConfig::default()
        };
        let nce = Variant::Method(Method::Nce).config(&base, None);
        assert_eq!(
            (nce.method, nce.tau, nce.epochs, nce.width),
            (Method::Nce, 0.07, 3, 16)
        );
        let no_crop = Variant::Without("crop").config(&base, Some(0.2));
        assert!(!no_crop.augment.crop && no_crop.augment.flip);
        assert_eq!((no_crop.method, no_crop.tau), (Method::SpreadOut, 0.2));
        let hard = Variant::Negatives(NegativeSampling::HardestHalf).config(&base, None);
        assert_eq!(hard.negatives, NegativeSampling::HardestHalf);
    }

    #[test]
    fn the_lead_is_judged_on_epochs_both_scored() {
        let table = CompareTable {
            rows: vec![
                CompareRow {
                    variant: "spreadout".into(),
                    knn: vec![Some(30.0), Some(40.0), None],
                    recall_at_1: None,
                    nmi: None,
                    seconds_per_epoch: 1.0,
                },
                CompareRow {
                    variant: "nce".into(),
                    knn: vec![Some(20.0), Some(41.0), Some(50.0)],
                    recall_at_1: None,
                    nmi: None,
                    seconds_per_epoch: 1.0,
                },
            ],
        };
        assert_eq!(
            table.leads_at_every_epoch("spreadout", &["nce"]),
            Some(false)
        );
        let mut ahead = table.clone();
        ahead.rows[1].knn[1] = Some(39.0);
        assert_eq!(
            ahead.leads_at_every_epoch("spreadout", &["nce"]),
            Some(true)
        );
        assert_eq!(ahead.leads_at_every_epoch("spreadout", &["exemplar"]), None);
        let markdown = ahead.to_markdown();
        assert!(
            markdown.contains("| spreadout | 30.0 | 40.0 | – |"),
            "{markdown}"
        );
    }
}
