import { beforeEach, describe, expect, it } from 'vitest';
import type { Devices, RunInfo } from '../src/backend';
import { SETTINGS_KEY } from '../src/store';
import { deviceClass } from '../src/screens/train/devices';
import { mountApp, onTrainScreen, quickBackend, recordStarts, startTraining, stored, text, until } from './helpers';

beforeEach(() => localStorage.clear());

const input = (name: string) => document.querySelector<HTMLInputElement | HTMLSelectElement>(`.settings [name="${name}"]`)!;

/** Types `value` into form field `name`, as a person would. */
function set(name: string, value: string): void {
  const field = input(name);
  field.value = value;
  field.dispatchEvent(new Event('change'));
}



describe('training settings', () => {
  it('are offered and checked by the engine\'s defaults, limits and methods, as the backend sends them', async () => {
    const backend = quickBackend();
    const startup = backend.startup;
    // Values no copy in the UI could know: only what the backend sends can give them.
    backend.startup = async () => {
      const sent = await startup();
      const { settings } = sent;
      return {
        ...sent,
        settings: {
          defaults: { ...settings.defaults, batch_size: 96, dim: 64 },
          limits: { ...settings.limits, batch_size: { min: 4, inclusive: true, whole: true }, tau: { min: 0.5, inclusive: false, whole: false } },
          methods: [...settings.methods].reverse().map((info) => ({ ...info, tau: info.method === 'nce' ? 0.25 : info.tau })),
        },
      };
    };
    await onTrainScreen(backend);
    expect(input('batch_size').value).toBe('96');
    expect(input('dim').value).toBe('64');
    expect(input('batch_size').getAttribute('min')).toBe('4');
    expect([...(input('method') as HTMLSelectElement).options].map((o) => o.value)).toEqual(['triplet-hard', 'triplet', 'exemplar', 'nce', 'npsoftmax', 'spreadout']);
    set('method', 'nce');
    expect(input('tau').value).toBe('0.25');
    set('batch_size', '3');
    expect(text('.notices')).toContain('Batch size must be a whole number of at least 4.');
    set('tau', '0.5');
    expect(text('.notices')).toContain('Temperature τ must be a number above 0.5.');
    expect(input('tau').value).toBe('0.25');
  });

  it('offer the seed, the negatives of Table 8 and the kNN k, and send them with the run', async () => {
    const backend = quickBackend();
    const requests = recordStarts(backend);
    const app = await onTrainScreen(backend);
    expect([...(input('negatives') as HTMLSelectElement).options].map((o) => o.value)).toEqual(['all', 'hardest_half', 'easiest_half']);
    set('seed', '7');
    set('negatives', 'hardest_half');
    set('knn_k', '50');
    await startTraining(app, { epochs: 1, batch_size: 10 });
    await until(() => app.store.shared.run?.status === 'finished');
    expect(requests[0].config).toMatchObject({ seed: 7, negatives: 'hardest_half', knn_k: 50, epochs: 1 });
  });

  it('are the person\'s again for the next new run once a resumed run has ended', async () => {
    const backend = quickBackend();
    const requests = recordStarts(backend);
    const app = await onTrainScreen(backend);
    await startTraining(app, { epochs: 40, batch_size: 10, seed: 5, method: 'nce' });
    await until(() => (app.store.shared.run?.metrics.length ?? 0) >= 1);
    document.querySelector<HTMLButtonElement>('#stop')!.click();
    await until(() => app.store.shared.run?.status === 'stopped');
    set('seed', '9');
    set('method', 'spreadout');
    const [run] = await backend.listRuns();
    await app.screens.train.resume(run);
    // While it trains, the form shows the resumed run's own settings.
    expect(input('seed').value).toBe('5');
    await until(() => app.store.shared.run?.status === 'finished', 10_000);
    expect(input('seed').value).toBe('9');
    await app.screens.train.start();
    expect(requests[1].config).toMatchObject({ seed: 9, method: 'spreadout', epochs: 40, batch_size: 10 });
    // The new run must not outlive the test (its events would reach a torn-down page).
    document.querySelector<HTMLButtonElement>('#stop')!.click();
    await until(() => app.store.shared.run?.status === 'stopped');
  });

  it('give the ETA from the views each method trains on per image', async () => {
    const app = await onTrainScreen();
    const train = app.screens.train;
    // 100 rows a second and 1 000 steps left: 1 s per step of 100 one-view images, 2 s of two-view ones.
    const etaOf = (method: 'nce' | 'spreadout') => {
      window.spreadoutTest!.setConfig({ method, batch_size: 100 });
      train.onEvent({ type: 'started', device: 'Mock GPU', images: 100_100, skipped: [], steps_per_epoch: 1001, epochs: 1, first_epoch: 1, views_on: 'device' });
      train.onEvent({ type: 'step', epoch: 1, step: 1, steps_per_epoch: 1001, loss: 1, lr: 0.03, images_per_sec: 100 });
      return text('#eta');
    };
    expect(etaOf('nce')).toBe('ETA 16 min 40 s');
    expect(etaOf('spreadout')).toBe('ETA 33 min 20 s');
  });

  it('say where the training views are built, and the host work a step takes', async () => {
    const app = await onTrainScreen();
    const train = app.screens.train;
    const started = (views_on: 'device' | 'cpu') =>
      train.onEvent({ type: 'started', device: 'Mock GPU', images: 40, skipped: [], steps_per_epoch: 4, epochs: 1, first_epoch: 1, views_on });
    started('device');
    expect(text('#train-numbers')).toBe('40 images on Mock GPU, training views built on the GPU, 4 steps per epoch');
    started('cpu');
    expect(text('#train-numbers')).toContain('training views built on the CPU');
    // The choice reaches the engine's configuration.
    const choice = document.querySelector<HTMLSelectElement>('select[name="augment_on"]')!;
    choice.value = 'cpu';
    choice.dispatchEvent(new Event('change'));
    expect(app.store.shared.config.augment_on).toBe('cpu');
  });

  it('refuse values the engine would, keeping the last good one', async () => {
    const app = await onTrainScreen();
    set('seed', '3');
    set('seed', '-1');
    expect(text('.notices')).toContain('Seed must be a whole number of at least 0.');
    expect(input('seed').value).toBe('3');
    set('knn_k', '2.5');
    expect(text('.notices')).toContain('kNN neighbours k must be a whole number of at least 1.');
    expect(app.store.shared.config.knn_k).toBe(200);
  });

  it('offer hard and easy negatives with the paper\'s method only', async () => {
    const app = await onTrainScreen();
    set('negatives', 'easiest_half');
    set('method', 'nce');
    expect(input('negatives').disabled).toBe(true);
    expect(app.store.shared.config.negatives).toBe('all');
    set('method', 'spreadout');
    expect(input('negatives').disabled).toBe(false);
  });

  it('score a test folder the person picks, or none', async () => {
    const backend = quickBackend();
    const requests = recordStarts(backend);
    const app = await onTrainScreen(backend);
    expect(text('#test-dir')).toContain('none: Recall@K and NMI are scored on the training folder');
    await window.spreadoutTest!.openFolder('/mock/photos', null);
    window.spreadoutTest!.answerDialogs(['/mock/labelled/test']);
    document.querySelector<HTMLButtonElement>('#pick-test-dir')!.click();
    await until(() => text('#test-dir').startsWith('/mock/labelled/test: scored after every epoch'));
    app.go('data');
    expect(text('.data .facts')).toContain('/mock/labelled/test');
    window.spreadoutTest!.setConfig({ epochs: 1, batch_size: 10 });
    app.go('train');
    await app.screens.train.start();
    await until(() => app.store.shared.run?.status === 'finished');
    expect(requests[0].eval_test_dir).toBe('/mock/labelled/test');
    document.querySelector<HTMLButtonElement>('#clear-test-dir')!.click();
    expect(app.store.shared.testDir).toBeNull();
    expect(text('#test-dir')).toContain('none:');
  });
});

