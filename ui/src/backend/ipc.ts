// Generated from the Rust types by src-tauri/src/ipc_types.rs: do not edit. To update after
// changing a type: SPREADOUT_WRITE_IPC_TYPES=1 cargo test -p spreadout-app ipc_types

/**
 * An error as the UI receives it.
 */
export type CommandError = { 
/**
 * Stable kind: an engine error's `ErrorKind` (`data`, `device`, `files`, `not_found`,
 * `canceled`, `threshold_too_low`, …), or one of the app's own: `busy`, `forbidden`, `app`,
 * `crashed`.
 */
code: string, 
/**
 * What went wrong and what to do, for a person.
 */
message: string, };

/**
 * Progress of a long job, as the UI draws it.
 */
export type Progress = { 
/**
 * Items done.
 */
done: number, 
/**
 * Items in all.
 */
total: number, 
/**
 * Waiting for another fill of the same folder (another window or command) to finish.
 */
waiting: boolean, };

/**
 * What the UI needs to know when it starts.
 */
export type Startup = { 
/**
 * Open the demo data set right away (`--demo`).
 */
open_demo: boolean, 
/**
 * Expose the end-to-end test hooks.
 */
test_hooks: boolean, 
/**
 * Where runs are written.
 */
runs_root: string, 
/**
 * Extensions of the files this build reads as images (with HEIC only where libheif is
 * built in), for the file dialogs.
 */
image_extensions: Array<string>, 
/**
 * The engine's training defaults, limits and per-method values, which the settings form
 * offers and checks (the UI keeps no copy of them).
 */
settings: TrainSettings, };

/**
 * Images in row order with their label folders, as the grids show them.
 */
export type ImageList = { 
/**
 * The files (names that are not UTF-8 escaped, see `spreadout::support::paths`).
 */
files: string[], 
/**
 * Label index of each file, when the layout defines labels.
 */
labels: Array<number | null>, 
/**
 * Label folder names (empty without labels).
 */
label_names: Array<string>, };

/**
 * What the Data screen shows about a folder before decoding anything.
 */
export type FolderSummary = { 
/**
 * The folder.
 */
root: string, 
/**
 * Files per extension.
 */
formats: { [key in string]: number }, 
/**
 * Camera raw files among the images, read through the JPEG preview each embeds.
 */
raw_files: number, 
/**
 * HEIC, HEIF and AVIF files among the images.
 */
heif_files: number, 
/**
 * The libheif version they are read with; `None` in a build without it (they are skipped).
 */
libheif: string | null, 
/**
 * The files (names that are not UTF-8 escaped, see `spreadout::support::paths`).
 */
files: string[], 
/**
 * Label index of each file, when the layout defines labels.
 */
labels: Array<number | null>, 
/**
 * Label folder names (empty without labels).
 */
label_names: Array<string>, };

/**
 * A file that could not be used, and why (shown to the user and written to the run folder).
 */
export type SkippedFile = { 
/**
 * The file.
 */
path: string, 
/**
 * What went wrong, in words.
 */
reason: string, };

/**
 * Result of decoding every file of a folder the way training will.
 */
export type FolderCheck = { 
/**
 * Files that decode.
 */
usable: number, 
/**
 * Files that do not, with reasons.
 */
skipped: Array<SkippedFile>, 
/**
 * Files an earlier release had skipped, tried again by this check (its decoder may read
 * them); those still unread are among `skipped`.
 */
retried: number, };

/**
 * One folder's cache, for the app's list of what the cache holds.
 */
export type CachedFolder = { 
/**
 * The image folder it caches.
 */
folder: string, 
/**
 * Shorter side of its images, in pixels.
 */
side: number, 
/**
 * Files it knows (decoded or failed).
 */
files: number, 
/**
 * Disk space it takes.
 */
bytes: number, };

/**
 * What the preprocessed image cache holds, for the Data screen.
 */
export type CacheSummary = { 
/**
 * The cache folder.
 */
root: string, 
/**
 * Disk space of the whole cache (folder caches, embeddings, thumbnails).
 */
bytes: number, 
/**
 * One row per cached (folder, resolution), largest first.
 */
folders: Array<CachedFolder>, };

/**
 * Which of the four operations are on (paper Table 7 ablation). Default: all on.
 */
