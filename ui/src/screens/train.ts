// Train screen: settings with one-line explanations, device picker, start/pause/resume/stop, and
// live feedback (progress, throughput, ETA, loss curve, kNN curve, similarity histogram, probe
// neighbours) from the run's event stream.
import { h, replace } from '../dom';
import { CurvePlot, HistogramPlot } from '../components/charts';
import { neighbourStrip } from '../components/neighbours';
import { count, duration, eta, percent, rate } from '../format';
import type { Adapter, DeviceChoice, Devices, EpochMetrics, Method, RunInfo, TrainConfig, TrainEvent } from '../backend';
import { Notices, type Context, type Screen } from './screen';

type NumberKey = 'width' | 'dim' | 'image_size' | 'batch_size' | 'epochs' | 'tau' | 'lr';

const FIELDS: { key: NumberKey; label: string; explain: string; min: number; step: number }[] = [
  { key: 'epochs', label: 'Epochs', explain: 'passes over all images; the paper trains 200, kNN is already useful after a few', min: 1, step: 1 },
  { key: 'batch_size', label: 'Batch size', explain: 'images per step (m); each brings two views, and every other image is a negative', min: 2, step: 1 },
  { key: 'image_size', label: 'Image size', explain: 'training resolution in pixels; 32 for CIFAR-like images, 96–224 for photos', min: 8, step: 8 },
  { key: 'width', label: 'Network width', explain: 'ResNet-18 base channels: 64 as in the paper, 16 or 8 train many times faster', min: 1, step: 1 },
  { key: 'dim', label: 'Embedding size', explain: 'length of each image\'s feature vector (128 in the paper)', min: 2, step: 1 },
  { key: 'tau', label: 'Temperature τ', explain: 'sharpness of the softmax over instances; the paper uses 0.1', min: 0.01, step: 0.01 },
  { key: 'lr', label: 'Learning rate', explain: 'SGD step size (momentum 0.9, weight decay 5e-4)', min: 0.0001, step: 0.001 },
];

/** Each method as the selector offers it, with the temperature it was published with. */
const METHODS: { value: Method; label: string; tau: number }[] = [
  { value: 'spreadout', label: 'Spread-out (Ye et al. 2019, the paper)', tau: 0.1 },
  { value: 'npsoftmax', label: 'NPSoftmax: memory bank, softmax over all images (Wu et al. 2018)', tau: 0.07 },
  { value: 'nce', label: 'NCE: memory bank, 4096 noise samples (Wu et al. 2018)', tau: 0.07 },
  { value: 'exemplar', label: 'Exemplar CNN: one classifier output per image (Dosovitskiy et al. 2014)', tau: 0.1 },
  { value: 'triplet', label: 'Triplet loss, margin 0.5, all in-batch negatives', tau: 0.1 },
  { value: 'triplet-hard', label: 'Triplet loss, margin 0.5, hardest in-batch negative', tau: 0.1 },
];

const PRESETS: Record<string, Partial<TrainConfig>> = {
  paper: { width: 64, batch_size: 128, epochs: 200, image_size: 32 },
  fast: { width: 16, batch_size: 128, epochs: 30, image_size: 32 },
  tiny: { width: 8, batch_size: 32, epochs: 12, image_size: 32 },
};

const PHASES: Record<string, string> = {
  loading_data: 'Loading images',
  warming_up: 'Warming up: compiling and tuning GPU kernels. The first steps are slow; this is not a hang.',
  training: 'Training',
  evaluating: 'Evaluating: embedding the images and scoring neighbours',
};