describe('remembered settings', () => {
  it('come back at the next launch, and only what the person set', async () => {
    await onTrainScreen();
    set('seed', '11');
    set('negatives', 'easiest_half');
    set('width', '8');
    set('device', 'cpu');
    expect(stored()).toEqual({ config: { seed: 11, negatives: 'easiest_half', width: 8 }, device: 'cpu' });

    const again = await onTrainScreen();
    expect(input('seed').value).toBe('11');
    expect(input('negatives').value).toBe('easiest_half');
    expect(input('width').value).toBe('8');
    expect(input('device').value).toBe('cpu');
    expect(again.store.shared.config.epochs).toBe(30);
  });

  it('survive a corrupt or foreign stored value, keeping whatever is still valid', async () => {
    localStorage.setItem(SETTINGS_KEY, '{not json');
    let app = await onTrainScreen();
    expect(app.store.shared.config).toMatchObject({ width: 64, epochs: 200, seed: 0 });

    localStorage.setItem(
      SETTINGS_KEY,
      JSON.stringify({ config: { epochs: -3, width: 'wide', seed: 5, tau: 0.2, negatives: 'some', augment: { crop: 'yes' }, method: 'nce', unknown: 1 }, device: { adapter: -1 } }),
    );
    app = await onTrainScreen();
    expect(app.store.shared.config).toMatchObject({ epochs: 200, width: 64, seed: 5, tau: 0.2, negatives: 'all', method: 'nce', augment: { crop: true } });
    expect(app.store.shared.device).toBe('auto');
    expect(app.store.shared.config).not.toHaveProperty('unknown');

    for (const value of ['42', '"text"', 'null', '[1, 2]', '{"config": 3, "device": "quantum"}']) {
      localStorage.setItem(SETTINGS_KEY, value);
      app = await onTrainScreen();
      expect(app.store.shared.config).toMatchObject({ width: 64, epochs: 200 });
      expect(app.store.shared.device).toBe('auto');
    }
  });

  it('fall back to automatic when the remembered adapter is gone, for this session only', async () => {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify({ config: {}, device: { adapter: 3 } }));
    const app = await onTrainScreen();
    expect(input('device').value).toBe('auto');
    expect(app.store.shared.device).toBe('auto');
    expect(stored().device).toEqual({ adapter: 3 });
  });

  it('include the augmentations and what the end-to-end hook sets', async () => {
    const app = await mountApp();
    app.go('augment');
    const flip = document.querySelector<HTMLInputElement>('.toggles input[name="flip"]')!;
    flip.checked = false;
    flip.dispatchEvent(new Event('change'));
    window.spreadoutTest!.setConfig({ batch_size: 8 });
    expect(stored().config).toEqual({ augment: { crop: true, color_jitter: true, grayscale: true, flip: false }, batch_size: 8 });
  });
});