export type AugmentOps = { 
/**
 * `RandomResizedCrop`; when off, the deterministic [`center_view`] geometry is used.
 */
crop: boolean, 
/**
 * `ColorJitter(0.4, 0.4, 0.4, 0.4)`.
 */
color_jitter: boolean, 
/**
 * `RandomGrayscale(p = 0.2)`.
 */
grayscale: boolean, 
/**
 * `RandomHorizontalFlip(p = 0.5)`.
 */
flip: boolean, };

/**
 * Per-channel mean/std used by Normalize.
 */
export type Normalization = { 
/**
 * Per-channel (R, G, B) mean, in `[0, 1]` units.
 */
mean: [number, number, number], 
/**
 * Per-channel (R, G, B) standard deviation, in `[0, 1]` units.
 */
std: [number, number, number], };

/**
 * One image and two training views of it, as PNG data URLs.
 */
export type ViewPair = { 
/**
 * The file.
 */
path: string, 
/**
 * The image as training loads it: from the cache, shorter side 1.5 × the image size (room for
 * the crops).
 */
original: string, 
/**
 * Two random views, exactly as a training batch makes them.
 */
views: [string, string], };

/**
 * Training views of a few images, and where they were built.
 */
export type ViewsPreview = { 
/**
 * Each image and two views of it.
 */
pairs: Array<ViewPair>, 
/**
 * Where a run with these settings builds its views, and these were built: the GPU
 * adapter's name, or "CPU".
 */
built_on: string, };

/**
 * How Burn computes on an adapter once it opens it.
 */
export type Compute = { 
/**
 * The shader language kernels are compiled to: `SPIR-V` (Vulkan's native compiler, with
 * cooperative-matrix kernels), `MSL` (Metal's, with simdgroup matrices) or `WGSL` (the
 * portable fallback, no matrix units).
 */
compiler: string, 
/**
 * Operand types of the matrix (tensor-core) instructions the kernels may use, e.g.
 * `f16×f16→f32`; empty when matrix kernels are unavailable.
 */
matrix_units: Array<string>, 
/**
 * Whether 16-bit float arithmetic is available, which `--precision f16` needs.
 */
f16: boolean, };

/**
 * What kind of hardware an adapter is, as its driver reports it.
 */
export type AdapterKind = "discrete" | "integrated" | "virtual" | "software" | "other";

/**
 * One wgpu adapter, numbered as `--device N` accepts it.
 */
export type Adapter = { 
/**
 * Position in [`list_adapters`], the number `--device` takes.
 */
index: number, 
/**
 * The driver's name for the device, e.g. "NVIDIA GeForce RTX 4090".
 */
name: string, 
/**
 * Hardware kind.
 */
kind: AdapterKind, 
/**
 * Graphics API, e.g. "Vulkan".
 */
api: string, 
/**
 * Driver name and version, as reported.
 */
driver: string, 
/**
 * What Burn compiles for it and which fast paths it has; filled by [`describe_compute`]
 * (which opens the device), `None` until then.
 */
compute: Compute | null, };

/**
 * The adapters and what "auto" would pick, so the picker can say honestly when training would
 * fall back to the CPU.
 */
export type Devices = { 
/**
 * wgpu adapters, in driver order.
 */
adapters: Array<Adapter>, 
/**
 * Name of the device "auto" selects.
 */
auto_name: string, 
/**
 * Why auto is not a GPU, when it is not.
 */
auto_notice: string | null, 
/**
 * The graphics APIs a GPU is reached through on this platform, e.g. "Vulkan or DX12".
 */
graphics_apis: string, };

/**
 * A device served by `spreadout serve`, as `--device ADDRESS --token-file FILE` names it.
 */
export type RemoteTarget = { 
/**
 * The server, `ws://HOST:PORT`, `wss://HOST:PORT` or `iroh://ID@HOST:PORT`.
 */
address: string, 
/**
 * The file holding the server's token (and, for `wss://`, its key's pin); a client without
 * one is refused before connecting.
 */
token_file: string | null, };

/**
 * A served device the app connected to: the target to train on, and what it is.
 */
export type RemoteDevice = { 
/**
 * What the device picker keeps (`{"remote": target}`).
 */
target: RemoteTarget, 
/**
 * The device the server serves, in its own words.
 */
served: string, 
/**
 * Whether that device is a GPU: the Train screen's defaults follow it.
 */
gpu: boolean, };

