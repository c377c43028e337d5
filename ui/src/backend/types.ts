// The app's contract with its backend: every screen talks to this interface only. `tauri.ts`
// implements it over Tauri commands; `mock.ts` implements it in memory for tests and for running
// the UI in a plain browser.

export interface CommandError {
  code: string;
  message: string;
}

export interface Progress {
  done: number;
  total: number;
}

export interface FolderSummary {
  root: string;
  files: string[];
  labels: (number | null)[];
  label_names: string[];
  formats: Record<string, number>;
}

export interface SkippedFile {
  path: string;
  reason: string;
}

export interface FolderCheck {
  usable: number;
  skipped: SkippedFile[];
}

/** One folder's preprocessed cache at one resolution. */
export interface CachedFolder {
  folder: string;
  side: number;
  files: number;
  bytes: number;
}

/** Where the preprocessed image cache is and what it takes on disk. */
export interface CacheSummary {
  root: string;
  bytes: number;
  folders: CachedFolder[];
}

export interface AugmentOps {
  crop: boolean;
  color_jitter: boolean;
  grayscale: boolean;
  flip: boolean;
}

export interface ViewPair {
  path: string;
  original: string;
  views: [string, string];
}

/** How Burn computes on an adapter (`device::Compute`). */
export interface Compute {
  /** 'SPIR-V', 'MSL' or 'WGSL'. */
  compiler: string;
  /** Matrix-unit operand types, e.g. 'f16×f16→f32'; empty without matrix kernels. */
  matrix_units: string[];
  f16: boolean;
}

export interface Adapter {
  index: number;
  name: string;
  kind: 'discrete' | 'integrated' | 'virtual' | 'software' | 'other';
  api: string;
  driver: string;
  /** Null when the device could not be opened. */
  compute: Compute | null;
}

export interface Devices {
  adapters: Adapter[];
  auto_name: string;
  auto_notice: string | null;
}

export type DeviceChoice = 'auto' | 'gpu' | 'cpu' | { adapter: number };

export type Schedule = 'step' | 'cosine';

/** The training objective: the paper's, or a method its Table 1 and Fig. 3 compare it with. */
export type Method = 'spreadout' | 'npsoftmax' | 'nce' | 'exemplar' | 'triplet' | 'triplet-hard';

export interface TrainConfig {
  epochs: number;
  batch_size: number;
  image_size: number;
  width: number;
  dim: number;
  tau: number;
  lr: number;
  momentum: number;
  weight_decay: number;
  schedule: Schedule;
  seed: number;
  augment: AugmentOps;
  /** The engine's default (spreadout) when absent. */
  method?: Method;
  negatives: 'all' | 'hardest_half' | 'easiest_half';
  knn_k: number;
  knn_sigma: number;
  /** Convolution precision; the engine's default (f32) when absent. */
  precision?: 'f32' | 'f16';
}

export interface Histogram {
  lo: number;
  hi: number;
  counts: number[];
}

export interface SimilarityDistributions {
  positive: Histogram;
  negative: Histogram;
  kind: 'SameClassNeighbours' | 'TwoViews';
}

export interface Neighbour {
  path: string;
  score: number;
  same_label: boolean | null;
}

export interface ProbeNeighbours {
  query: string;
  neighbours: Neighbour[];
}

export interface EpochMetrics {
  epoch: number;
  loss: number;
  lr: number;
  images_per_sec: number;
  /** Share of training time the device waited for augmented batches (0–1). */
  data_wait_fraction: number;
  knn_accuracy: number | null;
  recall_at: [number, number][] | null;
  /** Which images Recall@K, NMI and the histograms were computed on (absent in older runs). */
  scored_on?: 'test_folder' | 'memory_folder' | 'training_views' | null;
  nmi: number | null;
  similarity: SimilarityDistributions | null;
  probes: ProbeNeighbours[];
  seconds: number;
}

export type Phase = 'loading_data' | 'warming_up' | 'training' | 'evaluating';

export type TrainEvent =
  | { type: 'phase'; phase: Phase }
  | { type: 'loading'; done: number; total: number }
  | {
      type: 'started';
      device: string;
      images: number;
      skipped: SkippedFile[];
      steps_per_epoch: number;
      epochs: number;
      first_epoch: number;
    }
  | { type: 'warning'; message: string }
  | {
      type: 'step';
      epoch: number;
      step: number;
      steps_per_epoch: number;
      loss: number;
      lr: number;
      images_per_sec: number;
    }
  | ({ type: 'epoch' } & EpochMetrics)
  | { type: 'finished'; cancelled: boolean; epochs_completed: number }
  | { type: 'failed'; message: string };

export interface StartTraining {
  config: TrainConfig;
  trainDir: string;
  evalTestDir: string | null;
  device: DeviceChoice;
  /** Pretrained backbone (torchvision ResNet-18 as safetensors) to start from; random when null. */
  initWeights: string | null;
}

export interface RunRecord {
  device: string;
  train_dir: string;
  eval_train_dir: string | null;
  eval_test_dir: string | null;
  images: number;
  skipped: number;
  labels: string[];
  config: TrainConfig;
}

export interface Snapshot {
  epoch: number;
  dir: string;
}

