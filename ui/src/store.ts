// The state screens share: the open folder, the settings, the active run. Screens subscribe to
// what they draw; everything else stays inside each screen. The settings the person chose (and
// only those) are remembered between launches, so that defaults which depend on the device still
// apply to everything else. The defaults and limits are the engine's, sent at start-up.
import type { DeviceChoice, EpochMetrics, FolderCheck, FolderSummary, Limit, TrainConfig, TrainSettings } from './backend';

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
 * The settings whose default depends on the device: the engine's (the paper's) on a GPU; on the
 * CPU a network a quarter as wide (about 8× faster per step) and fewer epochs, so that a run
 * takes minutes.
 */
export type DeviceDefaults = Record<DeviceClass, Pick<TrainConfig, 'width' | 'epochs'>>;

/** Each kind of device's width and epochs, the GPU's from the engine's `defaults`. */
export function deviceDefaults({ width, epochs }: TrainConfig): DeviceDefaults {
  return { gpu: { width, epochs }, cpu: { width: 16, epochs: 30 } };
}

/** The engine's defaults, with the CPU's width and epochs until the device is known. */
function startingConfig(settings: TrainSettings): TrainConfig {
  return { ...settings.defaults, ...deviceDefaults(settings.defaults).cpu };
}

/** The number settings, whose limits the engine sends. */
type NumberKey = keyof TrainSettings['limits'];

/** The values each choice setting takes, spelt as the engine's serde names them. */
const CHOICES = {
  schedule: { step: true, cosine: true },
  method: { spreadout: true, npsoftmax: true, nce: true, exemplar: true, triplet: true, 'triplet-hard': true },
  negatives: { all: true, hardest_half: true, easiest_half: true },
  positive: { augmented: true, nearest: true },
  precision: { f32: true, f16: true },
  augment_on: { auto: true, device: true, cpu: true },
} satisfies { [K in 'schedule' | 'method' | 'negatives' | 'positive' | 'precision' | 'augment_on']: Record<NonNullable<TrainConfig[K]>, true> };

/** Whether `value` is within `limit`. */
function withinLimit({ min, inclusive, whole }: Limit, value: unknown): boolean {
  return typeof value === 'number' && Number.isFinite(value) && (inclusive ? value >= min : value > min) && (!whole || Number.isInteger(value));
}

/**
 * Whether `key` is a number setting. What is left once they are out must be a choice setting
 * (`CHOICES`), so the compiler finds a number setting the engine sent no limit for.
 */
function isNumberKey(settings: TrainSettings, key: keyof TrainConfig): key is NumberKey {
  return Object.hasOwn(settings.limits, key);
}

/** Whether `value` is an acceptable value of setting `key`, by the engine's `settings`. */
export function validSetting(settings: TrainSettings, key: keyof TrainConfig, value: unknown): boolean {
  if (isNumberKey(settings, key)) return withinLimit(settings.limits[key], value);
  if (key === 'augment' || key === 'method_settings') {
    const fields = value as Record<string, unknown> | null;
    const expected = settings.defaults[key] as unknown as Record<string, unknown>;
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
function recall(settings: TrainSettings, storage: Storage | null): Remembered {
  let stored: unknown = null;
  try {
    stored = JSON.parse(storage?.getItem(SETTINGS_KEY) ?? 'null');
  } catch {
    // Unreadable JSON: start from the defaults; the next choice overwrites it.
  }
  const { config, device } = (typeof stored === 'object' && stored !== null ? stored : {}) as { config?: unknown; device?: unknown };
  const chosen = typeof config === 'object' && config !== null ? (config as Record<string, unknown>) : {};
  const keys = Object.keys(settings.defaults).concat('method', 'precision') as (keyof TrainConfig)[];
  return {
    config: Object.fromEntries(keys.filter((key) => validSetting(settings, key, chosen[key])).map((key) => [key, chosen[key]])),
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

  /** `settings`: the engine's defaults, limits and methods, as the backend sent them. */
  constructor(
    readonly settings: TrainSettings,
    private readonly storage: Storage | null = localStorageOrNone(),
  ) {
    const remembered = recall(settings, storage);
    this.chosen = remembered.config;
    this.chosenDevice = remembered.device;
    this.shared = {
      folder: null,
      check: null,
      testDir: null,
      config: { ...startingConfig(settings), ...remembered.config },
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
    this.update({ config: { ...startingConfig(this.settings), ...defaults, ...this.chosen } });
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
