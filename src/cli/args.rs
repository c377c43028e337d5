//! The command line's shape (clap): the subcommands, each defined beside its code in
//! `commands/`, and the arguments several of them share: the device, the labelled folders and
//! the training settings, whose defaults are the engine's own ([`TrainConfig::default`]).

use std::path::PathBuf;
use std::sync::LazyLock;

use clap::{Args, Parser, Subcommand};
use spreadout::augment::AugmentOps;
use spreadout::device::DeviceChoice;
use spreadout::method::{Method, NegativeSampling, Positive};
use spreadout::model::Precision;
use spreadout::optim::Schedule;
use spreadout::train::{AugmentOn, TrainConfig};

use crate::commands::{
    bench, cache, clusters, compare, demo, devices, duplicates, embed, eval, neighbors,
    plant_copies, serve, train,
};

/// The engine's settings for a new run: every training flag's default.
static DEFAULTS: LazyLock<TrainConfig> = LazyLock::new(TrainConfig::default);

#[derive(Parser)]
#[command(
    name = "spreadout",
    version,
    about = "Train an image embedding on a folder of unlabelled images (instance spread-out, Ye et al. CVPR 2019), then search and evaluate it",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Folder of the preprocessed image cache (default: $SPREADOUT_CACHE_DIR, else the per-user cache folder, shared with the app).
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Train on a folder of images; writes checkpoints, metrics.jsonl and model.safetensors to --out.
    Train(train::Args),
    /// Train several methods or ablations on one folder and print kNN per epoch for each (the paper's Fig. 3, Tables 1, 7 and 8).
    Compare(compare::Args),
    /// Show what the preprocessed image cache holds, fill it for a folder ahead of time, or clear it.
    Cache(cache::Args),
    /// Embed every image of a folder with a trained model; writes embeddings + file list (safetensors).
    Embed(embed::Args),
    /// Nearest neighbours of an image, with cosine scores.
    Neighbors(neighbors::Args),
    /// Find near-duplicate images: groups in which every two are linked by their perceptual
    /// hashes (no model needed) or, given a model, by their embeddings' cosine, each stage at the
    /// threshold the folder's own distributions suggest; largest first. Never touches the images.
    Duplicates(duplicates::Args),
    /// Cluster a folder with k-means on the embedding: each cluster's size and most typical images.
    Clusters(clusters::Args),
    /// Copy a folder and plant an edited copy beside a fraction of its images (low-quality JPEG,
    /// downscaled, cropped, brightened, noised), listed in planted-copies.csv: a benchmark for `duplicates`.
    PlantCopies(plant_copies::Args),
    /// Score a model on labelled folders, as JSON: weighted kNN (and --linear) where the test classes are in --train; Recall@K and NMI within --test (seen or unseen categories).
    Eval(eval::Args),
    /// Generate a small synthetic labelled data set and train on it end to end, printing kNN per epoch.
    Demo(demo::Args),
    /// List the GPU adapters `--device` can choose, or (with --remote) the device a server serves.
    Devices(devices::Args),
    /// Serve this machine's GPU to Spreadout on other machines (`--device wss://HOST:PORT` there).
    /// Beyond loopback it speaks TLS (wss://, the key pinned by the token file) or, with --iroh, QUIC.
    Serve(serve::Args),
    /// Measure training and data throughput; prints a table (or JSON lines).
    Bench(bench::Args),
}

