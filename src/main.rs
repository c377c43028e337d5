//! `spreadout`: the headless shell over the engine. Every subcommand parses its arguments, calls
//! library functions and prints; no training or evaluation logic lives here.

mod cli;
mod collection_commands;
mod progress;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;
use cli::{BenchArgs, Cli, Command, CompareArgs, NegativesArg, TrainArgs, TrainSettings};
use spreadout::augment::AugmentOps;
use spreadout::bench;
use spreadout::compare;
use spreadout::data;
use spreadout::demo::{self, DemoSpec};
use spreadout::device::{self, DeviceChoice};
use spreadout::embed::{self, View};
use spreadout::eval::{self, Embeddings};
use spreadout::export::{self, TensorValues};
use spreadout::method::{Method, NegativeSampling, Positive};
use spreadout::score;
use spreadout::train::{self, TrainConfig, TrainRequest};

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    progress::handle_interrupts();
    // Before any device opens: a second launch then finds its tuned and compiled kernels.
    device::configure_kernel_cache(&device::default_cache_dir());
    let cache_dir = cli
        .cache_dir
        .clone()
        .or_else(|| std::env::var_os("SPREADOUT_CACHE_DIR").map(PathBuf::from));
    let cache = cache_dir
        .clone()
        .map_or_else(data::PixelCache::default_location, data::PixelCache::at);
    let cache = &cache;
    match cli.command {
        Command::Train(args) => train_command(args, cache_dir),
        Command::Compare(args) => compare_command(args, cache_dir),
        Command::Cache {
            clear,
            fill,
            image_size,
        } => cache_command(cache, clear, fill.as_deref(), image_size),
        Command::Embed {
            model,
            dir,
            out,
            device,
        } => embed_command(&model, &dir, &out, cache, device.device),
        Command::Neighbors {
            source,
            query,
            k,
            among,
            device,
        } => neighbors_command(&source, &query, k, among.as_deref(), cache, device.device),
        Command::Eval {
            model,
            train,
            test,
            k,
            sigma,
            recall_k,
            linear,
            device,
        } => eval_command(
            &model,
            &train,
            &test,
            &score::ScoreSettings {
                knn_k: k,
                knn_sigma: sigma,
                recall_k,
                linear: linear.then(eval::LinearSettings::default),
                seed: 0,
            },
            cache,
            device.device,
        ),
        Command::Duplicates {
            model,
            dir,
            threshold,
            json,
            csv,
            truth,
            device,
        } => collection_commands::duplicates(
            &collection_commands::Opened::new(&model, &dir, cache, device.device)?,
            threshold,
            json,
            csv.as_deref(),
            truth.as_deref(),
        ),
        Command::Clusters {
            model,
            dir,
            k,
            csv,
            show,
            device,
        } => collection_commands::clusters(
            &collection_commands::Opened::new(&model, &dir, cache, device.device)?,
            k,
            csv.as_deref(),
            show,
        ),
        Command::PlantCopies {
            source,
            out,
            fraction,
            seed,
        } => collection_commands::plant_copies(&source, &out, fraction, seed),
        Command::Demo {
            out,
            epochs,
            width,
            device,
        } => demo_command(out, epochs, width, cache, device.device),
        Command::Devices => devices_command(),
        Command::Bench(args) => bench_command(&args),
    }
}

/// The configuration of `settings` with `augment_off` switched off and `negatives` chosen; the
/// temperature is the method's published one unless `--tau` was given.
fn train_config(
    settings: &TrainSettings,
    method: Method,
    negatives: NegativesArg,
    positive: Positive,
    augment_off: &[String],
) -> Result<TrainConfig> {
    let mut augment = AugmentOps::default();
    for op in augment_off {
        augment.disable(op).map_err(anyhow::Error::msg)?;
    }
    Ok(TrainConfig {
        epochs: settings.epochs,
        batch_size: settings.batch_size,
        image_size: settings.image_size,
        width: settings.width,
        dim: settings.dim,
        tau: settings.tau.unwrap_or_else(|| method.default_tau()),
        lr: settings.lr,
        schedule: settings.schedule,
        seed: settings.seed,
        augment,
        method,
        negatives: match negatives {
            NegativesArg::All => NegativeSampling::All,
            NegativesArg::Hard => NegativeSampling::HardestHalf,
            NegativesArg::Easy => NegativeSampling::EasiestHalf,
        },
        positive,
        knn_k: settings.knn_k,
        recall_k: settings.recall_k.clone(),
        precision: settings.precision,
        checkpoint_minutes: settings.checkpoint_minutes,
        ..TrainConfig::default()
    })
}

