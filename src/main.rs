//! `spreadout`: the headless shell over the engine. Every subcommand parses its arguments, calls
//! library functions and prints; no training or evaluation logic lives here.

mod progress;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use spreadout::augment::AugmentOps;
use spreadout::data;
use spreadout::demo::{self, DemoSpec};
use spreadout::device::{self, DeviceChoice};
use spreadout::embed::{self, View};
use spreadout::eval::{self, Embeddings};
use spreadout::export::{self, TensorValues};
use spreadout::loss::NegativeSampling;
use spreadout::train::{self, Schedule, TrainConfig, TrainRequest};

#[derive(Parser)]
#[command(
    name = "spreadout",
    version,
    about = "Train an image embedding on a folder of unlabelled images (instance spread-out, Ye et al. CVPR 2019), then search and evaluate it",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train on a folder of images; writes checkpoints, metrics.jsonl and model.safetensors to --out.
    Train(TrainArgs),
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
    /// Score a model on labelled folders: weighted kNN, Recall@1/2/4/8 and NMI, as JSON.
    Eval {
        /// Run folder or model.safetensors.
        model: PathBuf,
        /// Labelled folder used as the kNN memory.
        #[arg(long)]
        train: PathBuf,
        /// Labelled folder that is scored.
        #[arg(long)]
        test: PathBuf,
        /// kNN neighbours.
        #[arg(long, default_value_t = 200)]
        k: usize,
        /// kNN vote temperature: weights exp(similarity / sigma).
        #[arg(long, default_value_t = 0.1)]
        sigma: f32,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Generate a small synthetic labelled data set and train on it end to end, printing kNN per epoch.
    Demo {
        /// Where to put the data and the run (a temporary folder if omitted).
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
    /// List the GPU adapters `--device` can choose.
    Devices,
    /// Measure training and data throughput; prints a table.
    Bench {
        /// Network widths to time.
        #[arg(long, value_delimiter = ',', default_value = "16,64")]
        widths: Vec<usize>,
        /// Images per batch (each gives two views).
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        /// Timed steps per configuration.
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Untimed warm-up steps (kernel compilation, autotuning).
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Also time software rasterisers such as lavapipe (very slow).
        #[arg(long)]
        include_software: bool,
    },
}

#[derive(Args, Clone, Copy)]
struct DeviceArg {
    /// auto (first real GPU, else CPU), gpu, cpu, or an adapter number from `spreadout devices`.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
}

#[derive(Args)]
struct TrainArgs {
    /// Folder of training images (searched recursively; first-level folder names are used only for evaluation).
    dir: PathBuf,
    /// Run folder for checkpoints, metrics and the exported model.
    #[arg(long)]
    out: PathBuf,
    /// Passes over the data.
    #[arg(long, default_value_t = 200)]
    epochs: usize,
    /// Images per batch; each contributes two augmented views.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Square input size in pixels (≤ 64 uses the CIFAR stem, larger the ImageNet stem).
    #[arg(long, default_value_t = 32)]
    image_size: u32,
    /// ResNet-18 base width (64 as in the paper; 16 trains ~8× faster on a CPU).
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Embedding dimension.
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Softmax temperature.
    #[arg(long, default_value_t = 0.1)]
    tau: f32,
    /// Base learning rate (SGD, momentum 0.9, weight decay 5e-4).
    #[arg(long, default_value_t = 0.03)]
    lr: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = Schedule::Step)]
    schedule: Schedule,
    /// Negatives used by the loss (paper Table 8).
    #[arg(long, value_enum, default_value_t = NegativesArg::All)]
    negatives: NegativesArg,
    /// Seed for initialisation, order and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue the run in --out from its last checkpoint (--epochs may extend it).
    #[arg(long)]
    resume: bool,
    /// Labelled folder used as the kNN memory (default: DIR, when it has label folders).
    #[arg(long)]
    eval_train: Option<PathBuf>,
    /// Labelled folder scored after every epoch (kNN, Recall@K, NMI).
    #[arg(long)]
    eval_test: Option<PathBuf>,
    /// Switch augmentations off: crop, color, gray, flip, or all ("no DA").
    #[arg(long = "no-aug", value_name = "OP", num_args = 1..)]
    no_aug: Vec<String>,
    /// kNN neighbours for the per-epoch evaluation.
    #[arg(long, default_value_t = 200)]
    knn_k: usize,
    #[command(flatten)]
    device: DeviceArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum NegativesArg {
    /// All other rows of the batch.
    All,
    /// The most similar half.
    Hard,
    /// The least similar half.
    Easy,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Train(args) => train_command(args),
        Command::Embed {
            model,
            dir,
            out,
            device,
        } => embed_command(&model, &dir, &out, device.device),
        Command::Neighbors {
            source,
            query,
            k,
            among,
            device,
        } => neighbors_command(&source, &query, k, among.as_deref(), device.device),
        Command::Eval {
            model,
            train,
            test,
            k,
            sigma,
            device,
        } => eval_command(&model, &train, &test, k, sigma, device.device),
        Command::Demo {
            out,
            epochs,
            width,
            device,
        } => demo_command(out, epochs, width, device.device),
        Command::Devices => devices_command(),
        Command::Bench {
            widths,
            batch_size,
            steps,
            warmup,
            include_software,
        } => bench_command(&widths, batch_size, steps, warmup, include_software),
    }
}