/**
 * What the user asked for with `--device`.
 */
export type DeviceChoice = "auto" | "gpu" | "cpu" | { "adapter": number } | { "remote": RemoteTarget };

/**
 * How the learning rate changes over a run.
 */
export type Schedule = "step" | "cosine";

/**
 * The objective a run trains with.
 */
export type Method = "spreadout" | "npsoftmax" | "nce" | "exemplar" | "triplet" | "triplet-hard";

/**
 * Which negatives enter the loss (paper Table 8).
 */
export type NegativeSampling = "all" | "hardest_half" | "easiest_half";

/**
 * What each image's positive is in the spread-out loss.
 */
export type Positive = "augmented" | "nearest";

/**
 * The settings of the comparison methods, from their papers where the seed paper does not fix
 * them.
 */
export type MethodSettings = { 
/**
 * Weight of a memory row's old value when its image's new feature is written (Wu et al.: 0.5).
 */
memory_momentum: number, 
/**
 * Noise rows per image for NCE (Wu et al.: 4096; capped at N − 1 for small folders).
 */
nce_noise: number, 
/**
 * Margin of the triplet losses on the Euclidean distance of unit vectors (Ye et al.: 0.5).
 */
triplet_margin: number, };

/**
 * The number format the convolutions compute in. Weights, batch norm, the head, the
 * normalisation and the loss always stay `f32`: `f16` is mixed precision made by hand (Burn
 * has no autocast), casting each convolution's input and weight to `f16` and its output back,
 * which is where a GPU's matrix units (NVIDIA's Vulkan cooperative matrices take `f16`) pay off.
 */
export type Precision = "f32" | "f16";

/**
 * Where a run's training views are built.
 */
export type AugmentOn = "auto" | "device" | "cpu";

/**
 * Hyper-parameters of a run. Defaults are the paper's (§4.1).
 */
export type TrainConfig = { 
/**
 * Passes over the training images.
 */
epochs: number, 
/**
 * Images per batch (m); each contributes two views, so the network sees 2m rows.
 */
batch_size: number, 
/**
 * Square training input side in pixels.
 */
image_size: number, 
/**
 * ResNet-18 base width (64 in the paper).
 */
width: number, 
/**
 * Embedding dimension.
 */
dim: number, 
/**
 * Softmax temperature τ.
 */
tau: number, 
/**
 * Base learning rate.
 */
lr: number, 
/**
 * SGD momentum.
 */
momentum: number, 
/**
 * SGD weight decay.
 */
weight_decay: number, 
/**
 * Learning-rate schedule.
 */
schedule: Schedule, 
/**
 * Seed of every random choice (initialisation, order, augmentation).
 */
seed: number, 
/**
 * Augmentations in use.
 */
augment: AugmentOps, 
/**
 * The objective: the paper's, or one of the methods it is compared with.
 */
method: Method, 
/**
 * Settings of the comparison methods (memory momentum, NCE noise, triplet margin).
 */
method_settings: MethodSettings, 
/**
 * Which negatives enter the spread-out loss.
 */
negatives: NegativeSampling, 
/**
 * What each image's positive is in the spread-out loss (§4.2's nearest neighbour or the
 * other view).
 */
positive: Positive, 
/**
 * Neighbours of the weighted kNN evaluation.
 */
knn_k: number, 
/**
 * Temperature of the kNN vote weights exp(s/σ).
 */
knn_sigma: number, 
/**
 * The K of Recall@K (1, 2, 4, 8 as in the paper's CUB and Cars tables; 1, 10, 100 for
 * Products).
 */
recall_k: Array<number>, 
/**
 * Number format of the convolutions (runs recorded before it existed trained in f32).
 */
precision: Precision, 
/**
 * Where the training views are built; not part of the model (the views are the same either
 * way), so a resumed run takes the request's.
 */
augment_on: AugmentOn, 
/**
 * With views built on the device, the MiB of training images (8-bit, at the cache's size)
 * kept there for the whole run; a folder above it (or above one buffer of the device) is
 * uploaded batch by batch instead. 0: never kept.
 */
device_data_mb: number, 
/**
 * Minutes between checkpoints within an epoch (one is also written at every epoch's end and
 * when the run is stopped), so a crash or a power cut costs at most this much training.
 */
checkpoint_minutes: number, 
/**
 * The highest rate this run may train at: set when a resume extends the run to the rate it
 * last trained at, and kept in `run.json` and the checkpoint from then on, so no later resume
 * can raise the rate above it again (a new length would otherwise re-plan the schedule from
 * an earlier, higher point). `None` for a run never extended.
 */
lr_cap?: number, };