fn train_command(args: TrainArgs, cache_dir: Option<PathBuf>) -> Result<()> {
    // A resume continues the run as its folder recorded it; the flags given here take precedence.
    let request = if args.resume {
        TrainRequest::resume(
            &args.out,
            train::ResumeOverrides {
                epochs: Some(args.settings.epochs),
                train_dir: Some(args.dir),
                eval_train_dir: args.eval.eval_train,
                eval_test_dir: args.eval.eval_test,
                device: args.device.device,
                cache_dir,
                accept_changed_folder: args.accept_changed_folder,
            },
        )?
    } else {
        TrainRequest {
            config: train_config(
                &args.settings,
                args.method,
                args.negatives,
                args.positive,
                &args.no_aug,
            )?,
            train_dir: args.dir,
            eval_train_dir: args.eval.eval_train,
            eval_test_dir: args.eval.eval_test,
            out: args.out,
            resume: false,
            device: args.device.device,
            cache_dir,
            accept_changed_folder: false,
            stop_after_epoch: None,
            init_weights: args.init,
        }
    };
    progress::run_with_progress(request)?;
    Ok(())
}

fn compare_command(args: CompareArgs, cache_dir: Option<PathBuf>) -> Result<()> {
    let variants = compare::Variant::parse_list(&args.variants)?;
    let base = TrainRequest {
        config: train_config(
            &args.settings,
            Method::SpreadOut,
            NegativesArg::All,
            Positive::Augmented,
            &[],
        )?,
        train_dir: args.dir,
        eval_train_dir: args.eval.eval_train,
        eval_test_dir: args.eval.eval_test,
        out: args.out.clone(),
        resume: false,
        device: args.device.device,
        cache_dir,
        accept_changed_folder: false,
        stop_after_epoch: None,
        init_weights: None,
    };
    let epochs = args.settings.epochs;
    let plan = if args.report {
        Vec::new()
    } else {
        compare::plan(&args.out, &variants, epochs)
    };
    for (index, &(variant, epoch)) in plan.iter().enumerate() {
        eprintln!(
            "── {}, epoch {epoch} of {epochs} (run {} of {}) ──",
            variant.name(),
            index + 1,
            plan.len()
        );
        let request = variant.request(&base, &args.out, args.settings.tau, epoch);
        let summary = progress::run_with_progress(request)?;
        if summary.epochs_completed < epoch {
            bail!("stopped; run the same command again to continue where it was");
        }
    }
    let table = compare::collect(&args.out, &variants)?;
    // The settings the runs were trained with (the first variant's record), not this invocation's.
    let config = train::runs::read_record(&compare::run_dir(&args.out, variants[0]))?.config;
    let mut report = format!(
        "kNN top-1 (%) after each epoch of {} ({} epochs planned, width {}, batch {}, {} px, seed {})\n\n{}",
        base.train_dir.display(),
        config.epochs,
        config.width,
        config.batch_size,
        config.image_size,
        config.seed,
        table.to_markdown()
    );
    let baselines = ["npsoftmax", "nce", "exemplar"];
    if let Some(leads) = table.leads_at_every_epoch("spreadout", &baselines) {
        report.push_str(&format!(
            "\nspreadout above npsoftmax, nce and exemplar at every epoch: {}\n",
            if leads { "yes" } else { "no" }
        ));
    }
    print!("{report}");
    let file = args.out.join("compare.md");
    spreadout::atomic_file::write(&file, report.as_bytes())
        .with_context(|| format!("writing {}", file.display()))?;
    eprintln!("table written to {}", file.display());
    Ok(())
}