export class TrainScreen implements Screen {
  readonly id = 'train';
  readonly title = 'Train';
  readonly element: HTMLElement;
  private readonly notices = new Notices();
  private readonly form = h('form', { class: 'settings', onsubmit: (event: Event) => event.preventDefault() });
  private readonly deviceSelect = h('select', { id: 'device', name: 'device' });
  private readonly deviceNote = h('small', { class: 'device-note' });
  private readonly buttons = {
    start: h('button', { id: 'start', onclick: () => void this.start() }, 'Start training'),
    pause: h('button', { id: 'pause', class: 'secondary', disabled: true, onclick: () => void this.pause() }, 'Pause'),
    stop: h('button', { id: 'stop', class: 'danger', disabled: true, onclick: () => void this.stop() }, 'Stop'),
  };
  private readonly status = h('p', { id: 'train-status', class: 'status' }, 'Not started.');
  private readonly bar = h('progress', { id: 'train-progress', max: 1, value: 0 });
  private readonly numbers = h('div', { id: 'train-numbers', class: 'numbers' });
  readonly loss = new CurvePlot('Training loss (Eq. 7) per step', { x: 'step', y: 'loss' }, [{ label: 'loss', colour: '#264653' }]);
  readonly knn = new CurvePlot('kNN accuracy per epoch (paper Fig. 3)', { x: 'epoch', y: 'top-1 %', yMin: 0, yMax: 100 }, [{ label: 'kNN', colour: '#2a9d8f' }]);
  readonly histogram = new HistogramPlot('Similarity: positive vs negative pairs (latest epoch)');
  private readonly probes = h('div', { id: 'probes', class: 'probes' });
  private devices: Devices | null = null;
  /** Pretrained weights the next run starts from; random initialisation when null. */
  private initWeights: string | null = null;
  private readonly initNote = h('small', { id: 'init-weights' }, 'random initialisation (as in the paper\'s CIFAR experiments)');
  private paused = false;
  private run: { totalSteps: number; stepsPerEpoch: number; epochs: number; firstEpoch: number; stepSeconds: number } | null = null;

  constructor(private readonly context: Context) {
    this.buildForm();
    this.element = h(
      'section',
      { class: 'screen train' },
      this.notices.element,
      h('div', { class: 'train-layout' }, this.form, h('div', { class: 'live' }, h('div', { class: 'controls' }, this.buttons.start, this.buttons.pause, this.buttons.stop), this.status, this.bar, this.numbers, h('div', { class: 'plots' }, this.loss.element, this.knn.element, this.histogram.element), h('h3', {}, 'Probe images and their 5 nearest neighbours, refreshed every epoch'), this.probes)),
    );
    void this.loadDevices();
  }

  private buildForm(): void {
    const { store } = this.context;
    const preset = h(
      'select',
      {
        id: 'preset',
        onchange: (event: Event) => {
          const chosen = PRESETS[(event.target as HTMLSelectElement).value];
          if (chosen) {
            store.update({ config: { ...store.shared.config, ...chosen } });
            this.syncForm();
          }
        },
      },
      h('option', { value: '' }, 'Custom'),
      h('option', { value: 'paper' }, 'Paper: width 64, batch 128, 200 epochs (GPU)'),
      h('option', { value: 'fast' }, 'Fast: width 16, batch 128, 30 epochs'),
      h('option', { value: 'tiny' }, 'Tiny: width 8, batch 32, 12 epochs (demo, CPU)'),
    );
    const rows = FIELDS.map(({ key, label, explain, min, step }) =>
      h(
        'label',
        { class: 'field' },
        h('span', {}, label),
        h('input', {
          type: 'number',
          name: key,
          min: String(min),
          step: String(step),
          value: String(store.shared.config[key]),
          onchange: (event: Event) => {
            const value = Number((event.target as HTMLInputElement).value);
            if (Number.isFinite(value) && value >= min) store.update({ config: { ...store.shared.config, [key]: value } });
            else this.notices.warn(`${label} must be a number of at least ${min}.`);
            preset.value = '';
          },
        }),
        h('small', {}, explain),
      ),
    );
    const schedule = h(
      'select',
      { name: 'schedule', onchange: (event: Event) => store.update({ config: { ...store.shared.config, schedule: (event.target as HTMLSelectElement).value as TrainConfig['schedule'] } }) },
      h('option', { value: 'step' }, 'Steps (×0.1 at 60 %, ×0.01 at 80 %)'),
      h('option', { value: 'cosine' }, 'Cosine decay to zero'),
    );
    const precision = h(
      'select',
      { name: 'precision', onchange: (event: Event) => store.update({ config: { ...store.shared.config, precision: (event.target as HTMLSelectElement).value as 'f32' | 'f16' } }) },
      h('option', { value: 'f32' }, 'f32 (every device)'),
      h('option', { value: 'f16' }, 'f16 convolutions (GPUs with shader-f16; weights and loss stay f32)'),
    );
    const method = h(
      'select',
      {
        name: 'method',
        onchange: (event: Event) => {
          const chosen = METHODS.find((m) => m.value === (event.target as HTMLSelectElement).value) ?? METHODS[0];
          // A method change brings its published temperature; the τ field can still override it.
          store.update({ config: { ...store.shared.config, method: chosen.value, tau: chosen.tau } });
          this.syncForm();
        },
      },
      ...METHODS.map((m) => h('option', { value: m.value }, m.label)),
    );
    this.deviceSelect.addEventListener('change', () => store.update({ device: parseDevice(this.deviceSelect.value) }));
    replace(
      this.form,
      h('label', { class: 'field' }, h('span', {}, 'Preset'), preset, h('small', {}, 'starting points; every value below can be changed')),
      h('label', { class: 'field' }, h('span', {}, 'Method'), method, h('small', {}, 'the paper\'s method, or a baseline it is compared with, trained the same way on the same data')),
      ...rows,
      h('label', { class: 'field' }, h('span', {}, 'Learning-rate schedule'), schedule, h('small', {}, 'how the rate decays over the run')),
      h('label', { class: 'field' }, h('span', {}, 'Precision'), precision, h('small', {}, 'f16 uses the GPU\'s 16-bit matrix units; refused where the device has none')),
      h('label', { class: 'field' }, h('span', {}, 'Device'), this.deviceSelect, this.deviceNote),
      h(
        'div',
        { class: 'field' },
        h('span', {}, 'Start from'),
        h('button', { type: 'button', class: 'secondary', id: 'pick-weights', onclick: () => void this.pickWeights() }, 'Start from weights…'),
        h('button', { type: 'button', class: 'secondary', id: 'clear-weights', onclick: () => this.setInitWeights(null) }, 'Random'),
        this.initNote,
      ),
    );
  }