/**
 * The values a number setting may take: at least `min` (above it where `inclusive` is false),
 * and whole where the setting counts something.
 */
export type Limit = { min: number, 
/**
 * Whether `min` itself is allowed.
 */
inclusive: boolean, whole: boolean, };

/**
 * The limit of each number setting of [`TrainConfig`]: what [`TrainConfig::validate`] holds it
 * to (a test keeps the two in step), for a shell to refuse a value before a run starts.
 */
export type SettingLimits = { epochs: Limit, batch_size: Limit, image_size: Limit, width: Limit, dim: Limit, tau: Limit, lr: Limit, momentum: Limit, weight_decay: Limit, seed: Limit, knn_k: Limit, knn_sigma: Limit, device_data_mb: Limit, checkpoint_minutes: Limit, };

/**
 * What a shell needs to know of a method to offer it: the temperature it was published with
 * (which choosing it brings) and its views of each image per step (which a throughput in views
 * per second turns into steps).
 */
export type MethodInfo = { method: Method, 
/**
 * [`Method::default_tau`].
 */
tau: number, 
/**
 * [`Method::views`].
 */
views: number, };

/**
 * What a shell offers a new run from: the engine's defaults, the limits of the number settings,
 * and each method's published temperature and views per step.
 */
export type TrainSettings = { defaults: TrainConfig, limits: SettingLimits, methods: Array<MethodInfo>, };

/**
 * A histogram of cosine similarities over `[lo, hi] = [-1, 1]` in equal bins.
 */
export type Histogram = { 
/**
 * Lower edge of the first bin.
 */
lo: number, 
/**
 * Upper edge of the last bin.
 */
hi: number, 
/**
 * Number of values in each bin.
 */
counts: Array<number>, };

/**
 * How the positive pairs of a [`SimilarityDistributions`] were formed.
 */
export type PairKind = "SameClassNeighbors" | "TwoViews";

/**
 * Cosine-similarity distributions of positive and negative pairs.
 */
export type SimilarityDistributions = { 
/**
 * Similarities of positive pairs.
 */
positive: Histogram, 
/**
 * Similarities of negative pairs.
 */
negative: Histogram, 
/**
 * How the pairs were formed.
 */
kind: PairKind, };

/**
 * A retrieved image with its cosine similarity to the query.
 */
export type Neighbor = { 
/**
 * The image file.
 */
path: string, 
/**
 * Cosine similarity in [-1, 1].
 */
score: number, 
/**
 * Whether its label folder is the query's, when the folder has labels.
 */
same_label: boolean | null, };

/**
 * One probe image and its nearest neighbours in a fixed sample of the training images, so a
 * person can watch retrieval improve epoch by epoch.
 */
export type ProbeNeighbors = { 
/**
 * The probe image.
 */
query: string, 
/**
 * Nearest other images, best first.
 */
neighbors: Array<Neighbor>, };

/**
 * The images an epoch's retrieval metrics come from.
 */
export type ScoredOn = "test_folder" | "memory_folder" | "training_views";

/**
 * Metrics of one finished epoch; one line of `metrics.jsonl`.
 */
