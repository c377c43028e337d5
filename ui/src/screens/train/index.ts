// Train screen: settings with one-line explanations (remembered between launches, with defaults
// that fit the chosen device), device picker, start/pause/resume/stop, and live feedback
// (progress, throughput, ETA, loss curve, kNN curve, similarity histogram, probe neighbours) from
// the run's event stream. The defaults, limits and each method's temperature are the engine's,
// from the store.
import { h, replace } from '../../dom';
import { CurvePlot, HistogramPlot, paletteColor } from '../../components/charts';
import { neighborStrip } from '../../components/neighbors';
import { bytes, count, duration, eta, percent, rate } from '../../format';
import type { EpochMetrics, Method, RunInfo, TrainConfig, TrainEvent } from '../../backend';
import { deviceDefaults, validSetting, type DeviceClass, type DeviceDefaults } from '../../store';
import { DevicePicker, viewsBuiltOn } from './devices';
import { failureMessage, offerChangedFolder } from './failures';
import { Notices, type Context, type Screen } from '../../screen';

type NumberKey = 'width' | 'dim' | 'image_size' | 'batch_size' | 'epochs' | 'tau' | 'lr' | 'seed' | 'knn_k';

const FIELDS: Record<NumberKey, { label: string; explain: string; step: number }> = {
  epochs: { label: 'Epochs', explain: 'passes over all images; kNN is already useful after a few', step: 1 },
  batch_size: { label: 'Batch size', explain: 'images per step (m); each brings two views, and every other image is a negative', step: 1 },
  image_size: { label: 'Image size', explain: 'training resolution in pixels; 32 for CIFAR-like images, 96–224 for photos', step: 8 },
  width: { label: 'Network width', explain: 'ResNet-18 base channels; narrower networks train many times faster', step: 1 },
  dim: { label: 'Embedding size', explain: 'length of each image\'s feature vector (128 in the paper)', step: 1 },
  tau: { label: 'Temperature τ', explain: 'sharpness of the softmax over instances; the paper uses 0.1', step: 0.01 },
  lr: { label: 'Learning rate', explain: 'SGD step size (momentum 0.9, weight decay 5e-4)', step: 0.001 },
  seed: { label: 'Seed', explain: 'of every random choice (initial weights, batch order, augmentations): the same seed repeats a run', step: 1 },
  knn_k: { label: 'kNN neighbours k', explain: 'training images that vote on each test image\'s label (200 in the paper)', step: 1 },
};

/** Why each device-dependent default is what it is, shown under its field. */
function deviceReasons({ gpu, cpu }: DeviceDefaults): Record<DeviceClass, Record<keyof DeviceDefaults['gpu'], string>> {
  return {
    gpu: { width: `GPU: width ${gpu.width}, as in the paper`, epochs: `GPU: ${gpu.epochs} epochs, as in the paper` },
    cpu: {
      width: `CPU: width ${cpu.width} trains ~8× faster; the paper uses ${gpu.width} on a GPU`,
      epochs: `CPU: ${cpu.epochs} epochs take minutes on the demo set instead of hours; the paper trains ${gpu.epochs} on a GPU`,
    },
  };
}

/** Each method as the selector offers it; the engine sends which there are, in its order. */
const METHOD_LABELS: Record<Method, string> = {
  spreadout: 'Spread-out (Ye et al. 2019, the paper)',
  npsoftmax: 'NPSoftmax: memory bank, softmax over all images (Wu et al. 2018)',
  nce: 'NCE: memory bank, 4096 noise samples (Wu et al. 2018)',
  exemplar: 'Exemplar CNN: one classifier output per image (Dosovitskiy et al. 2014)',
  triplet: 'Triplet loss, margin 0.5, all in-batch negatives',
  'triplet-hard': 'Triplet loss, margin 0.5, hardest in-batch negative',
};