describe('device defaults', () => {
  it('follow the paper on a GPU and say why the CPU gets less', async () => {
    const app = await onTrainScreen();
    expect(input('width').value).toBe('64');
    expect(input('epochs').value).toBe('200');
    expect(text('#width-default')).toBe('GPU: width 64, as in the paper');
    expect(text('#epochs-default')).toBe('GPU: 200 epochs, as in the paper');

    set('device', 'cpu');
    expect(input('width').value).toBe('16');
    expect(input('epochs').value).toBe('30');
    expect(text('#width-default')).toBe('CPU: width 16 trains ~8× faster; the paper uses 64 on a GPU');
    expect(text('#epochs-default')).toContain('CPU: 30 epochs');
    expect(app.store.shared.device).toBe('cpu');

    set('device', '0');
    expect(input('width').value).toBe('64');
    expect(app.store.shared.device).toEqual({ adapter: 0 });
  });

  it('give way to a value the person chose, which can be put back to the default', async () => {
    const app = await onTrainScreen();
    set('width', '8');
    set('device', 'cpu');
    expect(input('width').value).toBe('8');
    expect(input('epochs').value).toBe('30');
    expect(text('#width-default')).toContain('your value is kept');
    expect(text('#epochs-default')).not.toContain('your value is kept');
    const useDefault = document.querySelector<HTMLButtonElement>('#width-default button')!;
    expect(useDefault.textContent).toBe('Use 16');
    useDefault.click();
    expect(input('width').value).toBe('16');
    expect(text('#width-default')).not.toContain('your value is kept');
    expect(stored().config).not.toHaveProperty('width');
    set('device', 'auto');
    expect(app.store.shared.config.width).toBe(64);
  });

  it('keep what the end-to-end hook set when it then picks the CPU', async () => {
    const app = await onTrainScreen();
    window.spreadoutTest!.setConfig({ epochs: 2, width: 4 });
    set('device', 'cpu');
    expect(app.store.shared.config).toMatchObject({ epochs: 2, width: 4 });
  });

  it('are the CPU\'s when automatic falls back to it, with the backend\'s reason', async () => {
    const backend = quickBackend();
    backend.listDevices = async () => ({ adapters: [], auto_name: 'CPU (Burn flex backend)', auto_notice: 'no GPU adapter found; training on the CPU, which is much slower', graphics_apis: 'Vulkan' });
    await onTrainScreen(backend);
    expect(input('width').value).toBe('16');
    expect(text('.device-note')).toBe('no GPU adapter found; training on the CPU, which is much slower');
  });

  it('name the graphics API this platform trains through', async () => {
    const backend = quickBackend();
    const listed = await backend.listDevices();
    backend.listDevices = async () => ({ ...listed, auto_notice: null, graphics_apis: 'Vulkan or DX12' });
    await onTrainScreen(backend);
    set('device', 'auto');
    expect(text('.device-note')).toBe('training runs on the GPU through wgpu (Vulkan or DX12)');
  });

  it('tell a GPU from the CPU by what the adapter list says', () => {
    const adapter = (index: number, kind: Devices['adapters'][number]['kind']) => ({ index, name: `a${index}`, kind, api: 'Vulkan', driver: '', compute: null });
    const devices: Devices = { adapters: [adapter(0, 'software'), adapter(1, 'integrated'), adapter(2, 'virtual')], auto_name: 'a1', auto_notice: null, graphics_apis: 'Vulkan' };
    expect(deviceClass('auto', devices)).toBe('gpu');
    expect(deviceClass('auto', { ...devices, auto_notice: 'no GPU adapter found' })).toBe('cpu');
    expect(deviceClass('auto', null)).toBe('cpu');
    expect(deviceClass('gpu', null)).toBe('gpu');
    expect(deviceClass('cpu', devices)).toBe('cpu');
    expect([0, 1, 2, 9].map((i) => deviceClass({ adapter: i }, devices))).toEqual(['cpu', 'gpu', 'gpu', 'cpu']);
  });
});

