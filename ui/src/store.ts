// The state screens share: the open folder, the settings, the active run. Screens subscribe to
// what they draw; everything else stays inside each screen. The settings the person chose (and
// only those) are remembered between launches, so that defaults which depend on the device still
// apply to everything else.
import type { DeviceChoice, EpochMetrics, FolderCheck, FolderSummary, TrainConfig } from './backend';

export interface RunView {
  dir: string;
  trainDir: string;
  metrics: EpochMetrics[];
  status: 'running' | 'paused' | 'finished' | 'stopped' | 'failed';
  labels: string[];
}

export interface Shared {
  folder: FolderSummary | null;
  check: FolderCheck | null;
  /** Labelled folder scored each epoch (the demo's test split, or one the person picked), if any. */
  testDir: string | null;
  config: TrainConfig;
  device: DeviceChoice;
  run: RunView | null;
}

/** Whether a run trains on a GPU or on the CPU, which call for different defaults. */
export type DeviceClass = 'gpu' | 'cpu';

/**
 * The settings whose default depends on the device: the paper's on a GPU; on the CPU a network a
 * quarter as wide (about 8× faster per step) and fewer epochs, so that a run takes minutes.
 */
export const DEVICE_DEFAULTS: Record<DeviceClass, Pick<TrainConfig, 'width' | 'epochs'>> = {
  gpu: { width: 64, epochs: 200 },
  cpu: { width: 16, epochs: 30 },
};

/** The engine's defaults, with the CPU's width and epochs until the device is known. */
export const defaultConfig = (): TrainConfig => ({
  ...DEVICE_DEFAULTS.cpu,
  batch_size: 128,
  image_size: 32,
  dim: 128,
  tau: 0.1,
  lr: 0.03,
  momentum: 0.9,
  weight_decay: 5e-4,
  schedule: 'step',
  seed: 0,
  augment: { crop: true, color_jitter: true, grayscale: true, flip: true },
  method: 'spreadout',
  method_settings: { memory_momentum: 0.5, nce_noise: 4096, triplet_margin: 0.5 },
  negatives: 'all',
  positive: 'augmented',
  knn_k: 200,
  knn_sigma: 0.1,
  recall_k: [1, 2, 4, 8],
  precision: 'f32',
  augment_on: 'auto',
  device_data_mb: 1024,
  checkpoint_minutes: 10,
});

type NumberKey = { [K in keyof TrainConfig]-?: TrainConfig[K] extends number ? K : never }[keyof TrainConfig];

/** The smallest value each number setting may take, and whether it must be whole. */
export const LIMITS: Record<NumberKey, { min: number; whole: boolean }> = {
  epochs: { min: 1, whole: true },
  batch_size: { min: 2, whole: true },
  image_size: { min: 8, whole: true },
  width: { min: 1, whole: true },
  dim: { min: 2, whole: true },
  tau: { min: 0.01, whole: false },
  lr: { min: 0.0001, whole: false },
  momentum: { min: 0, whole: false },
  weight_decay: { min: 0, whole: false },
  seed: { min: 0, whole: true },
  knn_k: { min: 1, whole: true },
  knn_sigma: { min: 0.001, whole: false },
  checkpoint_minutes: { min: 0.1, whole: false },
  device_data_mb: { min: 0, whole: true },
};

/** The values each choice setting takes, spelt as the engine's serde names them. */
const CHOICES = {
  schedule: { step: true, cosine: true },
  method: { spreadout: true, npsoftmax: true, nce: true, exemplar: true, triplet: true, 'triplet-hard': true },
  negatives: { all: true, hardest_half: true, easiest_half: true },
  positive: { augmented: true, nearest: true },
  precision: { f32: true, f16: true },
  augment_on: { auto: true, device: true, cpu: true },
} satisfies { [K in 'schedule' | 'method' | 'negatives' | 'positive' | 'precision' | 'augment_on']: Record<NonNullable<TrainConfig[K]>, true> };

function isNumberKey(key: keyof TrainConfig): key is NumberKey {
  return Object.hasOwn(LIMITS, key);
}

/** Whether `value` is an acceptable value of setting `key`. */
export function validSetting(key: keyof TrainConfig, value: unknown): boolean {
  if (isNumberKey(key)) {
    const { min, whole } = LIMITS[key];
    return typeof value === 'number' && Number.isFinite(value) && value >= min && (!whole || Number.isInteger(value));
  }
  if (key === 'augment' || key === 'method_settings') {
    const fields = value as Record<string, unknown> | null;
    const expected = defaultConfig()[key] as unknown as Record<string, unknown>;
    return typeof fields === 'object' && fields !== null && Object.keys(expected).every((field) => typeof fields[field] === typeof expected[field]);
  }
  if (key === 'recall_k') return Array.isArray(value) && value.length > 0 && value.every((k) => Number.isInteger(k) && k >= 1);
  // A resumed run's rate cap belongs to that run (the engine keeps it in its run.json), never to
  // the settings a new run starts from.
  if (key === 'lr_cap') return false;
  return typeof value === 'string' && Object.hasOwn(CHOICES[key], value);
}