#[derive(Args, Clone)]
pub struct DeviceArg {
    /// auto (a discrete GPU, else another real GPU, else CPU), gpu, cpu, an adapter number from
    /// `spreadout devices`, or a server, wss://HOST:PORT (ws://, iroh://): the GPU of a machine running `spreadout serve`.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// The server's token, for a served --device (the file `spreadout serve` wrote there).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

impl DeviceArg {
    /// The device asked for, with its token file.
    pub fn choice(&self) -> DeviceChoice {
        self.device.clone().with_token_file(self.token_file.clone())
    }
}

/// The labelled folders a run is scored on after every epoch.
#[derive(Args)]
pub struct EvalFolders {
    /// Labelled folder used as the kNN memory (default: DIR, when it has label folders).
    #[arg(long)]
    pub eval_train: Option<PathBuf>,
    /// Labelled folder scored after every epoch (kNN where its classes are in the memory; Recall@K and NMI).
    #[arg(long)]
    pub eval_test: Option<PathBuf>,
}

/// The hyper-parameters `train` and `compare` share.
#[derive(Args)]
pub struct TrainSettings {
    /// Passes over the data.
    #[arg(long, default_value_t = DEFAULTS.epochs)]
    pub epochs: usize,
    /// Images per batch; each contributes two augmented views (one for npsoftmax, nce, exemplar).
    #[arg(long, default_value_t = DEFAULTS.batch_size)]
    pub batch_size: usize,
    /// Square input size in pixels (≤ 64 uses the CIFAR stem, larger the ImageNet stem).
    #[arg(long, default_value_t = DEFAULTS.image_size)]
    pub image_size: u32,
    /// ResNet-18 base width (64 as in the paper; 16 trains ~8× faster on a CPU).
    #[arg(long, default_value_t = DEFAULTS.width)]
    pub width: usize,
    /// Embedding dimension.
    #[arg(long, default_value_t = DEFAULTS.dim)]
    pub dim: usize,
    /// Softmax temperature (default: each method's published one, 0.1 for spreadout, 0.07 for npsoftmax and nce).
    #[arg(long)]
    pub tau: Option<f32>,
    /// Base learning rate (SGD, momentum 0.9, weight decay 5e-4).
    #[arg(long, default_value_t = DEFAULTS.lr)]
    pub lr: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = DEFAULTS.schedule)]
    pub schedule: Schedule,
    /// Seed for initialisation, order and augmentation.
    #[arg(long, default_value_t = DEFAULTS.seed)]
    pub seed: u64,
    /// kNN neighbours for the per-epoch evaluation.
    #[arg(long, default_value_t = DEFAULTS.knn_k)]
    pub knn_k: usize,
    /// The K of Recall@K, e.g. 1,10,100 for Stanford Online Products.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULTS.recall_k.clone())]
    pub recall_k: Vec<usize>,
    /// Convolution precision: f16 uses a GPU's 16-bit (tensor-core) paths, weights and loss stay f32.
    #[arg(long, value_enum, default_value_t = DEFAULTS.precision)]
    pub precision: Precision,
    /// Where the training views are built: auto (on a GPU adapter, the GPU; on a served device, the
    /// server, from the images kept there; on the CPU backend, the CPU), device, or cpu. The views
    /// are the same either way.
    #[arg(long, value_enum, default_value_t = DEFAULTS.augment_on)]
    pub augment_on: AugmentOn,
    /// With views built on the device (a GPU here or a served one), the MiB of training images
    /// kept there for the whole run (above it a GPU here gets each batch's images with it, a
    /// served device each batch's 8-bit views); 0: never.
    #[arg(long, default_value_t = DEFAULTS.device_data_mb)]
    pub device_data_mb: u32,
    /// Minutes between checkpoints inside an epoch (one is also written at each epoch's end and on Ctrl-C).
    #[arg(long, default_value_t = DEFAULTS.checkpoint_minutes)]
    pub checkpoint_minutes: f64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum NegativesArg {
    /// All other rows of the batch.
    All,
    /// The most similar half.
    Hard,
    /// The least similar half.
    Easy,
}

impl TrainSettings {
    /// The library's configuration for these flags, with `augment_off` switched off and
    /// `negatives` chosen; the temperature is the method's published one unless `--tau` was given.
    pub fn config(
        &self,
        method: Method,
        negatives: NegativesArg,
        positive: Positive,
        augment_off: &[String],
    ) -> anyhow::Result<TrainConfig> {
        let mut augment = AugmentOps::default();
        for op in augment_off {
            augment.disable(op).map_err(anyhow::Error::msg)?;
        }
        Ok(TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            image_size: self.image_size,
            width: self.width,
            dim: self.dim,
            tau: self.tau.unwrap_or_else(|| method.default_tau()),
            lr: self.lr,
            schedule: self.schedule,
            seed: self.seed,
            augment,
            method,
            negatives: match negatives {
                NegativesArg::All => NegativeSampling::All,
                NegativesArg::Hard => NegativeSampling::HardestHalf,
                NegativesArg::Easy => NegativeSampling::EasiestHalf,
            },
            positive,
            knn_k: self.knn_k,
            recall_k: self.recall_k.clone(),
            precision: self.precision,
            augment_on: self.augment_on,
            device_data_mb: self.device_data_mb,
            checkpoint_minutes: self.checkpoint_minutes,
            ..TrainConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// `docs/cli.md` is what clap-markdown writes from these definitions: a flag added, renamed or
    /// described anew fails here until the page is written again
    /// (`SPREADOUT_WRITE_CLI_PAGE=1 cargo test --bin spreadout cli_page`).
    #[test]
    fn the_cli_page_is_written_from_the_cli() {
        let intro = "Every command and flag of `spreadout`, as `--help` gives them. Written by \
                     clap-markdown from the CLI's definitions (`src/cli/`); a test fails when \
                     this page is out of date.\n\n";
        let page = clap_markdown::help_markdown_command_custom(
            &Cli::command(),
            &clap_markdown::MarkdownOptions::new()
                .title("The `spreadout` command line".to_owned())
                .show_footer(false),
        )
        .replacen("\n\n", &format!("\n\n{intro}"), 1);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md");
        if std::env::var_os("SPREADOUT_WRITE_CLI_PAGE").is_some() {
            std::fs::write(&path, &page).unwrap();
        }
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            written == page,
            "{} is out of date with the CLI: write it again with SPREADOUT_WRITE_CLI_PAGE=1 cargo test --bin spreadout cli_page",
            path.display()
        );
    }
}