/** The negatives of the paper's Table 8 ablation. */
const NEGATIVES: { value: TrainConfig['negatives']; label: string }[] = [
  { value: 'all', label: 'All other images in the batch (the paper)' },
  { value: 'hardest_half', label: 'Hardest half: the more similar half of them' },
  { value: 'easiest_half', label: 'Easiest half: the less similar half of them' },
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

const NO_TEST_FOLDER = 'none: Recall@K and NMI are scored on the training folder\'s own labels; kNN accuracy needs a test folder with the same class subfolders';

export class TrainScreen implements Screen {
  readonly id = 'train';
  readonly title = 'Train';
  readonly element: HTMLElement;
  private readonly notices = new Notices();
  private readonly form = h('form', { class: 'settings', 'aria-label': 'Training settings', onsubmit: (event: Event) => event.preventDefault() });
  private readonly picker: DevicePicker;
  private readonly negatives = h('select', { name: 'negatives' }, ...NEGATIVES.map((n) => h('option', { value: n.value }, n.label)));
  /** Under width and epochs: the device's default and why. */
  private readonly defaultNotes = {
    width: h('small', { id: 'width-default', class: 'device-default' }),
    epochs: h('small', { id: 'epochs-default', class: 'device-default' }),
  };
  private readonly buttons = {
    start: h('button', { id: 'start', onclick: () => void this.start() }, 'Start training'),
    pause: h('button', { id: 'pause', class: 'secondary', disabled: true, onclick: () => void this.pause() }, 'Pause'),
    stop: h('button', { id: 'stop', class: 'danger', disabled: true, onclick: () => void this.stop() }, 'Stop'),
  };
  private readonly status = h('p', { id: 'train-status', class: 'status', role: 'status' }, 'Not started.');
  private readonly bar = h('progress', { id: 'train-progress', max: 1, value: 0, 'aria-label': 'Training progress' });
  private readonly numbers = h('div', { id: 'train-numbers', class: 'numbers' });
  readonly loss = new CurvePlot('Training loss (Eq. 7) per step', { x: 'step', y: 'loss' }, [{ label: 'loss', color: paletteColor(0) }]);
  readonly knn = new CurvePlot('kNN accuracy per epoch (paper Fig. 3)', { x: 'epoch', y: 'top-1 %', yMin: 0, yMax: 100 }, [{ label: 'kNN', color: paletteColor(2) }]);
  readonly histogram = new HistogramPlot('Similarity: positive vs negative pairs (latest epoch)');
  private readonly probes = h('div', { id: 'probes', class: 'probes' });
  /** On a served device, the network's bytes per step, as the run last reported them. */
  private traffic: { sent: number; received: number } | null = null;
  /** Pretrained weights the next run starts from; random initialisation when null. */
  private initWeights: string | null = null;
  private readonly initNote = h('small', { id: 'init-weights' }, 'random initialisation (as in the paper\'s CIFAR experiments)');
  private readonly testDirNote = h('small', { id: 'test-dir' });
  private shownTestDir: string | null = null;
  private running = false;
  /** Resumes the screen's run on its folder as it is now; null when the run was not resumed. */
  private continueChanged: (() => void) | null = null;
  private paused = false;
  /** Set once the app is closing: the run is stopping for it, and no run may start. */
  private appClosing = false;
  private run: { totalSteps: number; stepsPerEpoch: number; epochs: number; firstEpoch: number; stepSeconds: number } | null = null;
  /** Width and epochs on each kind of device, from the engine's defaults. */
  private readonly deviceDefaults: DeviceDefaults;

  constructor(private readonly context: Context) {
    this.deviceDefaults = deviceDefaults(context.store.settings.defaults);
    this.picker = new DevicePicker(context, this.notices, () => this.applyDeviceDefaults());
    this.buildForm();
    this.element = h(
      'section',
      { class: 'screen train' },
      this.notices.element,
      h('div', { class: 'train-layout' }, this.form, h('div', { class: 'live' }, h('div', { class: 'controls' }, this.buttons.start, this.buttons.pause, this.buttons.stop), this.status, this.bar, this.numbers, h('div', { class: 'plots' }, this.loss.element, this.knn.element, this.histogram.element), h('h3', {}, 'Probe images and their 5 nearest neighbours, refreshed every epoch'), this.probes)),
    );
    // The Data screen sets the test folder with the training folder (the demo brings one).
    context.store.subscribe(({ testDir }) => {
      if (testDir !== this.shownTestDir) this.renderTestDir();
    });
    this.renderTestDir();
    this.syncForm();
    void this.picker.load();
  }

  private numberField(key: NumberKey, preset: HTMLSelectElement, note?: HTMLElement): HTMLElement {
    const { store } = this.context;
    const { label, explain, step } = FIELDS[key];
    const { settings } = store;
    const { min, inclusive, whole } = settings.limits[key];
    const input = h('input', {
      type: 'number',
      name: key,
      min: String(min),
      step: String(step),
      onchange: () => {
        const value = Number(input.value);
        if (input.value !== '' && validSetting(settings, key, value)) {
          store.choose({ [key]: value });
          preset.value = '';
        } else {
          this.notices.warn(`${label} must be ${whole ? 'a whole number' : 'a number'} ${inclusive ? 'of at least' : 'above'} ${min}.`);
        }
        this.syncForm();
      },
    });
    return h('label', { class: 'field' }, h('span', {}, label), input, h('small', {}, explain), note);
  }

  private choiceField(name: string, label: string, select: HTMLSelectElement, explain: string | null, note?: HTMLElement): HTMLElement {
    select.name = name;
    return h('label', { class: 'field' }, h('span', {}, label), select, explain ? h('small', {}, explain) : null, note);
  }

  private buildForm(): void {
    const { backend, store } = this.context;
    const preset = h(
      'select',
      {
        id: 'preset',
        onchange: (event: Event) => {
          const chosen = PRESETS[(event.target as HTMLSelectElement).value];
          if (chosen) {
            store.choose(chosen);
            this.syncForm();
          }
        },
      },
      h('option', { value: '' }, 'Custom'),
      h('option', { value: 'paper' }, 'Paper: width 64, batch 128, 200 epochs (GPU)'),
      h('option', { value: 'fast' }, 'Fast: width 16, batch 128, 30 epochs'),
      h('option', { value: 'tiny' }, 'Tiny: width 8, batch 32, 12 epochs (demo, CPU)'),
    );
    const select = <T extends string>(options: { value: T; label: string }[], onchange: (value: T) => void) =>
      h('select', { onchange: (event: Event) => onchange((event.target as HTMLSelectElement).value as T) }, ...options.map((o) => h('option', { value: o.value }, o.label)));
    const schedule = select<TrainConfig['schedule']>(
      [
        { value: 'step', label: 'Steps (×0.1 at 60 %, ×0.01 at 80 %)' },
        { value: 'cosine', label: 'Cosine decay to zero' },
      ],
      (value) => store.choose({ schedule: value }),
    );
    const precision = select<'f32' | 'f16'>(
      [
        { value: 'f32', label: 'f32 (every device)' },
        { value: 'f16', label: 'f16 convolutions (GPUs with shader-f16; weights and loss stay f32)' },
      ],
      (value) => store.choose({ precision: value }),
    );
    const augmentOn = select<TrainConfig['augment_on']>(
      [
        { value: 'auto', label: 'Automatic (the GPU when training on one, here or served)' },
        { value: 'device', label: 'On the device (a GPU\'s spreadout-shaders; a server builds them from the images kept there)' },
        { value: 'cpu', label: 'On the CPU' },
      ],
      (value) => store.choose({ augment_on: value }),
    );
    const methods = store.settings.methods;
    const method = select<Method>(methods.map((m) => ({ value: m.method, label: METHOD_LABELS[m.method] })), (value) => {
      const chosen = methods.find((m) => m.method === value) ?? methods[0];
      // A method change brings its published temperature; the τ field can still override it.
      // Hard and easy negatives are an ablation of the paper's method only.
      const negatives = chosen.method !== 'spreadout' && store.shared.config.negatives !== 'all' ? { negatives: 'all' as const } : {};
      store.choose({ method: chosen.method, tau: chosen.tau, ...negatives });
      this.syncForm();
    });
    this.negatives.addEventListener('change', () => store.choose({ negatives: this.negatives.value as TrainConfig['negatives'] }));
    replace(
      this.form,
      this.choiceField('preset', 'Preset', preset, 'starting points; every value below can be changed'),
      this.choiceField('method', 'Method', method, 'the paper\'s method, or a baseline it is compared with, trained the same way on the same data'),
      this.choiceField('device', 'Device', this.picker.select, null, this.picker.note),
      this.picker.panel.element,
      this.numberField('epochs', preset, this.defaultNotes.epochs),
      this.numberField('batch_size', preset),
      this.numberField('image_size', preset),
      this.numberField('width', preset, this.defaultNotes.width),
      this.numberField('dim', preset),
      this.numberField('tau', preset),
      this.numberField('lr', preset),
      this.choiceField('schedule', 'Learning-rate schedule', schedule, 'how the rate decays over the run'),
      this.choiceField('negatives', 'Negatives', this.negatives, 'which negatives enter the loss (paper Table 8); the spread-out method only'),
      this.numberField('seed', preset),
      this.choiceField('precision', 'Precision', precision, 'f16 uses the GPU\'s 16-bit matrix units; refused where the device has none'),
      this.choiceField('augment_on', 'Training views built', augmentOn, 'The same views either way; on the GPU the CPU only reads the images'),
      h(
        'div',
        { class: 'field', role: 'group', 'aria-labelledby': 'start-from-label' },
        h('span', { id: 'start-from-label' }, 'Start from'),
        h(
          'div',
          { class: 'field-buttons' },
          h('button', { type: 'button', class: 'secondary', id: 'pick-weights', onclick: () => void this.pickWeights() }, 'Start from weights…'),
          h('button', { type: 'button', class: 'secondary', id: 'clear-weights', onclick: () => this.setInitWeights(null) }, 'Random'),
        ),
        this.initNote,
      ),
      h(
        'div',
        { class: 'field', role: 'group', 'aria-labelledby': 'test-dir-label' },
        h('span', { id: 'test-dir-label' }, 'Test folder'),
        h(
          'div',
          { class: 'field-buttons' },
          h(
            'button',
            {
              type: 'button',
              class: 'secondary',
              id: 'pick-test-dir',
              onclick: async () => {
                const dir = await backend.pickFolder('Choose a labelled test folder (one subfolder per class)');
                if (dir) store.update({ testDir: dir });
              },
            },
            'Choose test folder…',
          ),
          h('button', { type: 'button', class: 'secondary', id: 'clear-test-dir', onclick: () => store.update({ testDir: null }) }, 'None'),
        ),
        this.testDirNote,
      ),
      this.numberField('knn_k', preset),
    );
  }

  private renderTestDir(): void {
    const { testDir } = this.context.store.shared;
    this.shownTestDir = testDir;
    this.testDirNote.textContent = testDir ? `${testDir}: scored after every epoch (kNN accuracy, Recall@K, NMI)` : NO_TEST_FOLDER;
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

  /** Puts the store's settings into the form (after a choice, a preset, a device or a resumed run). */
  syncForm(): void {
    const { config } = this.context.store.shared;
    for (const key of Object.keys(FIELDS) as NumberKey[]) {
      const input = this.form.querySelector<HTMLInputElement>(`input[name="${key}"]`);
      if (input) input.value = String(config[key]);
    }
    const selects: Record<string, string> = { schedule: config.schedule, precision: config.precision ?? 'f32', augment_on: config.augment_on ?? 'auto', method: config.method ?? 'spreadout', negatives: config.negatives };
    for (const [name, value] of Object.entries(selects)) {
      const select = this.form.querySelector<HTMLSelectElement>(`select[name="${name}"]`);
      if (select) select.value = value;
    }
    this.negatives.disabled = this.running || (config.method ?? 'spreadout') !== 'spreadout';
    this.renderDefaults();
  }

  /** Whether the chosen device is a GPU: 'auto' is one unless the backend says it falls back. */
  private deviceClass(): DeviceClass {
    return this.picker.deviceClass();
  }

  private applyDeviceDefaults(): void {
    this.context.store.applyDefaults(this.deviceDefaults[this.deviceClass()]);
    this.picker.renderNote();
    this.syncForm();
  }

  /** Under each device-dependent field: the device's default, why, and a way back to it. */
  private renderDefaults(): void {
    const { store } = this.context;
    const kind = this.deviceClass();
    const defaults = this.deviceDefaults[kind];
    const reasons = deviceReasons(this.deviceDefaults)[kind];
    for (const key of ['width', 'epochs'] as const) {
      const overridden = store.isChosen(key) && store.shared.config[key] !== defaults[key];
      replace(
        this.defaultNotes[key],
        reasons[key],
        overridden ? '; your value is kept. ' : null,
        overridden
          ? h(
              'button',
              {
                type: 'button',
                class: 'link',
                disabled: this.running,
                onclick: () => {
                  store.forget(key, defaults);
                  this.syncForm();
                },
              },
              `Use ${defaults[key]}`,
            )
          : null,
      );
    }
  }

  /**
   * Continues an interrupted run (also offered on the Export screen) on `device`; with
   * `acceptChangedFolder`, on its training folder as it is now. The screen becomes the run's
   * only once the backend has accepted it: a refusal (another run is training) leaves the live
   * run's charts, settings, Pause and Stop as they were.
   */
  async resume(run: RunInfo, device = this.context.store.shared.device, acceptChangedFolder = false): Promise<void> {
    const { backend, store } = this.context;
    this.context.go('train');
    try {
      await this.launch(
        (onEvent) => backend.resumeTraining(run.dir, null, device, acceptChangedFolder, onEvent),
        (resumed) => {
          this.notices.clear();
          if (resumed.complete) {
            replace(this.status, `This run is complete: ${resumed.epochs_completed} of ${resumed.epochs} epochs trained. Explore what it learned, or export it.`);
            return;
          }
          // What the engine changed from the run's record, each said once.
          for (const change of resumed.changes) this.notices.info(`Resumed with ${change.setting.replace(/_/g, ' ')} ${change.recorded} → ${change.now}.`);
          this.resetLive(run.metrics);
          this.continueChanged = () => void this.resume(run, device, true);
          store.update({ run: { dir: run.dir, trainDir: run.record.train_dir, metrics: [...run.metrics], status: 'running', labels: run.record.labels }, config: run.record.config });
          this.setRunning(true);
          replace(this.status, 'Resuming…');
          delete this.status.dataset.phase;
        },
      );
    } catch (error) {
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
    this.continueChanged = null;
    this.resetLive([]);
    this.setRunning(true);
    replace(this.status, 'Starting…');
    delete this.status.dataset.phase;
    try {
      await this.launch(
        (onEvent) => backend.startTraining({ config: store.shared.config, train_dir: folder.root, eval_test_dir: store.shared.testDir, device: store.shared.device, init_weights: this.initWeights }, onEvent),
        (dir) => store.update({ run: { dir, trainDir: folder.root, metrics: [], status: 'running', labels: folder.label_names } }),
      );
    } catch (error) {
      this.setRunning(false);
      replace(this.status, 'Not started.');
      this.notices.error('Could not start training', error);
    }
  }

  /**
   * Starts or resumes a run with `call`, and `accepted` makes it the screen's once the backend
   * has answered. The desktop backend's first events (a `failed` one among them) can overtake that
   * answer: they are held until then, and replayed in order.
   */
  private async launch<T>(call: (onEvent: (event: TrainEvent) => void) => Promise<T>, accepted: (answer: T) => void): Promise<void> {
    let held: TrainEvent[] | null = [];
    const answer = await call((event) => (held ? held.push(event) : this.onEvent(event)));
    accepted(answer);
    // Replayed at once, so no new event can come between them.
    for (const event of held) this.onEvent(event);
    held = null;
  }

  private async pause(): Promise<void> {
    const { backend } = this.context;
    try {
      if (this.paused) await backend.unpauseTraining();
      else await backend.pauseTraining();
      this.paused = !this.paused;
      this.buttons.pause.textContent = this.paused ? 'Continue' : 'Pause';
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
    this.running = running;
    this.buttons.start.disabled = running || this.appClosing;
    this.buttons.pause.disabled = !running || this.appClosing;
    this.buttons.stop.disabled = !running || this.appClosing;
    this.paused = false;
    this.buttons.pause.textContent = 'Pause';
    // A run keeps the settings it started with: the form shows them until it ends, and then the
    // person's own again (a resumed run's are not theirs).
    if (!running) this.context.store.restoreChosen(this.deviceDefaults[this.deviceClass()]);
    for (const control of this.form.querySelectorAll<HTMLInputElement | HTMLSelectElement | HTMLButtonElement>('input, select, button')) control.disabled = running;
    this.syncForm();
  }

  /** The app closes once the run, which its backend has stopped, has saved its checkpoint. */
  closing(): void {
    this.appClosing = true;
    for (const button of Object.values(this.buttons)) button.disabled = true;
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
        this.traffic = null;
        this.run = { totalSteps: event.epochs * event.steps_per_epoch, stepsPerEpoch: event.steps_per_epoch, epochs: event.epochs, firstEpoch: event.first_epoch, stepSeconds: NaN };
        this.bar.max = this.run.totalSteps;
        this.bar.value = (event.first_epoch - 1) * event.steps_per_epoch;
        replace(this.numbers, `${count(event.images)} images on ${event.device}, training views built on the ${viewsBuiltOn(event.views_on, this.context.store.shared.device)}, ${event.steps_per_epoch} steps per epoch`);
        break;
      case 'warning':
        this.notices.warn(event.message);
        break;
      case 'step': {
        if (!this.run) break;
        const done = (event.epoch - 1) * event.steps_per_epoch + event.step;
        this.bar.value = done;
        this.loss.add(0, done, event.loss);
        // The throughput counts rows, each a view of an image: a step is batch × views rows.
        const { settings, shared } = this.context.store;
        const { batch_size, method } = shared.config;
        const views = (settings.methods.find((m) => m.method === (method ?? 'spreadout')) ?? settings.methods[0]).views;
        const seconds = (views * batch_size) / event.images_per_sec;
        this.run.stepSeconds = Number.isFinite(this.run.stepSeconds) ? 0.8 * this.run.stepSeconds + 0.2 * seconds : seconds;
        replace(
          this.numbers,
          h('span', {}, `epoch ${event.epoch} / ${this.run.epochs}`),
          h('span', {}, `step ${event.step} / ${event.steps_per_epoch}`),
          h('span', { id: 'throughput' }, rate(event.images_per_sec)),
          h('span', { id: 'eta' }, `ETA ${duration(eta(event.epoch, event.step, event.steps_per_epoch, this.run.epochs, this.run.stepSeconds))}`),
          h('span', {}, `loss ${event.loss.toFixed(4)}`),
          this.traffic ? h('span', { id: 'traffic' }, `network ${bytes(this.traffic.sent)} sent, ${bytes(this.traffic.received)} received per step`) : null,
        );
        break;
      }
      case 'traffic':
        this.traffic = { sent: event.sent_per_step, received: event.received_per_step };
        break;
      case 'epoch': {
        const { type: _type, ...metrics } = event;
        const run = this.context.store.shared.run;
        if (run) this.context.store.update({ run: { ...run, metrics: [...run.metrics, metrics] } });
        this.showEpoch(metrics);
        break;
      }
      case 'finished':
        this.setRunning(false);
        this.setStatus(event.canceled ? 'stopped' : 'finished');
        replace(this.status, event.canceled ? `Stopped after ${event.epochs_completed} epoch(s); resume it any time from the Export screen.` : `Finished: ${event.epochs_completed} epochs. Explore what the model learned, or export it.`);
        this.status.dataset.phase = 'finished';
        break;
      case 'failed':
        this.setRunning(false);
        this.setStatus('failed');
        replace(this.status, 'Failed.');
        this.status.dataset.phase = 'failed';
        this.notices.error('Training stopped', { code: 'train', message: failureMessage(event.code, event.message, this.form) });
        if (event.code === 'changed_folder' && this.continueChanged) offerChangedFolder(this.notices.element, this.continueChanged);
        break;
    }
  }

  private showEpoch(metrics: EpochMetrics): void {
    if (metrics.knn_accuracy !== null) this.knn.add(0, metrics.epoch, metrics.knn_accuracy);
    if (metrics.similarity) {
      const labeled = metrics.similarity.kind === 'SameClassNeighbors';
      this.histogram.set([
        { label: labeled ? 'same-label neighbours' : 'two views of one image', histogram: metrics.similarity.positive },
        { label: labeled ? 'other-label neighbours' : 'different images', histogram: metrics.similarity.negative },
      ]);
    }
    const summary = h(
      'p',
      { class: 'epoch-summary', id: 'epoch-summary' },
      `Epoch ${metrics.epoch}: loss ${metrics.loss.toFixed(4)}, kNN ${percent(metrics.knn_accuracy)}`,
      metrics.recall_at ? `, R@1 ${percent(metrics.recall_at[0]?.[1])}` : '',
      metrics.nmi !== null ? `, NMI ${metrics.nmi.toFixed(3)}` : '',
      metrics.scored_on === 'test_folder' && metrics.knn_accuracy === null ? ' (R@1 and NMI within the test folder: its classes are unseen)' : '',
      `, ${rate(metrics.images_per_sec)}, waited for data ${percent(100 * (metrics.data_wait_fraction ?? 0))} of the time, ${(metrics.host_ms_per_step ?? 0).toFixed(1)} ms of host work a step, ${duration(metrics.seconds)}`,
    );
    const thumbnailUrl = (path: string) => this.context.backend.thumbnailUrl(path);
    replace(this.probes, summary, ...metrics.probes.map((probe) => neighborStrip(probe.query, probe.neighbors, { thumbnailUrl })));
  }
}