export type EpochMetrics = { 
/**
 * 1-based epoch number.
 */
epoch: number, 
/**
 * Mean training loss over the epoch's steps.
 */
loss: number, 
/**
 * Learning rate at the epoch's last step.
 */
lr: number, 
/**
 * Training throughput over the epoch (both views counted), images per second.
 */
images_per_sec: number, 
/**
 * Share of the epoch's training time the device waited for the batch producer: near 0 when
 * augmentation keeps up, near 1 when the host is the bottleneck.
 */
data_wait_fraction: number, 
/**
 * Milliseconds the training thread spent recording each step (building its work for the
 * device): the host's share of a step besides the batch producer's.
 */
host_ms_per_step: number, 
/**
 * Weighted kNN top-1 accuracy in percent, when labelled evaluation folders were given.
 */
knn_accuracy: number | null, 
/**
 * Test classes the kNN memory lacks, whose images kNN left out (empty when it has them all).
 */
knn_classes_left_out: Array<string>, 
/**
 * Recall@1/2/4/8 in percent on the labelled evaluation set.
 */
recall_at: Array<[number, number]> | null, 
/**
 * Which images Recall@K, NMI and the histograms were computed on.
 */
scored_on: ScoredOn | null, 
/**
 * NMI of k-means on the labelled evaluation set.
 */
nmi: number | null, 
/**
 * Positive vs negative cosine-similarity histograms (paper Fig. 5).
 */
similarity: SimilarityDistributions | null, 
/**
 * Fixed probe images of the training set and their nearest training images this epoch.
 */
probes: Array<ProbeNeighbors>, 
/**
 * Seconds the epoch took, training and evaluation included.
 */
seconds: number, };

/**
 * What the run is doing right now, for status lines.
 */
export type Phase = "loading_data" | "warming_up" | "training" | "evaluating";

/**
 * What kind of thing went wrong, in words a shell can act on.
 */
export type ErrorKind = "data" | "cache" | "device" | "no_gpu" | "precision" | "files" | "eval" | "threshold_too_low" | "config" | "not_found" | "canceled" | "existing_run" | "foreign_folder" | "out_holds_images" | "nothing_to_resume" | "changed_folder" | "diverged" | "crashed" | "server_lost";

/**
 * Everything a consumer of a training run is told, in order.
 */
export type TrainEvent = { "type": "phase", 
/**
 * The new phase.
 */
phase: Phase, } | { "type": "loading", 
/**
 * Files done.
 */
done: number, 
/**
 * Files in all.
 */
total: number, } | { "type": "started", 
/**
 * The device's name, e.g. "NVIDIA H100 (Vulkan, discrete GPU)".
 */
device: string, 
/**
 * Usable training images.
 */
images: number, 
/**
 * Files that were skipped, with reasons.
 */
skipped: Array<SkippedFile>, 
/**
 * Optimiser steps per epoch.
 */
steps_per_epoch: number, 
/**
 * Epochs in the whole run.
 */
epochs: number, 
/**
 * First epoch this run will train (1 unless resumed).
 */
first_epoch: number, 
/**
 * Where the training views are built: `device` or `cpu` (`auto` resolved).
 */
views_on: AugmentOn, } | { "type": "warning", 
/**
 * What happened and what to do.
 */
message: string, } | { "type": "step", 
/**
 * 1-based epoch.
 */
epoch: number, 
/**
 * 1-based step within the epoch.
 */
step: number, 
/**
 * Steps in this epoch.
 */
steps_per_epoch: number, 
/**
 * The step's loss.
 */
loss: number, 
/**
 * Learning rate used.
 */
lr: number, 
/**
 * Training throughput so far this epoch (both views counted), images per second.
 */
images_per_sec: number, } | { "type": "traffic", 
/**
 * Bytes sent to the server per step.
 */
sent_per_step: number, 
/**
 * Bytes received from it per step.
 */
received_per_step: number, } | { "type": "epoch" } & EpochMetrics | { "type": "finished", 
/**
 * Whether the user stopped it.
 */
canceled: boolean, 
/**
 * Epochs completed in total, resumed ones included.
 */
epochs_completed: number, } | { "type": "failed", 
/**
 * The kind of failure, for the shell's remedy.
 */
code: ErrorKind, 
/**
 * What went wrong.
 */
message: string, };

/**
 * What the UI sends to start a run.
 */
export type StartTraining = { 
/**
 * Hyper-parameters.
 */
config: TrainConfig, 
/**
 * Training images.
 */
train_dir: string, 
/**
 * Labelled test folder scored each epoch, if any.
 */
eval_test_dir: string | null, 
/**
 * Device.
 */
device: DeviceChoice, 
/**
 * Pretrained backbone to start from (safetensors, torchvision names); random when absent.
 */
init_weights: string | null, };

/**
 * One setting a resume changed from the run's record, e.g. `epochs 30 → 50`.
 */
export type SettingChange = { 
/**
 * The setting's name in the configuration (a shell words it as its own control).
 */
setting: string, 
/**
 * The value the run recorded.
 */
recorded: string, 
/**
 * The value it continues with.
 */
now: string, };