function validDevice(value: unknown): value is DeviceChoice {
  if (value === 'auto' || value === 'gpu' || value === 'cpu') return true;
  if (typeof value !== 'object' || value === null) return false;
  if ('remote' in value) {
    const target = value.remote as { address?: unknown; token_file?: unknown } | null;
    // Every kind the backend connects to; which token it sends is the backend's to decide.
    return typeof target?.address === 'string' && /^(wss?|iroh):\/\/./.test(target.address) && (typeof target.token_file === 'string' || target.token_file === null);
  }
  const adapter = (value as { adapter?: unknown }).adapter;
  return Number.isInteger(adapter) && (adapter as number) >= 0;
}

/**
 * Where the settings are kept. A new meaning of the stored value gets a new version in the key,
 * so no release misreads an older one.
 */
export const SETTINGS_KEY = 'spreadout.settings.v1';

interface Remembered {
  /** Only the settings the person set; defaults are not stored, so they can change. */
  config: Partial<TrainConfig>;
  device: DeviceChoice | null;
}

/** The remembered settings that are still valid: a corrupt or foreign value costs only itself. */
function recall(storage: Storage | null): Remembered {
  let stored: unknown = null;
  try {
    stored = JSON.parse(storage?.getItem(SETTINGS_KEY) ?? 'null');
  } catch {
    // Unreadable JSON: start from the defaults; the next choice overwrites it.
  }
  const { config, device } = (typeof stored === 'object' && stored !== null ? stored : {}) as { config?: unknown; device?: unknown };
  const settings = typeof config === 'object' && config !== null ? (config as Record<string, unknown>) : {};
  const keys = Object.keys(defaultConfig()).concat('method', 'precision') as (keyof TrainConfig)[];
  return {
    config: Object.fromEntries(keys.filter((key) => validSetting(key, settings[key])).map((key) => [key, settings[key]])),
    device: validDevice(device) ? device : null,
  };
}

/** The browser's local storage, or none where it is switched off (reading it then throws). */
function localStorageOrNone(): Storage | null {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

type Listener = (shared: Shared) => void;

export class Store {
  readonly shared: Shared;
  /** The settings the person set: they win over every default and are remembered. */
  private readonly chosen: Partial<TrainConfig>;
  private chosenDevice: DeviceChoice | null;
  private listeners = new Set<Listener>();

  constructor(private readonly storage: Storage | null = localStorageOrNone()) {
    const remembered = recall(storage);
    this.chosen = remembered.config;
    this.chosenDevice = remembered.device;
    this.shared = {
      folder: null,
      check: null,
      testDir: null,
      config: { ...defaultConfig(), ...remembered.config },
      device: remembered.device ?? 'auto',
      run: null,
    };
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Changes shared state without remembering it (a run's own settings, an opened folder). */
  update(change: Partial<Shared>): void {
    Object.assign(this.shared, change);
    for (const listener of this.listeners) listener(this.shared);
  }

  /** Settings the person set: applied, and remembered for the next launch. */
  choose(change: Partial<TrainConfig>): void {
    Object.assign(this.chosen, change);
    this.remember();
    this.update({ config: { ...this.shared.config, ...change } });
  }

  chooseDevice(device: DeviceChoice): void {
    this.chosenDevice = device;
    this.remember();
    this.update({ device });
  }

  /** Whether the person set `key` (then defaults leave it alone). */
  isChosen(key: keyof TrainConfig): boolean {
    return Object.hasOwn(this.chosen, key);
  }

  /** Forgets the person's value of `key` and applies `defaults` to it again. */
  forget(key: keyof TrainConfig, defaults: Partial<TrainConfig>): void {
    delete this.chosen[key];
    this.remember();
    this.applyDefaults(defaults);
  }

  /**
   * Puts back the settings a new run starts from: the person's, over `defaults` and the engine's.
   * A resumed run brings its own settings into `shared.config`; they must not outlive it.
   */
  restoreChosen(defaults: Partial<TrainConfig>): void {
    this.update({ config: { ...defaultConfig(), ...defaults, ...this.chosen } });
  }

  /** Applies `defaults` to every setting the person has not set. */
  applyDefaults(defaults: Partial<TrainConfig>): void {
    const unset = Object.entries(defaults).filter(([key]) => !this.isChosen(key as keyof TrainConfig));
    this.update({ config: { ...this.shared.config, ...Object.fromEntries(unset) } });
  }

  private remember(): void {
    try {
      this.storage?.setItem(SETTINGS_KEY, JSON.stringify({ config: this.chosen, device: this.chosenDevice }));
    } catch {
      // Storage full or switched off: the settings last for this session only.
    }
  }
}