fn train_command(args: TrainArgs) -> Result<()> {
    let mut augment = AugmentOps::default();
    for op in &args.no_aug {
        augment.disable(op).map_err(anyhow::Error::msg)?;
    }
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        image_size: args.image_size,
        width: args.width,
        dim: args.dim,
        tau: args.tau,
        lr: args.lr,
        schedule: args.schedule,
        seed: args.seed,
        augment,
        negatives: match args.negatives {
            NegativesArg::All => NegativeSampling::All,
            NegativesArg::Hard => NegativeSampling::HardestHalf,
            NegativesArg::Easy => NegativeSampling::EasiestHalf,
        },
        knn_k: args.knn_k,
        ..TrainConfig::default()
    };
    let request = TrainRequest {
        config,
        train_dir: args.dir,
        eval_train_dir: args.eval_train,
        eval_test_dir: args.eval_test,
        out: args.out,
        resume: args.resume,
        device: args.device.device,
    };
    progress::run_with_progress(request)?;
    Ok(())
}

fn embed_command(model: &Path, dir: &Path, out: &Path, choice: DeviceChoice) -> Result<()> {
    let selected = device::select(choice)?;
    let loaded = export::load_model(model, &selected.device)?;
    let folder = embed::embed_folder(&loaded, dir, &|_, _| true)?;
    progress::report_skipped(&folder.set.skipped);
    folder.write(out, model)?;
    let (set, dim) = (&folder.set, folder.dim);
    println!(
        "embedded {} images ({} skipped) into {} [{} × {dim}]",
        set.len(),
        set.skipped.len(),
        out.display(),
        set.len()
    );
    Ok(())
}

/// An embedded collection: its rows and the files they came from, plus the model that made it.
struct Collection {
    embeddings: Vec<f32>,
    dim: usize,
    paths: Vec<PathBuf>,
    model: ModelSource,
}

/// The collection's model: already in memory, or only named by an embeddings file and loaded
/// when a query from outside the collection needs it.
enum ModelSource {
    Loaded(Box<export::LoadedModel>),
    Stored(PathBuf),
}

impl ModelSource {
    fn load(self, device: &burn::tensor::Device) -> Result<export::LoadedModel> {
        Ok(match self {
            ModelSource::Loaded(model) => *model,
            ModelSource::Stored(path) => export::load_model(&path, device)?,
        })
    }
}