fn cache_command(
    cache: &data::PixelCache,
    clear: bool,
    fill: Option<&Path>,
    image_size: u32,
) -> Result<()> {
    if let Some(dir) = fill {
        let start = std::time::Instant::now();
        let set = data::load_folder(dir, cache, image_size, &progress::loading_bar())?;
        progress::report_skipped(&set.skipped);
        println!(
            "{} images of {} cached for {image_size} px ({} decoded, {} skipped) in {:.1} s",
            set.len(),
            dir.display(),
            set.decoded,
            set.skipped.len(),
            start.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    if clear {
        let freed = cache.clear()?;
        println!(
            "cleared {} ({:.1} MiB freed)",
            cache.root().display(),
            freed as f64 / (1 << 20) as f64
        );
        return Ok(());
    }
    let folders = cache.usage();
    let total = cache.disk_bytes();
    println!(
        "image cache in {}: {:.1} MiB",
        cache.root().display(),
        total as f64 / (1 << 20) as f64
    );
    for folder in folders {
        println!(
            "{:>10.1} MiB  {:>7} files at {:>4} px  {}",
            folder.bytes as f64 / (1 << 20) as f64,
            folder.files,
            folder.side,
            folder.folder.display()
        );
    }
    Ok(())
}

fn embed_command(
    model: &Path,
    dir: &Path,
    out: &Path,
    cache: &data::PixelCache,
    choice: DeviceChoice,
) -> Result<()> {
    let selected = device::select(choice)?;
    let loaded = export::load_model(model, &selected.device)?;
    let folder = embed::embed_folder(&loaded, dir, cache, &progress::loading_bar())?;
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
    cache: &data::PixelCache,
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
        let folder = embed::embed_folder(&model, among, cache, &progress::loading_bar())?;
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
                std::slice::from_ref(&image),
                size,
                &model.config.normalization,
                View::Center,
                1,
            )?
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
    settings: &score::ScoreSettings,
    cache: &data::PixelCache,
    choice: DeviceChoice,
) -> Result<()> {
    let selected = device::select(choice)?;
    let loaded = export::load_model(model, &selected.device)?;
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
    let report = serde_json::json!({
        "model": model,
        "knn_accuracy": scores.knn_accuracy,
        "knn_k": scores.knn_k,
        "knn_sigma": scores.knn_sigma,
        "linear_accuracy": scores.linear_accuracy,
        "classified_images": scores.classified_images,
        "recall_at": scores.recall_at.iter().map(|(k, r)| (k.to_string(), *r)).collect::<std::collections::BTreeMap<_, _>>(),
        "nmi": scores.nmi,
        "retrieval_scored_on": scores.retrieval_scored_on,
        "test_classes": scores.test_classes,
        "test_classes_in_memory": scores.test_classes_in_memory,
        "train_images": scores.train_images,
        "test_images": scores.test_images,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn demo_command(
    out: Option<PathBuf>,
    epochs: usize,
    width: usize,
    cache: &data::PixelCache,
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
        cache_dir: Some(cache.root().to_owned()),
        accept_changed_folder: false,
        stop_after_epoch: None,
        init_weights: None,
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
    let adapters = device::describe_compute(device::list_adapters());
    if adapters.is_empty() {
        println!(
            "no wgpu adapters found (no Vulkan/Metal/DX12 driver); --device auto trains on the CPU"
        );
    }
    for adapter in &adapters {
        let compute = adapter
            .compute
            .as_ref()
            .map_or_else(|| "could not be opened".to_owned(), |c| c.summary());
        println!(
            "{}\t{}\t{:?}\t{}\t{}\t{compute}",
            adapter.index, adapter.name, adapter.kind, adapter.api, adapter.driver
        );
    }
    let auto = device::select_from(DeviceChoice::Auto, &adapters)?;
    println!("auto → {}", auto.name);
    println!("kernel cache: {}", device::default_cache_dir().display());
    Ok(())
}

fn bench_command(args: &BenchArgs) -> Result<()> {
    let print = |row: &bench::BenchRow| {
        if args.json {
            println!("{}", serde_json::to_string(row).expect("rows serialise"));
        } else {
            let wait = row
                .data_wait_fraction
                .map_or_else(String::new, |w| format!("{:.1} %", 100.0 * w));
            println!(
                "| {} | {} | {} | {:.1} | {:.4} | {wait} |",
                row.detail, row.device, row.compiler, row.images_per_sec, row.seconds
            );
        }
    };
    if !args.json {
        println!("| task | device | compiler | images/s | seconds | data wait |");
        println!("|---|---|---|---:|---:|---:|");
    }
    if !args.no_train {
        for selected in bench::devices(args.device, args.include_software)? {
            for &precision in &args.precision {
                for &width in &args.widths {
                    let case = bench::TrainingCase {
                        width,
                        batch_size: args.batch_size,
                        image_size: args.image_size,
                        precision,
                    };
                    match bench::training(&selected, case, args.warmup, args.steps) {
                        Ok(row) => print(&row),
                        // One unsupported precision must not hide the other rows.
                        Err(error) => eprintln!("{}: {error}", selected.name),
                    }
                }
            }
        }
    }
    if args.neighbours > 0 {
        print(&bench::neighbour_query(args.neighbours, 128, 10)?);
    }
    if args.duplicates > 0 {
        // On the device a collection would use: the chosen one, else the first GPU or the CPU.
        let selected = device::select(args.device.unwrap_or_default())?;
        print(&bench::duplicate_search(args.duplicates, 128, &selected)?);
    }
    if args.map > 0 {
        print(&bench::umap_map(args.map, 128)?);
    }
    if !args.no_data {
        for row in bench::data_pipeline(args.photos.as_deref(), 2000, &args.data_sizes)? {
            print(&row);
        }
    }
    Ok(())
}
