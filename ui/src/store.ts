// The state screens share: the open folder, the settings, the active run. Screens subscribe to
// what they draw; everything else stays inside each screen.
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
  /** Labelled folder scored each epoch (the demo's test split), if any. */
  testDir: string | null;
  config: TrainConfig;
  device: DeviceChoice;
  run: RunView | null;
}

export const defaultConfig = (): TrainConfig => ({
  epochs: 12,
  batch_size: 32,
  image_size: 32,
  width: 8,
  dim: 128,
  tau: 0.1,
  lr: 0.03,
  momentum: 0.9,
  weight_decay: 5e-4,
  schedule: 'step',
  seed: 0,
  augment: { crop: true, color_jitter: true, grayscale: true, flip: true },
  negatives: 'all',
  knn_k: 200,
  knn_sigma: 0.1,
});

type Listener = (shared: Shared) => void;

export class Store {
  readonly shared: Shared = {
    folder: null,
    check: null,
    testDir: null,
    config: defaultConfig(),
    device: 'auto',
    run: null,
  };
  private listeners = new Set<Listener>();

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  update(change: Partial<Shared>): void {
    Object.assign(this.shared, change);
    for (const listener of this.listeners) listener(this.shared);
  }
}