fn neighbors_command(
    source: &Path,
    query: &Path,
    k: usize,
    among: Option<&Path>,
    choice: DeviceChoice,
) -> Result<()> {
    let selected = device::select(choice)?;
    let collection = if is_embeddings_file(source) {
        let (tensors, metadata) = export::read_tensors(source)?;
        let stored = tensors
            .get("embeddings")
            .with_context(|| format!("{} has no 'embeddings' tensor", source.display()))?;
        let TensorValues::F32(embeddings) = stored.values.clone() else {
            bail!("{}: embeddings are not f32", source.display());
        };
        let paths: Vec<PathBuf> = serde_json::from_str(
            metadata
                .get("paths")
                .with_context(|| format!("{} has no file list", source.display()))?,
        )?;
        let model_path = PathBuf::from(
            metadata
                .get("model")
                .with_context(|| format!("{} does not name its model", source.display()))?,
        );
        Collection {
            embeddings,
            dim: stored.shape[1],
            paths,
            model: ModelSource::Stored(model_path),
        }
    } else {
        let among =
            among.context("with a model as SOURCE, pass --among DIR: the folder to search")?;
        let model = export::load_model(source, &selected.device)?;
        let folder = embed::embed_folder(&model, among, &|_, _| true)?;
        progress::report_skipped(&folder.set.skipped);
        Collection {
            embeddings: folder.embeddings,
            dim: folder.dim,
            paths: folder.set.entries.into_iter().map(|e| e.path).collect(),
            model: ModelSource::Loaded(Box::new(model)),
        }
    };
    // A query that is part of the collection is looked up, not re-embedded, and excluded.
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let query_canonical = canonical(query);
    let member = collection
        .paths
        .iter()
        .position(|p| canonical(p) == query_canonical);
    let query_vector = match member {
        Some(row) => {
            collection.embeddings[row * collection.dim..(row + 1) * collection.dim].to_vec()
        }
        None => {
            let model = collection.model.load(&selected.device)?;
            let size = model.config.model.image_size;
            let image = data::load_image(query, size)?;
            embed::embed_images(
                &model.net,
                &[image],
                size,
                &model.config.normalization,
                View::Center,
                1,
            )
        }
    };
    let base = Embeddings::new(&collection.embeddings, collection.dim)?;
    let wanted = (k + usize::from(member.is_some())).min(base.len());
    let hits = eval::top_k(
        Embeddings::new(&query_vector, collection.dim)?,
        base,
        wanted,
        false,
    )?;
    for (row, score) in hits[0]
        .iter()
        .filter(|(row, _)| Some(*row) != member)
        .take(k)
    {
        println!("{score:.4}\t{}", collection.paths[*row].display());
    }
    Ok(())
}

fn is_embeddings_file(path: &Path) -> bool {
    path.is_file()
        && export::read_header(path)
            .map(|(names, _)| names.iter().any(|name| name == "embeddings"))
            .unwrap_or(false)
}

