//! The command line's arguments (clap): what each subcommand accepts, with its help text, and
//! how the training flags become the library's configuration.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use spreadout::augment::AugmentOps;
use spreadout::device::DeviceChoice;
use spreadout::method::{Method, NegativeSampling, Positive};
use spreadout::model::Precision;
use spreadout::optim::Schedule;
use spreadout::train::{AugmentOn, TrainConfig};

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
    Train(TrainArgs),
    /// Train several methods or ablations on one folder and print kNN per epoch for each (the paper's Fig. 3, Tables 1, 7 and 8).
    Compare(CompareArgs),
    /// Show what the preprocessed image cache holds, fill it for a folder ahead of time, or clear it.
    Cache {
        /// Delete every folder's cache (rebuilt on the next use).
        #[arg(long, conflicts_with = "fill")]
        clear: bool,
        /// Decode this folder into the cache now (only new or changed files are decoded).
        #[arg(long, value_name = "DIR")]
        fill: Option<PathBuf>,
        /// Training size the folder is cached for (with --fill).
        #[arg(long, default_value_t = 32, requires = "fill")]
        image_size: u32,
    },
    /// Embed every image of a folder with a trained model; writes embeddings + file list (safetensors).
    Embed {
        /// Run folder or model.safetensors (with config.json beside it).
        model: PathBuf,
        /// Folder of images to embed.
        dir: PathBuf,
        /// Output file (.safetensors): tensor `embeddings` [n, dim], metadata `paths` (JSON list).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Nearest neighbours of an image, with cosine scores.
    Neighbors {
        /// An embeddings file from `spreadout embed`, or a model (run folder / model.safetensors) with --among.
        source: PathBuf,
        /// The query image: a file of the embedded set, or any image (it is embedded with the model).
        query: PathBuf,
        /// How many neighbours.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// With a model as SOURCE: the folder to search.
        #[arg(long)]
        among: Option<PathBuf>,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Find near-duplicate images: groups in which every two are linked by their perceptual
    /// hashes (no model needed) or, given a model, by their embeddings' cosine, each stage at the
    /// threshold the folder's own distributions suggest; largest first. Never touches the images.
    Duplicates {
        /// `[MODEL] DIR`: a run folder or model.safetensors (optional: without one, the hash
        /// stage alone), then the folder of images to search.
        #[arg(num_args = 1..=2, required = true, value_names = ["MODEL", "DIR"])]
        paths: Vec<PathBuf>,
        /// Cosine similarity above which two embeddings are near-duplicates (needs a model).
        #[arg(long)]
        threshold: Option<f32>,
        /// Most differing bits (of 64) two perceptual hashes may have to be near-duplicates.
        #[arg(long)]
        hash_bits: Option<u32>,
        /// Score a pair by the cosine of the two whole images alone, not the best over their
        /// zoomed and mirrored views too (finds fewer crops; embeds each image once).
        #[arg(long)]
        whole_images: bool,
        /// Print {"threshold": t, "hash_bits": b, "groups": [[path, …], …], "links": …} instead
        /// of a listing.
        #[arg(long)]
        json: bool,
        /// Also write the groups as CSV (group,path,similarity,stage,hash_bits).
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// A planted-copies.csv (from `spreadout plant-copies`): also print the precision and
        /// recall of the groups on its planted pairs (to stderr with --json).
        #[arg(long, value_name = "FILE")]
        truth: Option<PathBuf>,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Cluster a folder with k-means on the embedding: each cluster's size and most typical images.
    Clusters {
        /// Run folder or model.safetensors.
        model: PathBuf,
        /// Folder of images to cluster.
        dir: PathBuf,
        /// Number of clusters (default: one per label folder, else √(n/2) within 2–50).
        #[arg(long)]
        k: Option<usize>,
        /// Also write every image's cluster as CSV (path,cluster,similarity_to_center).
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Typical images listed per cluster.
        #[arg(long, default_value_t = 5)]
        show: usize,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Copy a folder and plant an edited copy beside a fraction of its images (low-quality JPEG,
    /// downscaled, cropped, brightened, noised), listed in planted-copies.csv: a benchmark for `duplicates`.
    PlantCopies {
        /// Folder of images to copy.
        source: PathBuf,
        /// New (empty) folder for the copy.
        out: PathBuf,
        /// Fraction of the images that get an edited copy.
        #[arg(long, default_value_t = 0.2)]
        fraction: f64,
        /// Seed of the sample and the noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Score a model on labelled folders, as JSON: weighted kNN (and --linear) where the test classes are in --train; Recall@K and NMI within --test (seen or unseen categories).
    Eval {
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
    },
    /// Generate a small synthetic labelled data set and train on it end to end, printing kNN per epoch.
    Demo {
        /// Where to put the data and the run (default: `demo` in the per-user data folder,
        /// ~/.local/share/spreadout/demo on Linux), kept afterwards.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Epochs.
        #[arg(long, default_value_t = 12)]
        epochs: usize,
        /// Network width (8 keeps the demo to a few minutes on a CPU).
        #[arg(long, default_value_t = 8)]
        width: usize,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// List the GPU adapters `--device` can choose, or (with --remote) the device a server serves.
    Devices {
        /// A machine running `spreadout serve`: describe the device it serves instead.
        #[arg(
            long,
            value_name = "ws://HOST:PORT | wss://HOST:PORT | iroh://ID@HOST:PORT"
        )]
        remote: Option<String>,
        /// The server's token (with --remote).
        #[arg(long, value_name = "FILE", requires = "remote")]
        token_file: Option<PathBuf>,
    },
    /// Serve this machine's GPU to Spreadout on other machines (`--device wss://HOST:PORT` there).
    /// Beyond loopback it speaks TLS (wss://, the key pinned by the token file) or, with --iroh, QUIC.
    Serve(ServeArgs),
    /// Measure training and data throughput; prints a table (or JSON lines).
    Bench(BenchArgs),
}

#[derive(Args)]
pub struct BenchArgs {
    /// Network widths to time.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    pub widths: Vec<usize>,
    /// Images per batch (each gives two views).
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Square input size of the training rows (≤ 64 px: CIFAR stem, else ImageNet stem).
    #[arg(long, default_value_t = 32)]
    pub image_size: u32,
    /// Convolution precisions to time (f16 needs a GPU with shader-f16).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "f32")]
    pub precision: Vec<Precision>,
    /// Where the training rows build their views: auto (on a GPU adapter or a served device,
    /// there), device, cpu.
    #[arg(long, value_enum, default_value_t = AugmentOn::Auto)]
    pub augment_on: AugmentOn,
    /// Timed steps per configuration.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed warm-up steps (kernel compilation, autotuning).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// auto, gpu, cpu, an adapter number or a server (wss://HOST:PORT, ws://…, iroh://…); without it, the CPU and every GPU.
    #[arg(long)]
    pub device: Option<DeviceChoice>,
    /// The server's token, for a served --device.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Also time software rasterisers such as lavapipe (very slow); only without --device.
    #[arg(long)]
    pub include_software: bool,
    /// Folder of photos (JPEG) for the decode and augment rows; generated PNGs otherwise.
    #[arg(long)]
    pub photos: Option<PathBuf>,
    /// Input sizes of the decode and augment rows.
    #[arg(long, value_delimiter = ',', default_value = "32,224")]
    pub data_sizes: Vec<u32>,
    /// Skip the decode and augment rows.
    #[arg(long)]
    pub no_data: bool,
    /// Embeddings searched by the neighbour-query row, e.g. 100000 (0, the default, skips it:
    /// the training and data rows come alone unless the others are asked for).
    #[arg(long, alias = "neighbours", default_value_t = 0)]
    pub neighbors: usize,
    /// Embeddings searched for near-duplicates by the duplicates row, e.g. 100000 (0 skips it).
    #[arg(long, default_value_t = 0)]
    pub duplicates: usize,
    /// Embeddings laid out by the UMAP map row, e.g. 10000 (0 skips it).
    #[arg(long, default_value_t = 0)]
    pub map: usize,
    /// Skip the training rows.
    #[arg(long)]
    pub no_train: bool,
    /// After each training row, its kernel launches per step by kernel name.
    #[arg(long)]
    pub launches: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    /// The device asked for, with its token file.
    pub fn device(&self) -> Option<DeviceChoice> {
        self.device
            .clone()
            .map(|choice| choice.with_token_file(self.token_file.clone()))
    }
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

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default (clients then come through `ssh -L`); give this
    /// machine's LAN address, or 0.0.0.0 for every interface, to be reached directly: beyond
    /// loopback the server speaks TLS (wss://) unless --plaintext or --iroh says otherwise.
    #[arg(long, default_value_t = std::net::SocketAddr::from(([127, 0, 0, 1], spreadout::remote::DEFAULT_PORT)))]
    pub listen: std::net::SocketAddr,
    /// File holding the token clients must present (and, over TLS, the pin of this server's
    /// key); written with a fresh random token (readable by you alone) when it does not exist
    /// yet. Copy it to the clients. A file others can read is refused.
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
    /// The device to serve: auto, gpu, cpu or an adapter number from `spreadout devices`.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Clients served at once; one more is told the server is busy. Every client with the token
    /// can use the device fully, and memory one client's run freed is handed to the next
    /// allocation without being cleared, whether the next client runs at the same time or after
    /// it: serve people who must not see each other's images from separate servers, restarted
    /// between them. Raise it only for people who may.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub clients: u16,
    /// Serve over TLS (wss://) on loopback too; beyond loopback it is the default.
    #[arg(long, conflicts_with_all = ["plaintext", "iroh"])]
    pub tls: bool,
    /// Serve unencrypted (ws://) beyond loopback: anyone on the path can read the images and the
    /// token, and answer in this server's place. For a network you control end to end.
    #[arg(long, conflicts_with = "iroh")]
    pub plaintext: bool,
    /// The server's TLS key, made on first use (readable by you alone); clients pin it
    /// [default: serve-tls.key in Spreadout's data folder].
    #[arg(long, value_name = "FILE", conflicts_with_all = ["plaintext", "iroh"])]
    pub tls_key: Option<PathBuf>,
    /// Serve over Iroh (QUIC over UDP) instead: encrypted, and clients check this server's key
    /// (its id is in the address); direct connections only, on exactly --listen, with no relays
    /// and no port mapping.
    #[arg(long)]
    pub iroh: bool,
    /// The server's Iroh key, created on first use (readable by you alone) so its id survives
    /// restarts [default: serve-identity.key in Spreadout's data folder].
    #[arg(long, value_name = "FILE", requires = "iroh")]
    pub identity: Option<PathBuf>,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Folder of training images (searched recursively; first-level folder names are used only for evaluation).
    pub dir: PathBuf,
    /// Run folder for checkpoints, metrics and the exported model.
    #[arg(long)]
    pub out: PathBuf,
    /// Training method: the paper's (spreadout) or a baseline it is compared with. npsoftmax / nce:
    /// memory bank of Wu et al. 2018 (tau 0.07, memory momentum 0.5, nce: 4096 noise samples);
    /// exemplar: one classifier output per image (Dosovitskiy et al. 2014); triplet / triplet-hard:
    /// margin 0.5 on the two-view batch, all negatives or the hardest one.
    #[arg(long, value_enum, default_value_t = Method::SpreadOut)]
    pub method: Method,
    /// Negatives used by the spread-out loss (paper Table 8).
    #[arg(long, value_enum, default_value_t = NegativesArg::All)]
    pub negatives: NegativesArg,
    /// Each image's positive: its other view (augmented), or with probability 1/2 per step its
    /// most similar other image in the batch (nearest, §4.2; meant for a pretrained network).
    #[arg(long, value_enum, default_value_t = Positive::Augmented)]
    pub positive: Positive,
    /// Switch augmentations off: crop, color, gray, flip, or all ("no DA").
    #[arg(long = "no-aug", value_name = "OP", num_args = 1..)]
    pub no_aug: Vec<String>,
    /// Start the backbone from pretrained weights: torchvision's ResNet-18 state dict, as the
    /// .pth torchvision downloads (read without Python) or as safetensors (names conv1, bn1,
    /// layerN.M…, downsample; fc is replaced by a new embedding head). Needs --width 64 and --image-size above 64 (the ImageNet stem), §4.2's setting.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint, as its run.json recorded it; only
    /// --epochs (to extend or shorten it), --augment-on, --device-data-mb, --checkpoint-minutes,
    /// --device and the folders can change, and each change is printed.
    #[arg(long)]
    pub resume: bool,
    /// Start a new run in an --out that holds a run: the earlier run's files are first moved into
    /// its trash/ folder, never deleted.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// With --resume: continue even if the training folder changed since the run started.
    #[arg(long, requires = "resume")]
    pub accept_changed_folder: bool,
    #[command(flatten)]
    pub eval: EvalFolders,
    #[command(flatten)]
    pub settings: TrainSettings,
    #[command(flatten)]
    pub device: DeviceArg,
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
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    /// Images per batch; each contributes two augmented views (one for npsoftmax, nce, exemplar).
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Square input size in pixels (≤ 64 uses the CIFAR stem, larger the ImageNet stem).
    #[arg(long, default_value_t = 32)]
    pub image_size: u32,
    /// ResNet-18 base width (64 as in the paper; 16 trains ~8× faster on a CPU).
    #[arg(long, default_value_t = 64)]
    pub width: usize,
    /// Embedding dimension.
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Softmax temperature (default: each method's published one, 0.1 for spreadout, 0.07 for npsoftmax and nce).
    #[arg(long)]
    pub tau: Option<f32>,
    /// Base learning rate (SGD, momentum 0.9, weight decay 5e-4).
    #[arg(long, default_value_t = 0.03)]
    pub lr: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = Schedule::Step)]
    pub schedule: Schedule,
    /// Seed for initialisation, order and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// kNN neighbours for the per-epoch evaluation.
    #[arg(long, default_value_t = 200)]
    pub knn_k: usize,
    /// The K of Recall@K, e.g. 1,10,100 for Stanford Online Products.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub recall_k: Vec<usize>,
    /// Convolution precision: f16 uses a GPU's 16-bit (tensor-core) paths, weights and loss stay f32.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Where the training views are built: auto (on a GPU adapter, the GPU; on a served device, the
    /// server, from the images kept there; on the CPU backend, the CPU), device, or cpu. The views
    /// are the same either way.
    #[arg(long, value_enum, default_value_t = AugmentOn::Auto)]
    pub augment_on: AugmentOn,
    /// With views built on the device (a GPU here or a served one), the MiB of training images
    /// kept there for the whole run (above it a GPU here gets each batch's images with it, a
    /// served device each batch's 8-bit views); 0: never.
    #[arg(long, default_value_t = 1024)]
    pub device_data_mb: u32,
    /// Minutes between checkpoints inside an epoch (one is also written at each epoch's end and on Ctrl-C).
    #[arg(long, default_value_t = 10.0)]
    pub checkpoint_minutes: f64,
}

#[derive(Args)]
pub struct CompareArgs {
    /// Folder of training images.
    pub dir: PathBuf,
    /// Folder holding one run folder per variant (existing runs are resumed or reused) and compare.md.
    #[arg(long)]
    pub out: PathBuf,
    /// Variants to train: methods (spreadout, npsoftmax, nce, exemplar, triplet, triplet-hard),
    /// ablations of spreadout (no-crop, no-color, no-gray, no-flip, no-aug, hard, easy), or the
    /// presets fig3 (spreadout, npsoftmax, nce, exemplar), table1 (every method), table7
    /// (spreadout and each augmentation removed) and table8 (spreadout, no-aug, hard, easy).
    #[arg(long, value_delimiter = ',', default_value = "fig3")]
    pub variants: Vec<String>,
    /// Train nothing: print the table of the runs as they are now (a comparison still going, or stopped).
    #[arg(long)]
    pub report: bool,
    #[command(flatten)]
    pub eval: EvalFolders,
    #[command(flatten)]
    pub settings: TrainSettings,
    #[command(flatten)]
    pub device: DeviceArg,
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

/// The `train` arguments a resume takes; every other setting is the run's own (its `run.json`).
pub const RESUME_ARGS: [&str; 13] = [
    "dir",
    "out",
    "resume",
    "accept_changed_folder",
    "eval_train",
    "eval_test",
    "epochs",
    "augment_on",
    "device_data_mb",
    "checkpoint_minutes",
    "device",
    "token_file",
    "cache_dir",
];

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
                     clap-markdown from the CLI's definitions (`src/cli.rs`); a test fails when \
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