/**
 * What a resume did before its run started: the settings it changed from the run's record,
 * and whether the run was already complete (then nothing was started).
 */
export type Resumed = { 
/**
 * Each setting that differs from what the run recorded (e.g. the device).
 */
changes: Array<SettingChange>, 
/**
 * The run has trained every epoch asked of it: no run was started.
 */
complete: boolean, 
/**
 * Epochs the run has completed.
 */
epochs_completed: number, 
/**
 * Epochs in the whole run.
 */
epochs: number, };

/**
 * What a run records about its training folder, to tell on resume whether it changed.
 */
export type FolderFingerprint = { 
/**
 * Image files found.
 */
images: number, 
/**
 * xxh3-128 of every file's relative path, size and modification time, in scan order.
 */
digest: string, };

/**
 * What a run was started with; `run.json`.
 */
export type RunRecord = { 
/**
 * Name of the device it trained on.
 */
device: string, 
/**
 * The device as the person chose it (`auto`, `gpu`, an adapter, a server), which a resume
 * without `--device` asks for again; runs recorded before it existed resume on `auto`.
 */
device_choice: DeviceChoice | null, 
/**
 * Training images.
 */
train_dir: string, 
/**
 * Labelled kNN memory folder, if one was given.
 */
eval_train_dir: string | null, 
/**
 * Labelled test folder, if one was given.
 */
eval_test_dir: string | null, 
/**
 * Usable training images.
 */
images: number, 
/**
 * Skipped training files.
 */
skipped: number, 
/**
 * Label folder names of the training folder (empty without labels).
 */
labels: Array<string>, 
/**
 * Input normalisation estimated from the training images.
 */
normalization: Normalization, 
/**
 * Hyper-parameters.
 */
config: TrainConfig, 
/**
 * What the training folder held (runs recorded before this existed have none).
 */
folder: FolderFingerprint | null, 
/**
 * Pretrained weights the run started from (`--init`), if any.
 */
init_weights: string | null, };

/**
 * A kept model snapshot.
 */
export type Snapshot = { 
/**
 * Epoch after which it was taken (1-based).
 */
epoch: number, 
/**
 * Its folder (holds `model.safetensors` and `config.json`).
 */
dir: string, };

/**
 * Everything the app shows about a run folder.
 */
export type RunInfo = { 
/**
 * The run folder.
 */
dir: string, 
/**
 * How it was started.
 */
record: RunRecord, 
/**
 * Epochs finished and checkpointed.
 */
epochs_completed: number, 
/**
 * Metrics of every finished epoch.
 */
metrics: Array<EpochMetrics>, 
/**
 * Kept model snapshots.
 */
snapshots: Array<Snapshot>, 
/**
 * Whether the run stopped before its last epoch (closed, crashed or stopped, in its first
 * epoch too) with a checkpoint, so it can be resumed.
 */
unfinished: boolean, 
/**
 * Bytes the run folder takes on disk (checkpoint, model, snapshots).
 */
bytes: number, };

/**
 * What deleting a run removed and what it left.
 */
export type DeletedRun = { 
/**
 * Bytes the run's files took.
 */
bytes: number, 
/**
 * What the run folder held besides a run's own files, left where it was with the folder;
 * empty when the folder itself is gone.
 */
kept: Array<string>, };

/**
 * A collection as the UI sees it.
 */
export type CollectionInfo = { 
/**
 * Key for later queries.
 */
key: string, 
/**
 * Files that could not be used.
 */
skipped: Array<SkippedFile>, 
/**
 * The number of clusters to offer first.
 */
suggested_clusters: number, 
/**
 * The files (names that are not UTF-8 escaped, see `spreadout::support::paths`).
 */
files: string[], 
/**
 * Label index of each file, when the layout defines labels.
 */
labels: Array<number | null>, 
/**
 * Label folder names (empty without labels).
 */
label_names: Array<string>, };

/**
 * How [`Collection::map`] flattens the embedding.
 */
export type MapMethod = "pca" | "umap";

/**
 * A group of near-duplicate images.
 */