  private async pickWeights(): Promise<void> {
    const file = await this.context.backend.pickWeights();
    if (file) this.setInitWeights(file);
  }

  private setInitWeights(file: string | null): void {
    this.initWeights = file;
    this.initNote.textContent = file
      ? `${file}: torchvision ResNet-18 weights for the backbone, a new embedding head (needs width 64 and an image size above 64)`
      : 'random initialisation (as in the paper\'s CIFAR experiments)';
  }

  /** Puts the store's settings back into the form (after a preset or a resumed run). */
  syncForm(): void {
    const { config } = this.context.store.shared;
    for (const { key } of FIELDS) {
      const input = this.form.querySelector<HTMLInputElement>(`input[name="${key}"]`);
      if (input) input.value = String(config[key]);
    }
    const schedule = this.form.querySelector<HTMLSelectElement>('select[name="schedule"]');
    if (schedule) schedule.value = config.schedule;
    const precision = this.form.querySelector<HTMLSelectElement>('select[name="precision"]');
    if (precision) precision.value = config.precision ?? 'f32';
    const method = this.form.querySelector<HTMLSelectElement>('select[name="method"]');
    if (method) method.value = config.method ?? 'spreadout';
  }

  private async loadDevices(): Promise<void> {
    replace(this.deviceSelect, h('option', { value: 'auto' }, 'Looking for GPUs…'));
    try {
      this.devices = await this.context.backend.listDevices();
    } catch (error) {
      this.notices.error('Could not list graphics adapters', error);
    }
    const devices = this.devices;
    replace(
      this.deviceSelect,
      h('option', { value: 'auto' }, `Automatic: ${devices?.auto_name ?? 'best available'}`),
      ...(devices?.adapters ?? []).map((adapter) =>
        h('option', { value: String(adapter.index) }, adapterLabel(adapter)),
      ),
      h('option', { value: 'cpu' }, 'CPU (Burn flex backend)'),
    );
    replace(this.deviceNote, devices?.auto_notice ?? 'training runs on the GPU through wgpu (Vulkan, Metal or DX12)');
  }