export interface RunInfo {
  dir: string;
  record: RunRecord;
  epochs_completed: number;
  metrics: EpochMetrics[];
  snapshots: Snapshot[];
  unfinished: boolean;
}

export interface CollectionInfo {
  key: string;
  files: string[];
  labels: (number | null)[];
  label_names: string[];
  skipped: SkippedFile[];
  /** The number of clusters to offer first (one per label folder, else √(n/2) within 2–50). */
  suggested_clusters: number;
}

/** How the map flattens the embedding. */
export type MapMethod = 'pca' | 'umap';

/** Near-duplicate images: row indices, the most central first. */
export interface DuplicateGroup {
  members: number[];
  /** Cosine similarity of each member to the first. */
  similarities: number[];
  /** The lowest similarity of a pair that joined the group. */
  weakest_link: number;
}

/** The duplicate threshold a model suggests for a folder, and the distributions it comes from. */
export interface ThresholdSuggestion {
  threshold: number;
  /** How it was chosen, for a person. */
  how: string;
  /** Similarity of sampled images to a mildly edited copy of themselves. */
  copies: Histogram;
  /** Similarity of sampled images to their nearest other image. */
  nearest: Histogram;
}

export interface Cluster {
  /** Row indices, most typical (closest to the centre) first. */
  members: number[];
  similarities: number[];
}

export interface Clustering {
  /** Largest first. */
  clusters: Cluster[];
  /** Each row's index into `clusters`. */
  assignment: number[];
}

export type TableFormat = 'csv' | 'json';

/** What a save dialog offers to write. */
export type SaveKind = 'safetensors' | TableFormat;

export interface Distributions {
  random_pairs: Histogram;
  labelled: SimilarityDistributions | null;
  per_label: [string, SimilarityDistributions][];
}

export interface Exported {
  files: string[];
  verified: string;
}

export interface Startup {
  openDemo: boolean;
  testHooks: boolean;
  runsRoot: string;
}

/** A folder or file the person picked, or null when they cancelled the dialog. */
export type Picked = string | null;

export interface Backend {
  /** Human name of the backend, shown in the footer. */
  readonly kind: 'desktop' | 'mock';
  startup(): Promise<Startup>;
  pickFolder(title: string): Promise<Picked>;
  pickImage(): Promise<Picked>;
  /** A safetensors file of pretrained weights. */
  pickWeights(): Promise<Picked>;
  pickSaveFile(defaultName: string, kind?: SaveKind): Promise<Picked>;
  thumbnailUrl(path: string): string;
  /** Calls `handler` with the paths of files dropped on the window; returns an unsubscribe. */
  onFileDrop(handler: (paths: string[]) => void): Promise<() => void>;

  scanFolder(path: string): Promise<FolderSummary>;
  checkFolder(path: string, imageSize: number, job: string, progress: (p: Progress) => void): Promise<FolderCheck>;
  cacheSummary(): Promise<CacheSummary>;
  /** Deletes the image cache; resolves to the bytes freed. */
  clearCache(): Promise<number>;
  cancelJob(job: string): Promise<void>;
  demoFolders(): Promise<[string, string]>;
  augmentPreview(paths: string[], ops: AugmentOps, imageSize: number, seed: number): Promise<ViewPair[]>;

  listDevices(): Promise<Devices>;
  startTraining(request: StartTraining, onEvent: (event: TrainEvent) => void): Promise<string>;
  resumeTraining(runDir: string, epochs: number | null, device: DeviceChoice, onEvent: (event: TrainEvent) => void): Promise<void>;
  pauseTraining(): Promise<void>;
  resumePausedTraining(): Promise<void>;
  stopTraining(): Promise<void>;
  listRuns(): Promise<RunInfo[]>;
  openRun(runDir: string): Promise<RunInfo>;

  openCollection(model: string, folder: string, device: DeviceChoice, job: string, progress: (p: Progress) => void): Promise<CollectionInfo>;
  neighbours(key: string, index: number, k: number): Promise<Neighbour[]>;
  queryFile(key: string, path: string, k: number): Promise<Neighbour[]>;
  distributions(key: string): Promise<Distributions>;
  embeddingMap(key: string, method: MapMethod, job: string, progress: (p: Progress) => void): Promise<[number, number][]>;
  duplicateThreshold(key: string): Promise<ThresholdSuggestion>;
  findDuplicates(key: string, threshold: number): Promise<DuplicateGroup[]>;
  /** Writes the groups above `threshold`; resolves to the file written. */
  saveDuplicates(key: string, threshold: number, format: TableFormat, destination: string): Promise<string>;
  clusterCollection(key: string, k: number, job: string, progress: (p: Progress) => void): Promise<Clustering>;
  saveClusters(key: string, k: number, destination: string): Promise<string>;

  exportModel(modelDir: string, destination: string): Promise<Exported>;
  exportEmbeddings(key: string, destination: string): Promise<Exported>;
}

/** Turns anything a backend threw into `{code, message}`. */
export function asCommandError(error: unknown): CommandError {
  if (error && typeof error === 'object' && 'code' in error && 'message' in error) {
    return { code: String(error.code), message: String(error.message) };
  }
  return { code: 'app', message: error instanceof Error ? error.message : String(error) };
}