describe('the run badge', () => {
  it('is not left at Training when the backend refuses the start', async () => {
    const app = await mountApp(quickBackend({ failStart: 'rejected' }));
    await startTraining(app, { epochs: 1, batch_size: 10 });
    expect(text('#run-badge')).toBe('30 images open');
    expect(document.querySelector('#run-badge')!.hasAttribute('data-status')).toBe(false);
    expect(text('#train-status')).toBe('Not started.');
    expect(document.querySelector('.train [role="alert"]')!.textContent).toContain('batch size must be at least 2');
    expect(document.querySelector<HTMLButtonElement>('#start')!.disabled).toBe(false);
    expect(input('width').disabled).toBe(false);
  });

  it('shows Failed when the run fails before the start is even answered', async () => {
    const app = await mountApp(quickBackend({ failStart: 'event' }));
    await startTraining(app, { epochs: 1, batch_size: 10 });
    expect(app.store.shared.run?.status).toBe('failed');
    expect(text('#run-badge')).toBe('Failed: 0 epochs done');
    expect(document.querySelector<HTMLElement>('#run-badge')!.dataset.status).toBe('failed');
    expect(text('#train-status')).toBe('Failed.');
    expect(document.querySelector('.train [role="alert"]')!.textContent).toContain('device lost');
    expect(document.querySelector<HTMLButtonElement>('#start')!.disabled).toBe(false);
  });

  it('stays as it was when a resume is refused', async () => {
    const app = await mountApp();
    const gone: RunInfo = {
      dir: '/mock/runs/deleted',
      record: {
        device: 'Mock GPU',
        device_choice: null,
        train_dir: '/mock/photos',
        eval_train_dir: null,
        eval_test_dir: null,
        images: 30,
        skipped: 0,
        labels: [],
        normalization: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
        config: app.store.shared.config,
        folder: null,
        init_weights: null,
      },
      epochs_completed: 2,
      metrics: [],
      snapshots: [],
      unfinished: true,
      bytes: 0,
    };
    await app.screens.train.resume(gone);
    expect(app.store.shared.run).toBeNull();
    expect(document.querySelector('#run-badge')!.hasAttribute('data-status')).toBe(false);
    expect(text('#train-status')).toBe('Not started.');
    expect(document.querySelector('.train [role="alert"]')!.textContent).toContain('Could not resume');
    expect(document.querySelector<HTMLButtonElement>('#start')!.disabled).toBe(false);
  });
});