export type DuplicateGroup = { 
/**
 * Row indices, the most central member first (highest total similarity to the others),
 * then by similarity to it.
 */
members: Array<number>, 
/**
 * Similarity of each member to the first (1 for the first itself): the embeddings' cosine
 * where there is a model, else the hashes' ([`similarity`]).
 */
similarities: Array<number>, 
/**
 * The lowest similarity of two members, on the same scale.
 */
weakest_link: number, 
/**
 * Each member's link to the first (every member but the first, in order), with the stage
 * that found it. Every two members are linked; these are the links the shells show.
 */
links: Array<DuplicateLink>, 
/**
 * The copy to keep ([`best_copy`]): the suggestion, or the person's choice once they
 * marked the group resolved. `None` only from [`find_duplicates`], which sees no files.
 */
keep: KeepSuggestion | null, 
/**
 * Whether a person marked this group (or one holding all its members) resolved
 * ([`super::resolved`]): the shells set it aside.
 */
resolved: boolean, };

/**
 * Two members of a group and what says they are copies.
 */
export type DuplicateLink = { 
/**
 * Row indices, `a < b`.
 */
a: number, b: number, 
/**
 * The stage that found the pair.
 */
stage: Stage, 
/**
 * Differing bits of their perceptual hashes (of 64); `None` when their colours rule them
 * out as copies for the hash stage, or it was not run.
 */
hash_bits: number | null, 
/**
 * Their embeddings' score: the best cosine over the whole images and their zoomed and
 * mirrored views (or the whole images' alone where asked); `None` without a model.
 */
cosine: number | null, };

/**
 * Which stage of the finder linked a pair.
 */
export type Stage = "hash" | "embedding" | "both";

/**
 * The copy of a group to keep and the first thing that set it above the next best.
 */
export type KeepSuggestion = { 
/**
 * The row to keep, one of the group's members.
 */
row: number, 
/**
 * Why, for a person: "most pixels (4032×3024)", "camera format (raw)", "sharpest", …
 */
reason: string, };

/**
 * The threshold [`suggest_threshold`] chose and the distributions it came from.
 */
export type ThresholdSuggestion = { 
/**
 * The suggested cosine threshold.
 */
threshold: number, 
/**
 * How it was chosen, in a sentence for the person.
 */
how: string, 
/**
 * Similarity of each (sampled) image to a mildly edited version of itself.
 */
copies: Histogram, 
/**
 * Similarity of each (sampled) image to its nearest other image in the folder.
 */
nearest: Histogram, 
/**
 * Fraction of the copies below the threshold.
 */
missed: number, 
/**
 * Fraction of the nearest other images above it.
 */
crowded: number, };

/**
 * Whether the model tells copies from neighbours yet, and what to say where it does not.
 */
export type Readiness = { 
/**
 * Whether the embedding separates edited copies from nearest neighbours well enough to
 * find duplicates by.
 */
separates: boolean, 
/**
 * Why not, and what to do, for the person (`None` where it does).
 */
note: string | null, };

/**
 * One cluster of a [`Clustering`].
 */
export type Cluster = { 
/**
 * Row indices, most typical first (highest cosine similarity to the cluster's centre).
 */
members: Array<number>, 
/**
 * Cosine similarity of each member to the centre (the normalised mean of the members).
 */
similarities: Array<number>, };

/**
 * k-means clusters of a folder, largest first.
 */
export type Clustering = { 
/**
 * The clusters, largest first (equal sizes: the one holding the lower row first).
 */
clusters: Array<Cluster>, 
/**
 * For each row, the index of its cluster in `clusters`.
 */
assignment: Array<number>, };

/**
 * A file format for the groups.
 */
export type TableFormat = "csv" | "json";

/**
 * The distributions the Explore screen plots.
 */
export type Distributions = { 
/**
 * Cosine similarity of random pairs of images: how spread out the embedding is.
 */
random_pairs: Histogram, 
/**
 * Same-label vs other-label neighbours (Fig. 5), when the folder has labels.
 */
labeled: SimilarityDistributions | null, 
/**
 * The same split by the query's label folder (Fig. 6), in label order.
 */
per_label: Array<[string, SimilarityDistributions]>, };

/**
 * What was written and checked.
 */
export type Exported = { 
/**
 * Files written.
 */
files: string[], 
/**
 * Files and folders already in the destination folder, left as they were (a model exported
 * into a folder); `None` where one file was written where the person named it.
 */
others_kept: number | null, 
/**
 * What reading them back found, for a person.
 */
verified: string, };
