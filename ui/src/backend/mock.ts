// An in-memory backend with the desktop backend's behaviour: a generated labelled folder, a fake
// training run that emits the real event sequence, and embeddings whose neighbours follow the
// labels. Used by the Vitest suite and when the UI runs in a plain browser (`npm run dev`).
import type {
  Backend,
  Cluster,
  Clustering,
  CollectionInfo,
  DuplicateGroup,
  DeviceChoice,
  Distributions,
  EpochMetrics,
  FolderSummary,
  Histogram,
  Neighbor,
  RunInfo,
  SettingChange,
  StartTraining,
  TrainEvent,
} from './types';
import { ENGINE_SETTINGS } from './engine-settings';

/** A device as the engine writes it in a setting change (`DeviceChoice`'s Display). */
function deviceText(device: DeviceChoice): string {
  if (typeof device === 'string') return device;
  if ('adapter' in device) return String(device.adapter);
  return device.remote.address;
}

const CLASSES = ['checker', 'cross', 'disc', 'ring', 'square', 'triangle'];
const COLORS = ['#e76f51', '#2a9d8f', '#e9c46a', '#264653', '#f4a261', '#8ab17d'];

/** Embeddings kept at once, as the desktop backend's `KEPT_COLLECTIONS`. */
const KEPT_COLLECTIONS = 8;

export interface MockOptions {
  /** Images per class in the generated folder. */
  perClass?: number;
  /** Milliseconds between simulated training steps (0 in tests). */
  stepMs?: number;
  /**
   * Makes every start fail: refused by the command ('rejected'), or by the run's worker, whose
   * `failed` event overtakes the command's answer ('event'), as on the desktop backend.
   */
  failStart?: 'rejected' | 'event';
  /** The training folders changed since their runs started: a resume fails unless accepted. */
  folderChanged?: boolean;
  /** Every model is too young to tell copies from neighbours (Explore says so, groups by hash). */
  untrained?: boolean;
}

/** The token the mock's training servers (any address) accept: 64 hex digits, as `serve` writes. */
export const MOCK_SERVER_TOKEN = '5eed'.repeat(16);

/** The pin of the key the mock's TLS servers (any `wss://` address) present. */
export const MOCK_SERVER_PIN = `sha256:${'ab'.repeat(32)}`;

/**
 * `address` as the engine's `RemoteTarget::parse` reads it: `ws://HOST[:PORT]`,
 * `wss://HOST[:PORT]` or `iroh://ID@HOST[:PORT]` (the id 64 hex digits), port 7800 by default.
 */
function serverAddress(address: string): string | null {
  const [, scheme, rest] = /^(wss?|iroh):\/\/([^\s/]+)\/?$/.exec(address.trim()) ?? [];
  if (!rest || (scheme === 'iroh' && !/^[0-9a-f]{64}@./.test(rest))) return null;
  return /:\d+$/.test(rest) ? `${scheme}://${rest}` : `${scheme}://${rest}:7800`;
}

/**
 * A token file's text as the engine's `Secret::parse` reads it: the token (at least 32 hex
 * digits), then at most a `tls-key sha256:HEX` line; blank and `#` lines skipped. A string says
 * what is wrong.
 */
function parseSecret(text: string): { token: string; pin: string | null } | string {
  const [token, ...rest] = text.split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));
  if (!token || !/^[0-9a-fA-F]{32,}$/.test(token)) return 'a token is at least 32 hexadecimal digits (128 bits), and this one is not: use the file `spreadout serve` wrote';
  const pins = rest.map((line) => /^tls-key (sha256:[0-9a-f]{64})$/.exec(line)?.[1]);
  const other = rest.find((_, i) => !pins[i]);
  if (other !== undefined || pins.length > 1) return `'${other ?? rest[1]}' is neither the token nor a \`tls-key sha256:…\` line`;
  return { token, pin: pins[0] ?? null };
}

function summary(root: string, perClass: number): FolderSummary {
  const files: string[] = [];
  const labels: number[] = [];
  CLASSES.forEach((name, label) => {
    for (let i = 0; i < perClass; i++) {
      files.push(`${root}/${name}/${String(i).padStart(4, '0')}.png`);
      labels.push(label);
    }
  });
  return { root, files, labels, label_names: CLASSES, formats: { png: files.length, jpg: 1 }, raw_files: 0, heif_files: 0, libheif: '1.23.1' };
}