fn eval_command(
    model: &Path,
    train_dir: &Path,
    test_dir: &Path,
    k: usize,
    sigma: f32,
    choice: DeviceChoice,
) -> Result<()> {
    let selected = device::select(choice)?;
    let loaded = export::load_model(model, &selected.device)?;
    let dim = loaded.config.model.dim;
    let embed_labelled = |dir: &Path| -> Result<(Vec<f32>, Vec<usize>, Vec<String>)> {
        let folder = embed::embed_folder(&loaded, dir, &|_, _| true)?;
        progress::report_skipped(&folder.set.skipped);
        let labels = folder.set.labels().with_context(|| {
            format!(
                "{} has no label folders (images in at least two first-level subfolders)",
                dir.display()
            )
        })?;
        Ok((folder.embeddings, labels, folder.set.label_names))
    };
    let (train_embeddings, train_labels, names) = embed_labelled(train_dir)?;
    let (test_embeddings, test_labels, test_names) = embed_labelled(test_dir)?;
    // Express test labels in the training folder's numbering.
    let test_labels = test_labels
        .iter()
        .map(|&label| {
            names
                .iter()
                .position(|n| *n == test_names[label])
                .with_context(|| {
                    format!(
                        "label folder '{}' of {} is not in {}",
                        test_names[label],
                        test_dir.display(),
                        train_dir.display()
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let memory = Embeddings::new(&train_embeddings, dim)?;
    let test = Embeddings::new(&test_embeddings, dim)?;
    let knn = eval::knn_accuracy(
        memory,
        &train_labels,
        test,
        &test_labels,
        k.min(memory.len()),
        sigma,
    )?;
    let recall = eval::recall_at_k(test, &test_labels, &[1, 2, 4, 8])?;
    let nmi = eval::clustering_nmi(test, &test_labels, 0)?;
    let report = serde_json::json!({
        "model": model,
        "knn_accuracy": knn,
        "knn_k": k.min(memory.len()),
        "knn_sigma": sigma,
        "recall_at": recall.iter().map(|(k, r)| (k.to_string(), *r)).collect::<std::collections::BTreeMap<_, _>>(),
        "nmi": nmi,
        "train_images": memory.len(),
        "test_images": test.len(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn demo_command(
    out: Option<PathBuf>,
    epochs: usize,
    width: usize,
    choice: DeviceChoice,
) -> Result<()> {
    let temporary;
    let root = match out {
        Some(dir) => dir,
        None => {
            temporary = tempfile::tempdir()?;
            temporary.path().to_owned()
        }
    };
    let spec = DemoSpec::default();
    let data_dir = root.join("data");
    // A second `demo --out DIR` reuses the data it generated and resumes its run.
    let folders = if data_dir.join("train").is_dir() {
        demo::DemoFolders {
            train: data_dir.join("train"),
            test: data_dir.join("test"),
        }
    } else {
        demo::generate(&data_dir, &spec)?
    };
    println!(
        "demo data: {} classes × {} training + {} test images of {} px in {}",
        spec.classes,
        spec.train_per_class,
        spec.test_per_class,
        spec.size,
        data_dir.display()
    );
    let run_dir = root.join("run");
    let resume = train::checkpoint::path(&run_dir).exists();
    let request = TrainRequest {
        config: TrainConfig {
            epochs,
            batch_size: 32,
            image_size: spec.size,
            width,
            knn_k: 50,
            ..TrainConfig::default()
        },
        train_dir: folders.train,
        eval_train_dir: None,
        eval_test_dir: Some(folders.test),
        out: run_dir.clone(),
        resume,
        device: choice,
    };
    progress::run_with_progress(request)?;
    let metrics = train::read_metrics(&run_dir)?;
    if let (Some(first), Some(last)) = (metrics.first(), metrics.last()) {
        println!(
            "kNN accuracy {:.1}% after epoch {} → {:.1}% after epoch {} (chance {:.1}%); model in {}",
            first.knn_accuracy.unwrap_or(f64::NAN),
            first.epoch,
            last.knn_accuracy.unwrap_or(f64::NAN),
            last.epoch,
            100.0 / spec.classes as f64,
            run_dir.join(export::MODEL_FILE).display()
        );
    }
    Ok(())
}

fn devices_command() -> Result<()> {
    let adapters = device::list_adapters();
    if adapters.is_empty() {
        println!(
            "no wgpu adapters found (no Vulkan/Metal/DX12 driver); --device auto trains on the CPU"
        );
    }
    for adapter in &adapters {
        println!(
            "{}\t{}\t{:?}\t{}\t{}",
            adapter.index, adapter.name, adapter.kind, adapter.api, adapter.driver
        );
    }
    let auto = device::select(DeviceChoice::Auto)?;
    println!("auto → {}", auto.name);
    Ok(())
}

fn bench_command(
    widths: &[usize],
    batch_size: usize,
    steps: usize,
    warmup: usize,
    include_software: bool,
) -> Result<()> {
    let mut devices = vec![device::cpu()];
    #[cfg(feature = "ndarray")]
    devices.push(device::ndarray());
    for adapter in device::list_adapters() {
        if adapter.kind.is_gpu() || include_software {
            devices.push(device::select(DeviceChoice::Adapter(adapter.index))?);
        }
    }
    println!("| task | device | images/s | seconds |");
    println!("|---|---|---:|---:|");
    let print = |row: &spreadout::bench::BenchRow| {
        println!(
            "| {} | {} | {:.1} | {:.3} |",
            row.task, row.device, row.images_per_sec, row.seconds
        );
    };
    for selected in &devices {
        for &width in widths {
            print(&spreadout::bench::training(
                selected, width, batch_size, 32, warmup, steps,
            ));
        }
    }
    for row in spreadout::bench::data_pipeline(1200, 32)? {
        print(&row);
    }
    Ok(())
}