  /** Continues an interrupted run (also offered on the Export screen). */
  async resume(run: RunInfo): Promise<void> {
    const { backend, store } = this.context;
    this.resetLive(run.metrics);
    store.update({ run: { dir: run.dir, trainDir: run.record.train_dir, metrics: [...run.metrics], status: 'running', labels: run.record.labels }, config: run.record.config });
    this.syncForm();
    this.setRunning(true);
    this.context.go('train');
    try {
      await backend.resumeTraining(run.dir, null, store.shared.device, (event) => this.onEvent(event));
    } catch (error) {
      this.setRunning(false);
      this.notices.error('Could not resume', error);
    }
  }

  async start(): Promise<void> {
    const { backend, store } = this.context;
    const folder = store.shared.folder;
    if (!folder) {
      this.notices.warn('Open a folder on the Data screen first.');
      return;
    }
    this.notices.clear();
    this.resetLive([]);
    this.setRunning(true);
    try {
      const dir = await backend.startTraining(
        { config: store.shared.config, trainDir: folder.root, evalTestDir: store.shared.testDir, device: store.shared.device, initWeights: this.initWeights },
        (event) => this.onEvent(event),
      );
      store.update({ run: { dir, trainDir: folder.root, metrics: [], status: 'running', labels: folder.label_names } });
    } catch (error) {
      this.setRunning(false);
      this.notices.error('Could not start training', error);
    }
  }

  private async pause(): Promise<void> {
    const { backend } = this.context;
    try {
      if (this.paused) await backend.resumePausedTraining();
      else await backend.pauseTraining();
      this.paused = !this.paused;
      this.buttons.pause.textContent = this.paused ? 'Resume' : 'Pause';
      replace(this.status, this.paused ? 'Paused: the run waits before its next step.' : 'Training');
      this.setStatus(this.paused ? 'paused' : 'running');
    } catch (error) {
      this.notices.error('Could not pause', error);
    }
  }

  private async stop(): Promise<void> {
    try {
      await this.context.backend.stopTraining();
      replace(this.status, 'Stopping after the current step; the last finished epoch stays saved…');
    } catch (error) {
      this.notices.error('Could not stop', error);
    }
  }