function histogram(center: number, spread: number, total: number): Histogram {
  const counts = Array.from({ length: 50 }, (_, i) => {
    const x = -1 + (i + 0.5) * 0.04;
    return Math.round(total * Math.exp(-((x - center) ** 2) / (2 * spread ** 2)));
  });
  return { lo: -1, hi: 1, counts };
}

function labelOf(path: string): number {
  return CLASSES.findIndex((name) => path.includes(`/${name}/`));
}

/** A square in the colour of the image's label folder. */
function thumbnail(path: string): string {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" fill="${COLORS[Math.max(0, labelOf(path))]}"/></svg>`;
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

/** The mock model's suggested duplicate threshold. */
const SUGGESTED_THRESHOLD = 0.93;

/** Planted near-duplicates: image 3n and its successor, similarity 0.90 + (n mod 10) / 100, linked
 * by both stages; image 3n + 2 joins every fifth group, linked by its hash alone (2 bits). The
 * successor is the copy to keep (it has more pixels); `resolved` maps a resolved group's sorted
 * members to the row kept, as the backend's store does (a group it covers is resolved). */
function mockDuplicates(info: CollectionInfo, threshold: number | null, resolved: Map<string, number>): DuplicateGroup[] {
  const groups: DuplicateGroup[] = [];
  for (let i = 0; i + 2 < info.files.length; i += 3) {
    const similarity = 0.9 + ((i / 3) % 10) / 100;
    // Without the embedding (null), the hashes link every pair: all are found.
    if (threshold !== null && similarity <= threshold) continue;
    const third = (i / 3) % 5 === 0 && (threshold === null || similarity - 0.01 > threshold);
    const members = third ? [i, i + 1, i + 2] : [i, i + 1];
    const kept = [...resolved.entries()].find(([rows]) => members.every((row) => rows.split(',').includes(String(row))));
    groups.push({
      members,
      keep: kept ? { row: kept[1], reason: 'kept when marked resolved' } : { row: i + 1, reason: 'most pixels (640×480)' },
      resolved: kept !== undefined,
      similarities: third ? [1, similarity, similarity - 0.01] : [1, similarity],
      weakest_link: third ? similarity - 0.01 : similarity,
      links: [
        { a: i, b: i + 1, stage: threshold === null ? 'hash' : 'both', hash_bits: 1, cosine: similarity },
        ...(third
          ? [
              { a: i, b: i + 2, stage: 'hash' as const, hash_bits: 2, cosine: similarity - 0.01 },
              { a: i + 1, b: i + 2, stage: 'hash' as const, hash_bits: 3, cosine: similarity - 0.01 },
            ]
          : []),
      ],
    });
  }
  return groups.sort((a, b) => b.members.length - a.members.length || a.members[0] - b.members[0]);
}

/** k clusters by label (wrapping when k is below the number of labels), most typical first. */
function mockClustering(info: CollectionInfo, k: number): Clustering {
  const assignment = info.files.map((_, i) => (info.labels[i] ?? i) % k);
  const clusters: Cluster[] = Array.from({ length: k }, (_, c) => {
    const members = assignment.flatMap((a, i) => (a === c ? [i] : []));
    return { members, similarities: members.map((_, n) => 0.95 - n * 0.002) };
  }).filter((c) => c.members.length > 0);
  clusters.sort((a, b) => b.members.length - a.members.length || a.members[0] - b.members[0]);
  const order = new Map(clusters.map((c, n) => [c.members[0], n]));
  return { clusters, assignment: info.files.map((_, i) => order.get(clusters.find((c) => c.members.includes(i))!.members[0])!) };
}

/**
 * The mock, plus what a test does that a person would do with the OS: drop files on the window,
 * or close it (which, while a run trains, stops the run and tells the UI, as the desktop backend).
 */
export type MockBackend = Backend & { dropFiles(paths: string[]): void; simulateClosing(): void };

export function mockBackend(options: MockOptions = {}): MockBackend {
  const perClass = options.perClass ?? 40;
  const stepMs = options.stepMs ?? 60;
  const runs = new Map<string, RunInfo>();
  const collections = new Map<string, CollectionInfo>();
  const canceled = new Set<string>();
  /** Groups marked resolved: sorted member rows to the row kept. */
  const resolvedGroups = new Map<string, number>();
  let cacheBytes = 0;
  let training: { paused: boolean; stopped: boolean; runDir: string } | null = null;
  const dropHandlers = new Set<(paths: string[]) => void>();
  const closingListeners = new Set<() => void>();
  /** Servers whose token the mock keeps, as the desktop backend keeps them in files. */
  const serverTokens = new Map<string, string>();
  /** As the desktop backend when the window closes: a run is stopped, then the UI is told. */
  const closing = () => {
    if (!training) return;
    training.stopped = true;
    closingListeners.forEach((listener) => listener());
  };
  const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  /** A kept embedding, or the desktop backend's answer for one it has dropped. */
  const loaded = (key: string): CollectionInfo => {
    const info = collections.get(key);
    if (!info) throw { code: 'not_found', message: 'that embedding is no longer loaded; open the run in Explore again' };
    return info;
  };
  /** One run at a time, as the desktop backend's `begin_training` allows. */
  const refuseWhileTraining = () => {
    if (training) throw { code: 'busy', message: 'a training run is already active; stop it before starting another' };
  };

  async function simulate(
    runDir: string,
    epochs: number,
    firstEpoch: number,
    images: number,
    batch: number,
    device: DeviceChoice,
    emit: (event: TrainEvent) => void,
  ) {
    const state = { paused: false, stopped: false, runDir };
    training = state;
    const steps = Math.max(1, Math.floor(images / batch));
    const run = runs.get(runDir)!;
    emit({ type: 'phase', phase: 'loading_data' });
    emit({ type: 'loading', done: images, total: images });
    const served = typeof device === 'object' && 'remote' in device ? device.remote.address : null;
    // The mock's devices are GPUs, so the views are built there unless the CPU is asked for.
    const viewsOn = run.record.config.augment_on === 'cpu' ? 'cpu' : 'device';
    // What a served step sends: its views' draws (12 scalars of 8 bytes each) when the server
    // builds them from the images kept there, else both views of the batch as 8-bit pixels; and
    // the step's operations.
    const { image_size: size } = run.record.config;
    const sentPerStep = 2 * batch * (viewsOn === 'device' ? 12 * 8 : 3 * size * size) + 4096;
    emit({ type: 'started', device: served ? `Mock GPU at ${served}` : 'Mock GPU', images, skipped: [], steps_per_epoch: steps, epochs, first_epoch: firstEpoch, views_on: viewsOn });
    emit({ type: 'phase', phase: 'warming_up' });
    for (let epoch = firstEpoch; epoch <= epochs; epoch++) {
      for (let step = 1; step <= steps; step++) {
        while (state.paused && !state.stopped) await wait(10);
        if (state.stopped) {
          emit({ type: 'finished', canceled: true, epochs_completed: epoch - 1 });
          training = null;
          return;
        }
        await wait(stepMs);
        if (epoch === firstEpoch && step === 1) emit({ type: 'phase', phase: 'training' });
        const progress = (epoch - 1 + step / steps) / epochs;
        emit({ type: 'step', epoch, step, steps_per_epoch: steps, loss: 5.5 - 1.5 * progress, lr: 0.03, images_per_sec: 900 });
        if (served && step % 8 === 1) emit({ type: 'traffic', sent_per_step: sentPerStep, received_per_step: 512 });
      }
      emit({ type: 'phase', phase: 'evaluating' });
      const files = summary('/mock/demo/train', perClass).files;
      const metrics: EpochMetrics = {
        epoch,
        loss: 5.5 - (1.5 * epoch) / epochs,
        lr: 0.03,
        images_per_sec: 900,
        data_wait_fraction: 0.02,
        host_ms_per_step: 3.5,
        knn_accuracy: 30 + (40 * epoch) / epochs,
        knn_classes_left_out: [],
        recall_at: [[1, 30 + epoch], [2, 40 + epoch], [4, 50 + epoch], [8, 60 + epoch]],
        scored_on: 'test_folder',
        nmi: 0.1 + 0.02 * epoch,
        similarity: {
          positive: histogram(0.2 + (0.5 * epoch) / epochs, 0.15, 300),
          negative: histogram(0.1, 0.2, 300),
          kind: 'SameClassNeighbors',
        },
        probes: [0, 1, 2].map((p) => ({
          query: files[p * perClass],
          neighbors: [1, 2, 3, 4, 5].map((n) => ({
            path: files[(p * perClass + n * (epoch % 3 === 0 ? 7 : 1)) % files.length],
            score: 0.9 - n * 0.05,
            same_label: n < 4,
          })),
        })),
        seconds: 1,
      };
      run.metrics.push(metrics);
      run.epochs_completed = epoch;
      run.snapshots.push({ epoch, dir: `${runDir}/snapshots/epoch-${String(epoch).padStart(4, '0')}` });
      run.unfinished = epoch < epochs;
      // A checkpoint, a model and a snapshot per epoch, as a width-16 ResNet-18 writes them.
      run.bytes += 3 * 2_900_000;
      emit({ type: 'epoch', ...metrics });
    }
    training = null;
    emit({ type: 'finished', canceled: false, epochs_completed: epochs });
  }

  return {
    kind: 'mock',
    startup: async () => ({ open_demo: false, test_hooks: true, runs_root: '/mock/runs', image_extensions: ['jpg', 'jpeg', 'png', 'heic', 'nef'], settings: structuredClone(ENGINE_SETTINGS) }),
    pickFolder: async () => '/mock/photos',
    pickImage: async () => '/mock/outside/query.png',
    pickWeights: async () => '/mock/weights/resnet18.safetensors',
    pickSaveFile: async (name) => `/mock/exports/${name}`,
    thumbnailUrl: thumbnail,
    onFileDrop: async (handler) => {
      dropHandlers.add(handler);
      return () => dropHandlers.delete(handler);
    },
    dropFiles: (paths) => dropHandlers.forEach((handler) => handler(paths)),
    onClosing: (listener) => void closingListeners.add(listener),
    simulateClosing: closing,
    // A page in a browser cannot close its window; what the app does first is the same.
    closeWindow: async () => closing(),

    scanFolder: async (path) => summary(path, perClass),
    checkFolder: async (path, _size, job, progress) => {
      const total = CLASSES.length * perClass + 1;
      cacheBytes = total * 3 * 48 * 48;
      progress({ done: total, total, waiting: false });
      if (canceled.has(job)) throw { code: 'canceled', message: `loading ${path} was cancelled` };
      return { usable: total - 1, skipped: [{ path: `${path}/broken.jpg`, reason: 'the JPEG data stops before its end marker; the file is probably truncated' }], retried: 0 };
    },
    cancelJob: async (job) => {
      canceled.add(job);
    },
    cacheSummary: async () => ({
      root: '/mock/cache/pixels',
      bytes: cacheBytes,
      folders: cacheBytes ? [{ folder: '/mock/demo/train', side: 48, files: CLASSES.length * perClass + 1, bytes: cacheBytes }] : [],
    }),
    clearCache: async () => {
      const freed = cacheBytes;
      cacheBytes = 0;
      return freed;
    },
    demoFolders: async () => ['/mock/demo/train', '/mock/demo/test'],
    augmentPreview: async (paths, _ops, _size, _seed, device, augmentOn) => ({
      pairs: paths.map((path) => {
        const url = thumbnail(path);
        return { path, original: url, views: [url, url] as [string, string] };
      }),
      built_on: augmentOn === 'cpu' || device === 'cpu' ? 'CPU' : 'Mock GPU',
    }),

    listDevices: async () => ({
      adapters: [{ index: 0, name: 'Mock GPU', kind: 'discrete', api: 'Vulkan', driver: 'mock 1.0', compute: { compiler: 'SPIR-V', matrix_units: ['f16×f16→f32'], f16: true } }],
      auto_name: 'Mock GPU (Vulkan, discrete GPU)',
      graphics_apis: 'Vulkan',
      auto_notice: null,
    }),
    // As the engine's `remote::remember`: a pasted token is kept only once the server took it.
    connectRemote: async (address, token) => {
      const normalized = serverAddress(address);
      if (!normalized) throw { code: 'device', message: `'${address}' is not a server's address: write ws://HOST:PORT, wss://HOST:PORT or iroh://ID@HOST:PORT (the address \`spreadout serve\` printed)` };
      const given = token?.trim() || serverTokens.get(normalized);
      if (!given) throw { code: 'device', message: `${normalized} needs the server's token: give the file \`spreadout serve\` wrote with --token-file FILE` };
      const tokenFile = `/mock/data/servers/${normalized.replace(/\W+/g, '-')}.token`;
      const secret = parseSecret(given);
      if (typeof secret === 'string') throw { code: 'device', message: `token file (the token pasted): ${secret}` };
      if (normalized.startsWith('wss://') && !secret.pin) throw { code: 'device', message: `${normalized} is reached over TLS, and the token file ${tokenFile} does not pin the server's key (a \`tls-key sha256:…\` line): copy the token file \`spreadout serve\` wrote on that machine` };
      if (normalized.startsWith('wss://') && secret.pin !== MOCK_SERVER_PIN) throw { code: 'device', message: `the server at ${normalized} presented key ${MOCK_SERVER_PIN}, and the token file ${tokenFile} pins ${secret.pin}: if its key was replaced, copy its new token file; otherwise someone else is answering at that address, and nothing was sent to it` };
      if (secret.token !== MOCK_SERVER_TOKEN) throw { code: 'device', message: `the training server at ${normalized} refused the token in ${tokenFile}: copy the token file \`spreadout serve\` printed from that machine` };
      serverTokens.set(normalized, given);
      return { target: { address: normalized, token_file: tokenFile }, served: 'Mock server GPU (Vulkan, discrete GPU)', gpu: true };
    },
    startTraining: async (request: StartTraining, onEvent) => {
      refuseWhileTraining();
      if (options.failStart === 'rejected') throw { code: 'train', message: 'batch size must be at least 2 (each image needs other images as negatives)' };
      const runDir = `/mock/runs/run-${runs.size + 1}`;
      const images = CLASSES.length * perClass;
      runs.set(runDir, {
        dir: runDir,
        record: {
          device: 'Mock GPU',
          device_choice: request.device,
          train_dir: request.train_dir,
          eval_train_dir: null,
          eval_test_dir: request.eval_test_dir,
          images,
          skipped: 0,
          labels: CLASSES,
          normalization: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
          config: request.config,
          folder: { images, digest: 'mock' },
          init_weights: request.init_weights,
        },
        epochs_completed: 0,
        metrics: [],
        snapshots: [],
        unfinished: true,
        bytes: 4096,
      });
      if (options.failStart === 'event') {
        onEvent({ type: 'phase', phase: 'loading_data' });
        onEvent({ type: 'failed', code: 'device', message: 'the GPU could not be opened: device lost' });
      } else void simulate(runDir, request.config.epochs, 1, images, request.config.batch_size, request.device, onEvent);
      return runDir;
    },
    resumeTraining: async (runDir, epochs, device: DeviceChoice | null, acceptChangedFolder, onEvent) => {
      refuseWhileTraining();
      const run = runs.get(runDir);
      if (!run) throw { code: 'files', message: `cannot read ${runDir}/run.json: not found` };
      const total = epochs ?? run.record.config.epochs;
      // As the engine's one resume rule: what the run recorded, with what was chosen in its place.
      const recordedDevice = run.record.device_choice ?? 'auto';
      const changes: SettingChange[] = [];
      if (epochs !== null && epochs !== run.record.config.epochs) changes.push({ setting: 'epochs', recorded: String(run.record.config.epochs), now: String(epochs) });
      if (device !== null && JSON.stringify(device) !== JSON.stringify(recordedDevice)) {
        changes.push({ setting: 'device', recorded: deviceText(recordedDevice), now: deviceText(device) });
      }
      const answer = { changes, complete: run.epochs_completed >= total, epochs_completed: run.epochs_completed, epochs: total };
      if (answer.complete) return answer;
      if (options.folderChanged && !acceptChangedFolder) {
        // As the engine: the worker finds the change after loading the images.
        setTimeout(() => {
          onEvent({ type: 'phase', phase: 'loading_data' });
          onEvent({
            type: 'failed',
            code: 'changed_folder',
            message: `${run.record.train_dir} changed since this run started: it had ${run.record.images} image files, now ${run.record.images + 1}; resuming would train on different data`,
          });
        });
        return answer;
      }
      void simulate(runDir, total, run.epochs_completed + 1, run.record.images, run.record.config.batch_size, device ?? recordedDevice, onEvent);
      return answer;
    },
    pauseTraining: async () => {
      if (training) training.paused = true;
    },
    unpauseTraining: async () => {
      if (training) training.paused = false;
    },
    stopTraining: async () => {
      if (training) training.stopped = true;
    },
    listRuns: async () => [...runs.values()].reverse(),
    renameRun: async (runDir, name) => {
      if (training?.runDir === runDir) throw { code: 'busy', message: `${runDir} is training; stop it first` };
      const run = runs.get(runDir);
      if (!run) throw { code: 'not_found', message: `${runDir} is not a run folder (it has no run.json); nothing was changed` };
      if (!name.trim() || name.includes('/') || name.startsWith('.')) throw { code: 'config', message: `"${name}" cannot name a run folder` };
      const dir = `${runDir.slice(0, runDir.lastIndexOf('/'))}/${name.trim()}`;
      if (runs.has(dir)) throw { code: 'config', message: `${dir} exists already; choose another name` };
      runs.delete(runDir);
      const renamed = { ...run, dir, snapshots: run.snapshots.map((s) => ({ ...s, dir: s.dir.replace(runDir, dir) })) };
      runs.set(dir, renamed);
      return renamed;
    },
    deleteRun: async (runDir) => {
      const run = runs.get(runDir);
      if (!run) throw { code: 'not_found', message: `${runDir} is not a run folder (it has no run.json); nothing was changed` };
      if (training?.runDir === runDir) throw { code: 'busy', message: `${runDir} is training; stop it first` };
      runs.delete(runDir);
      return { bytes: run.bytes, kept: [] };
    },
    openRun: async (runDir) => {
      const run = runs.get(runDir);
      if (!run) throw { code: 'files', message: `cannot read ${runDir}/run.json: No such file or directory` };
      return run;
    },

    openCollection: async (model, folder, _device, _job, progress) => {
      const key = `${model}\n${folder}`;
      const kept = collections.get(key);
      if (kept) return kept;
      const scan = summary(folder, perClass);
      progress({ done: scan.files.length, total: scan.files.length, waiting: false });
      const info: CollectionInfo = { key, files: scan.files, labels: scan.labels, label_names: CLASSES, skipped: [], suggested_clusters: CLASSES.length };
      collections.set(key, info);
      // The oldest opened goes first; opening a kept one again does not make it newer.
      if (collections.size > KEPT_COLLECTIONS) collections.delete(collections.keys().next().value!);
      return info;
    },
    openHashedFolder: async (folder, _job, progress) => {
      const key = `hashes-${folder}`;
      const scan = summary(folder, perClass);
      progress({ done: scan.files.length, total: scan.files.length, waiting: false });
      const info: CollectionInfo = { key, files: scan.files, labels: scan.labels, label_names: CLASSES, skipped: [], suggested_clusters: 0 };
      collections.set(key, info);
      return info;
    },
    neighbors: async (key, index, k) => {
      const info = loaded(key);
      const label = info.labels[index];
      return Array.from({ length: Math.min(k, info.files.length - 1) }, (_, n): Neighbor => {
        const other = (index + 1 + n * (n % 3 === 2 ? perClass : 1)) % info.files.length;
        return { path: info.files[other], score: 0.95 - n * 0.03, same_label: info.labels[other] === label };
      });
    },
    queryFile: async (key, _path, k) => {
      const info = loaded(key);
      return info.files.slice(0, k).map((path, n) => ({ path, score: 0.8 - n * 0.02, same_label: null }));
    },
    distributions: async (): Promise<Distributions> => ({
      random_pairs: histogram(0.05, 0.2, 1000),
      labeled: { positive: histogram(0.6, 0.15, 500), negative: histogram(0.2, 0.15, 500), kind: 'SameClassNeighbors' },
      per_label: CLASSES.map((name, i) => [
        name,
        { positive: histogram(0.5 + i * 0.05, 0.1, 100), negative: histogram(0.2, 0.1, 100), kind: 'SameClassNeighbors' },
      ]),
    }),
    embeddingMap: async (key, method, job, progress) => {
      const info = loaded(key);
      // UMAP reports epochs and can be cancelled, as the desktop's does.
      const epochs = method === 'umap' ? 20 : 0;
      for (let epoch = 1; epoch <= epochs; epoch++) {
        if (canceled.delete(job)) throw { code: 'canceled', message: 'stopped before it finished' };
        progress({ done: epoch, total: epochs, waiting: false });
        await wait(stepMs > 0 ? 5 : 0);
      }
      const radius = method === 'umap' ? 6 : 3;
      return info.files.map((_, i) => {
        const label = info.labels[i] ?? 0;
        const angle = (label / CLASSES.length) * 2 * Math.PI;
        return [Math.cos(angle) * radius + ((i * 37) % 11) / 10, Math.sin(angle) * radius + ((i * 53) % 13) / 10];
      });
    },
    duplicateThreshold: async () => ({
      threshold: SUGGESTED_THRESHOLD,
      how: 'equal-error point between 240 images\' edited copies and their nearest other images: 2.1 % of copies fall below it, 1.7 % of nearest neighbours lie above it',
      copies: histogram(0.97, 0.02, 240),
      nearest: histogram(0.75, 0.08, 240),
      missed: 0.021,
      crowded: 0.017,
    }),
    readiness: async (key) =>
      key.startsWith('hashes-')
        ? { separates: false, note: 'No model: near-duplicates come from perceptual hashes alone (re-encoded, resized, brightened and noisy copies; at most 7 differing bits of 64, suggested by this folder). A trained model also finds crops and heavier edits.' }
        : options.untrained
        ? { separates: false, note: 'The model cannot tell copies from neighbours yet: at its best threshold (1.000) 33.8 % of edited copies fall below it and 33.8 % of nearest neighbours lie above it (train longer or wider). Near-duplicates come from the perceptual hashes alone unless you set a threshold yourself, and neighbour lists may rank unrelated images close.' }
        : { separates: true, note: null },
    // As the backend: null asks for the suggested threshold, which is the hashes alone while the
    // model cannot separate copies; a folder without a model has its hashes only.
    findDuplicates: async (key, threshold) =>
      mockDuplicates(loaded(key), key.startsWith('hashes-') || (threshold === null && options.untrained) ? null : threshold ?? SUGGESTED_THRESHOLD, resolvedGroups),
    markDuplicatesResolved: async (key, members, keep) => {
      loaded(key);
      // As the backend's store: reopening drops every decision covering the group; resolving
      // replaces those about part of it.
      const covers = (rows: string, of: number[]) => of.every((row) => rows.split(',').includes(String(row)));
      for (const rows of [...resolvedGroups.keys()]) {
        const within = rows.split(',').every((row) => members.includes(Number(row)));
        if (keep === null ? covers(rows, members) : within) resolvedGroups.delete(rows);
      }
      if (keep !== null) resolvedGroups.set([...members].sort((a, b) => a - b).join(','), keep);
    },
    saveDuplicates: async (_key, _threshold, _format, destination) => destination,
    clusterCollection: async (key, k, job, progress) => {
      const info = loaded(key);
      progress({ done: 0, total: 0, waiting: false });
      if (canceled.delete(job)) throw { code: 'canceled', message: 'stopped before it finished' };
      return mockClustering(info, k);
    },
    saveClusters: async (_key, _k, destination) => destination,

    // The chosen folder holds two things of the person's, which the export leaves as they were.
    exportModel: async (modelDir, destination) => ({
      files: [`${destination}/model.safetensors`, `${destination}/config.json`],
      others_kept: 2,
      verified: `loads back: ResNet-18 from ${modelDir}`,
    }),
    exportEmbeddings: async (key, destination) => ({
      files: [destination],
      others_kept: null,
      verified: `loads back: embeddings [${loaded(key).files.length}, 128]`,
    }),
  };
}
