// The app's contract with its backend: every screen talks to this interface only. `tauri.ts`
// implements it over Tauri commands; `mock.ts` implements it in memory for tests and for running
// the UI in a plain browser. The values that cross the IPC are declared in `ipc.ts`, generated
// from the Rust types (a Rust test fails when it is out of date), and re-exported here.
import type {
  AugmentOn,
  AugmentOps,
  CacheSummary,
  Clustering,
  CollectionInfo,
  CommandError,
  DeletedRun,
  DeviceChoice,
  Devices,
  Distributions,
  DuplicateGroup,
  Exported,
  FolderCheck,
  FolderSummary,
  MapMethod,
  Neighbor,
  Progress,
  RemoteDevice,
  Resumed,
  RunInfo,
  StartTraining,
  Startup,
  TableFormat,
  ThresholdSuggestion,
  Readiness,
  TrainEvent,
  ViewsPreview,
} from './ipc';

export type {
  Adapter,
  AdapterKind,
  AugmentOn,
  AugmentOps,
  CacheSummary,
  CachedFolder,
  Cluster,
  Clustering,
  CollectionInfo,
  CommandError,
  Compute,
  DeletedRun,
  DeviceChoice,
  Devices,
  Distributions,
  DuplicateGroup,
  KeepSuggestion,
  EpochMetrics,
  Exported,
  ErrorKind,
  FolderCheck,
  FolderFingerprint,
  FolderSummary,
  Histogram,
  ImageList,
  Limit,
  MapMethod,
  Method,
  MethodInfo,
  MethodSettings,
  NegativeSampling,
  Neighbor,
  Normalization,
  PairKind,
  Phase,
  Positive,
  Precision,
  ProbeNeighbors,
  Progress,
  RemoteDevice,
  RemoteTarget,
  Resumed,
  RunInfo,
  RunRecord,
  SettingChange,
  SettingLimits,
  Schedule,
  ScoredOn,
  SimilarityDistributions,
  SkippedFile,
  Snapshot,
  StartTraining,
  Startup,
  TableFormat,
  ThresholdSuggestion,
  Readiness,
  TrainConfig,
  TrainEvent,
  TrainSettings,
  ViewPair,
  ViewsPreview,
} from './ipc';

/** What a save dialog offers to write. */
export type SaveKind = 'safetensors' | TableFormat;

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
  /**
   * Calls `listener` when the person closes the window or quits while a run trains: the backend
   * has stopped the run, and closes once its checkpoint is written (or after a minute).
   */
  onClosing(listener: () => void): void;
  /** Asks the window to close, as its close button does (a run still writes its checkpoint first). */
  closeWindow(): Promise<void>;

  scanFolder(path: string): Promise<FolderSummary>;
  checkFolder(path: string, imageSize: number, job: string, progress: (p: Progress) => void): Promise<FolderCheck>;
  cacheSummary(): Promise<CacheSummary>;
  /** Deletes the image cache; resolves to the bytes freed. */
  clearCache(): Promise<number>;
  cancelJob(job: string): Promise<void>;
  demoFolders(): Promise<[string, string]>;
  /** Two training views of each of `paths`, built where a run on `device` with `augmentOn` builds them. */
  augmentPreview(paths: string[], ops: AugmentOps, imageSize: number, seed: number, device: DeviceChoice, augmentOn: AugmentOn): Promise<ViewsPreview>;

  listDevices(): Promise<Devices>;
  /**
   * "Another machine…": connects to the server at `address` (`wss://HOST:PORT`, `ws://HOST:PORT`
   * or `iroh://ID@HOST:PORT`) with `token`, the text of the token file `spreadout serve` wrote
   * (its token, and for `wss://` the `tls-key` line pinning the server's key; null: the token
   * kept before), keeps a token that connected in a file readable by this user only, and
   * resolves to what the server serves. Rejects with code `device` naming the server when the
   * text is not a token file, the server is unreachable, presents another key, refuses the token
   * or runs another release; a token that did not connect never replaces the one kept.
   */
  connectRemote(address: string, token: string | null): Promise<RemoteDevice>;
  startTraining(request: StartTraining, onEvent: (event: TrainEvent) => void): Promise<string>;
  /**
   * Continues a run from its checkpoint as its record says, `epochs` and `device` in its place
   * where not null; with `acceptChangedFolder`, on its training folder as it is now (otherwise a
   * changed folder ends the run with a `failed` event of code `changed_folder`). Resolves to what
   * the resume changed and whether the run was already complete, in which case no run starts
   * and no event comes.
   */
  resumeTraining(runDir: string, epochs: number | null, device: DeviceChoice | null, acceptChangedFolder: boolean, onEvent: (event: TrainEvent) => void): Promise<Resumed>;
  pauseTraining(): Promise<void>;
  unpauseTraining(): Promise<void>;
  stopTraining(): Promise<void>;
  listRuns(): Promise<RunInfo[]>;
  openRun(runDir: string): Promise<RunInfo>;
  /** Renames a run folder beside where it is; resolves to the run read back from there. */
  renameRun(runDir: string, name: string): Promise<RunInfo>;
  /**
   * Deletes a run's files (never its images, nor anything else in its folder); resolves to the
   * bytes freed and what the folder also held, left there with it.
   */
  deleteRun(runDir: string): Promise<DeletedRun>;

  openCollection(model: string, folder: string, device: DeviceChoice, job: string, progress: (p: Progress) => void): Promise<CollectionInfo>;
  /** Opens `folder` without a model: its perceptual hashes only (near-duplicates before any training). */
  openHashedFolder(folder: string, job: string, progress: (p: Progress) => void): Promise<CollectionInfo>;
  neighbors(key: string, index: number, k: number): Promise<Neighbor[]>;
  queryFile(key: string, path: string, k: number): Promise<Neighbor[]>;
  distributions(key: string): Promise<Distributions>;
  embeddingMap(key: string, method: MapMethod, job: string, progress: (p: Progress) => void): Promise<[number, number][]>;
  duplicateThreshold(key: string): Promise<ThresholdSuggestion>;
  /** Whether the model separates copies from neighbours yet, with the note to show where not. */
  readiness(key: string): Promise<Readiness>;
  /**
   * Groups linked by embeddings above `threshold` or by hashes; `null` asks for the engine's
   * suggested threshold (the hashes alone while the model cannot separate copies yet).
   */
  findDuplicates(key: string, threshold: number | null): Promise<DuplicateGroup[]>;
  /**
   * Marks the group of rows `members` resolved, keeping row `keep` (null: no longer resolved);
   * later searches, in the app and the CLI, flag it `resolved` until a new copy joins it.
   */
  markDuplicatesResolved(key: string, members: number[], keep: number | null): Promise<void>;
  /** Writes the groups `findDuplicates` gives; resolves to the file written. */
  saveDuplicates(key: string, threshold: number | null, format: TableFormat, destination: string): Promise<string>;
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