  private setRunning(running: boolean): void {
    this.buttons.start.disabled = running;
    this.buttons.pause.disabled = !running;
    this.buttons.stop.disabled = !running;
    this.paused = false;
    this.buttons.pause.textContent = 'Pause';
    for (const input of this.form.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input, select')) input.disabled = running;
  }

  private setStatus(status: 'running' | 'paused' | 'finished' | 'stopped' | 'failed'): void {
    const run = this.context.store.shared.run;
    if (run) this.context.store.update({ run: { ...run, status } });
  }

  private resetLive(metrics: EpochMetrics[]): void {
    this.run = null;
    this.loss.set(0, []);
    this.knn.set(0, metrics.filter((m) => m.knn_accuracy !== null).map((m) => ({ x: m.epoch, y: m.knn_accuracy as number })));
    replace(this.probes);
    replace(this.numbers);
    this.bar.value = 0;
    const last = metrics[metrics.length - 1];
    if (last) this.showEpoch(last);
  }

  /** Applies one event of the run to the screen. */
  onEvent(event: TrainEvent): void {
    switch (event.type) {
      case 'phase':
        if (!this.paused) replace(this.status, PHASES[event.phase] ?? event.phase);
        this.status.dataset.phase = event.phase;
        break;
      case 'loading':
        replace(this.status, `Loading images: ${count(event.done)} / ${count(event.total)}`);
        this.bar.max = event.total;
        this.bar.value = event.done;
        break;
      case 'started':
        this.run = { totalSteps: event.epochs * event.steps_per_epoch, stepsPerEpoch: event.steps_per_epoch, epochs: event.epochs, firstEpoch: event.first_epoch, stepSeconds: NaN };
        this.bar.max = this.run.totalSteps;
        this.bar.value = (event.first_epoch - 1) * event.steps_per_epoch;
        replace(this.numbers, `${count(event.images)} images on ${event.device}, ${event.steps_per_epoch} steps per epoch`);
        break;
      case 'warning':
        this.notices.warn(event.message);
        break;
      case 'step': {
        if (!this.run) break;
        const done = (event.epoch - 1) * event.steps_per_epoch + event.step;
        this.bar.value = done;
        this.loss.add(0, done, event.loss);
        const seconds = (2 * this.context.store.shared.config.batch_size) / event.images_per_sec;
        this.run.stepSeconds = Number.isFinite(this.run.stepSeconds) ? 0.8 * this.run.stepSeconds + 0.2 * seconds : seconds;
        replace(
          this.numbers,
          h('span', {}, `epoch ${event.epoch} / ${this.run.epochs}`),
          h('span', {}, `step ${event.step} / ${event.steps_per_epoch}`),
          h('span', { id: 'throughput' }, rate(event.images_per_sec)),
          h('span', { id: 'eta' }, `ETA ${duration(eta(event.epoch, event.step, event.steps_per_epoch, this.run.epochs, this.run.stepSeconds))}`),
          h('span', {}, `loss ${event.loss.toFixed(4)}`),
        );
        break;
      }
      case 'epoch': {
        const { type: _type, ...metrics } = event;
        const run = this.context.store.shared.run;
        if (run) this.context.store.update({ run: { ...run, metrics: [...run.metrics, metrics] } });
        this.showEpoch(metrics);
        break;
      }
      case 'finished':
        this.setRunning(false);
        this.setStatus(event.cancelled ? 'stopped' : 'finished');
        replace(this.status, event.cancelled ? `Stopped after ${event.epochs_completed} epoch(s); resume it any time from the Export screen.` : `Finished: ${event.epochs_completed} epochs. Explore what the model learned, or export it.`);
        this.status.dataset.phase = 'finished';
        break;
      case 'failed':
        this.setRunning(false);
        this.setStatus('failed');
        replace(this.status, 'Failed.');
        this.status.dataset.phase = 'failed';
        this.notices.error('Training stopped', { code: 'train', message: event.message });
        break;
    }
  }

  private showEpoch(metrics: EpochMetrics): void {
    if (metrics.knn_accuracy !== null) this.knn.add(0, metrics.epoch, metrics.knn_accuracy);
    if (metrics.similarity) {
      const labelled = metrics.similarity.kind === 'SameClassNeighbours';
      this.histogram.set([
        { label: labelled ? 'same-label neighbours' : 'two views of one image', histogram: metrics.similarity.positive },
        { label: labelled ? 'other-label neighbours' : 'different images', histogram: metrics.similarity.negative },
      ]);
    }
    const summary = h(
      'p',
      { class: 'epoch-summary', id: 'epoch-summary' },
      `Epoch ${metrics.epoch}: loss ${metrics.loss.toFixed(4)}, kNN ${percent(metrics.knn_accuracy)}`,
      metrics.recall_at ? `, R@1 ${percent(metrics.recall_at[0]?.[1])}` : '',
      metrics.nmi !== null ? `, NMI ${metrics.nmi.toFixed(3)}` : '',
      metrics.scored_on === 'test_folder' && metrics.knn_accuracy === null ? ' (R@1 and NMI within the test folder: its classes are unseen)' : '',
      `, ${rate(metrics.images_per_sec)}, waited for data ${percent(100 * (metrics.data_wait_fraction ?? 0))} of the time, ${duration(metrics.seconds)}`,
    );
    const thumbnailUrl = (path: string) => this.context.backend.thumbnailUrl(path);
    replace(this.probes, summary, ...metrics.probes.map((probe) => neighbourStrip(probe.query, probe.neighbours, { thumbnailUrl })));
  }
}

function parseDevice(value: string): DeviceChoice {
  if (value === 'auto' || value === 'cpu' || value === 'gpu') return value;
  return { adapter: Number(value) };
}

/** One line per adapter: name, API, kind, and what Burn compiles for it. */
export function adapterLabel(adapter: Adapter): string {
  const kind = adapter.kind === 'software' ? 'software rasteriser: very slow' : adapter.kind;
  const compute = adapter.compute;
  const fast = compute === null
    ? 'could not be opened'
    : `${compute.compiler}, ${compute.matrix_units.length > 0 ? `matrix units ${compute.matrix_units.join(' ')}` : 'no matrix units'}${compute.f16 ? ', f16' : ''}`;
  return `${adapter.name} (${adapter.api}, ${kind}; ${fast})`;
}
