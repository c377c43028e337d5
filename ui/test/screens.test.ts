import { beforeEach, describe, expect, it } from 'vitest';
import { mountApp, quickBackend, startTraining, text, until } from './helpers';

// Each test starts without the settings an earlier one chose (they are remembered).
beforeEach(() => localStorage.clear());

describe('Data screen', () => {
  it('shows count, labels, every skipped file with its reason, and a grid', async () => {
    const app = await mountApp();
    await window.spreadoutTest!.openFolder('/mock/photos', null);
    expect(text('#image-count')).toBe('30');
    expect(text('#label-folders')).toContain('checker (5)');
    expect(text('#check-result')).toContain('1 skipped');
    expect(text('.skipped-table')).toContain('broken.jpg');
    expect(text('.skipped-table')).toContain('truncated');
    expect(document.querySelectorAll('.grid .cell').length).toBeGreaterThan(0);
    expect(app.store.shared.folder?.files.length).toBe(30);
    expect(document.querySelector('#raw-note')).toBeNull();
    expect(document.querySelector('#heif-note')).toBeNull();
  });

  it('says how camera raw files are read', async () => {
    const backend = quickBackend();
    const scan = backend.scanFolder;
    backend.scanFolder = async (path) => ({ ...(await scan(path)), formats: { png: 28, nef: 2 }, raw_files: 2 });
    await mountApp(backend);
    await window.spreadoutTest!.openFolder('/mock/photos', null);
    expect(text('#raw-note')).toContain('2 read through the full-size JPEG preview');
  });

  it('says how HEIC and AVIF files are read, and with which libheif', async () => {
    const backend = quickBackend();
    const scan = backend.scanFolder;
    backend.scanFolder = async (path) => ({ ...(await scan(path)), formats: { png: 27, heic: 2, avif: 1 }, heif_files: 3, libheif: '1.23.1' });
    await mountApp(backend);
    await window.spreadoutTest!.openFolder('/mock/photos', null);
    expect(text('#heif-note')).toBe('3 decoded through libheif 1.23.1 (the primary image, turned upright, at 8 bits)');
  });

  it('counts the images per label folder in one pass over the files', async () => {
    const backend = quickBackend();
    const labelCount = 100;
    const files = Array.from({ length: 3000 }, (_, i) => `/big/${i % labelCount}/${i}.jpg`);
    // Counts every read of a file's label: filtering all files once per label folder would read
    // each label a hundred times here.
    let reads = 0;
    const labels = new Proxy(files.map((_, i) => i % labelCount), {
      get: (target, key, receiver) => {
        if (typeof key === 'string' && /^\d+$/.test(key)) reads += 1;
        return Reflect.get(target, key, receiver);
      },
    });
    backend.scanFolder = async (root) => ({ root, files, labels, label_names: Array.from({ length: labelCount }, (_, l) => `class${l}`), formats: { jpg: files.length }, raw_files: 0, heif_files: 0, libheif: null });
    await mountApp(backend);
    await window.spreadoutTest!.openFolder('/big', null);
    expect(text('#label-folders')).toContain('class99 (30)');
    expect(reads).toBeLessThan(10 * files.length);
  });

  it('moves the grid selection with the keyboard', async () => {
    await mountApp();
    await window.spreadoutTest!.openFolder('/mock/photos', null);
    const grid = document.querySelector<HTMLElement>('.grid')!;
    grid.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight', bubbles: true }));
    expect(document.querySelector('.cell.selected')?.getAttribute('data-index')).toBe('1');
    grid.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowDown', bubbles: true }));
    const columns = document.querySelector('.grid-row')!.children.length;
    expect(document.querySelector('.cell.selected')?.getAttribute('data-index')).toBe(String(1 + columns));
    grid.dispatchEvent(new KeyboardEvent('keydown', { key: 'Home', bubbles: true }));
    expect(document.querySelector('.cell.selected')?.getAttribute('data-index')).toBe('0');
  });
});

describe('Opening a folder while another is checked', () => {
  it('cancels the earlier check, never shows its answer, and keeps the newer one\'s progress and Cancel', async () => {
    const backend = quickBackend();
    const canceled: string[] = [];
    const cancel = backend.cancelJob;
    backend.cancelJob = (job) => (canceled.push(job), cancel(job));
    // Each check waits until the test lets it answer, and answers as if it had finished before
    // seeing any cancel (the race the screen must survive).
    const jobs = new Map<string, string>();
    const answer = new Map<string, () => void>();
    const check = backend.checkFolder;
    backend.checkFolder = (path, size, job, progress) => {
      jobs.set(path, job);
      progress({ done: 1, total: 31, waiting: false });
      return new Promise<void>((resolve) => answer.set(path, resolve)).then(() => check(path, size, `${job}-done`, () => {}));
    };
    const app = await mountApp(backend);
    const first = window.spreadoutTest!.openFolder('/mock/a', null);
    await until(() => answer.has('/mock/a'));
    const second = window.spreadoutTest!.openFolder('/mock/b', null);
    await until(() => answer.has('/mock/b'));
    expect(canceled).toEqual([jobs.get('/mock/a')]);

    answer.get('/mock/a')!();
    await first;
    expect(app.store.shared.folder?.root).toBe('/mock/b');
    expect(app.store.shared.check).toBeNull();
    expect(text('.data .skipped')).toBe('');
    expect(text('.data .progress-label')).toContain('Checking every file decodes');
    const cancelButton = document.querySelector<HTMLButtonElement>('.data .progress button')!;
    expect(cancelButton.hidden).toBe(false);
    cancelButton.click();
    expect(canceled).toEqual([jobs.get('/mock/a'), jobs.get('/mock/b')]);

    answer.get('/mock/b')!();
    await second;
    expect(app.store.shared.check?.skipped[0].path).toBe('/mock/b/broken.jpg');
    expect(text('.skipped-table')).toContain('broken.jpg');
  });
});

describe('Augmentations screen', () => {
  it('follows the store\'s augmentations, as a resumed run changes them', async () => {
    const app = await mountApp();
    await window.spreadoutTest!.openFolder('/mock/photos', null);
    app.go('augment');
    const crop = document.querySelector<HTMLInputElement>('.toggles input[name="crop"]')!;
    expect(crop.checked).toBe(true);
    const { config } = app.store.shared;
    app.store.update({ config: { ...config, augment: { ...config.augment, crop: false } } });
    expect(crop.checked).toBe(false);
  });

  it('says where the views were built: where training with the chosen settings builds them', async () => {
    const app = await mountApp();
    await window.spreadoutTest!.openFolder('/mock/photos', null);
    app.go('augment');
    await until(() => text('#views-built-on').includes('Mock GPU'));
    app.store.choose({ augment_on: 'cpu' });
    app.go('train');
    app.go('augment');
    await until(() => text('#views-built-on').includes('CPU'));
  });

  it('shows the newest draw when earlier ones answer last', async () => {
    const backend = quickBackend();
    const draws: { crop: boolean; answer: () => void }[] = [];
    const preview = backend.augmentPreview;
    backend.augmentPreview = (paths, ops, size, seed, device, augmentOn) =>
      new Promise<void>((resolve) => draws.push({ crop: ops.crop, answer: resolve })).then(async () => {
        const drawn = await preview(paths, ops, size, seed, device, augmentOn);
        return { ...drawn, pairs: drawn.pairs.map((pair) => ({ ...pair, original: `data:crop=${ops.crop}` })) };
      });
    const app = await mountApp(backend);
    await window.spreadoutTest!.openFolder('/mock/photos', null);
    app.go('augment');
    const crop = document.querySelector<HTMLInputElement>('.toggles input[name="crop"]')!;
    crop.checked = false;
    crop.dispatchEvent(new Event('change'));
    await until(() => draws.length === 2);
    draws[1].answer();
    await until(() => document.querySelector('.previews img') !== null);
    draws[0].answer();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(document.querySelector<HTMLImageElement>('.previews img')!.getAttribute('src')).toBe('data:crop=false');
  });
});

describe('Train screen', () => {
  it('runs to the end and draws loss, kNN, histogram and probes', async () => {
    const app = await mountApp();
    await startTraining(app, { epochs: 3, batch_size: 10 });
    await until(() => document.querySelector('#train-status')?.getAttribute('data-phase') === 'finished');
    const train = app.screens.train;
    expect(train.loss.points().length).toBe(9);
    expect(train.knn.points().map((p) => p.x)).toEqual([1, 2, 3]);
    expect(train.histogram.means().length).toBe(2);
    expect(document.querySelectorAll('#probes .strip').length).toBe(3);
    expect(document.querySelectorAll('#probes .neighbor.same').length).toBeGreaterThan(0);
    expect(document.querySelectorAll('#probes .neighbor.other').length).toBeGreaterThan(0);
    expect(text('#train-status')).toContain('Finished: 3 epochs');
    expect(app.store.shared.run?.status).toBe('finished');
    expect((document.querySelector('#start') as HTMLButtonElement).disabled).toBe(false);
  });

  it('shows the warm-up as such, and stops on request keeping finished epochs', async () => {
    const app = await mountApp();
    const phases: string[] = [];
    const original = app.screens.train.onEvent.bind(app.screens.train);
    app.screens.train.onEvent = (event) => {
      if (event.type === 'phase') phases.push(text('#train-status'));
      original(event);
    };
    await startTraining(app, { epochs: 50, batch_size: 2 });
    await until(() => app.screens.train.loss.points().length > 3);
    (document.querySelector('#stop') as HTMLButtonElement).click();
    await until(() => app.store.shared.run?.status === 'stopped');
    expect(text('#train-status')).toContain('Stopped after');
    expect(phases.join('\n')).toContain('Warming up');
  });

  it('offers the comparison methods, each with its published temperature', async () => {
    const app = await mountApp();
    app.go('train');
    const method = document.querySelector<HTMLSelectElement>('select[name="method"]')!;
    expect([...method.options].map((o) => o.value)).toEqual(['spreadout', 'npsoftmax', 'nce', 'exemplar', 'triplet', 'triplet-hard']);
    method.value = 'nce';
    method.dispatchEvent(new Event('change'));
    expect(app.store.shared.config.method).toBe('nce');
    expect(document.querySelector<HTMLInputElement>('input[name="tau"]')!.value).toBe('0.07');
  });

  it('starts from chosen pretrained weights or from random ones', async () => {
    const app = await mountApp();
    app.go('train');
    document.querySelector<HTMLButtonElement>('#pick-weights')!.click();
    await until(() => text('#init-weights').includes('resnet18.safetensors'));
    document.querySelector<HTMLButtonElement>('#clear-weights')!.click();
    expect(text('#init-weights')).toContain('random initialisation');
  });

  it('refuses to start without data and says what to do', async () => {
    const app = await mountApp();
    app.go('train');
    await app.screens.train.start();
    expect(text('.notices')).toContain('Open a folder on the Data screen first');
  });
});

describe('Explore and Export screens', () => {
  it('finds neighbours with scores and label frames, maps and exports', async () => {
    const app = await mountApp();
    await startTraining(app, { epochs: 2, batch_size: 10 });
    await until(() => app.store.shared.run?.status === 'finished');

    app.go('explore');
    await until(() => document.querySelectorAll('.explore .grid .cell').length > 0);
    await until(() => app.screens.explore.neighbors.map.groupSizes().length === 6);
    expect(app.screens.explore.neighbors.map.groupSizes().reduce((a, b) => a + b, 0)).toBe(30);
    expect(app.screens.explore.neighbors.distributionPlot.means().map((m) => m.label)).toContain('random pairs');
    document.querySelector<HTMLButtonElement>('.explore .grid .cell')!.click();
    await until(() => document.querySelectorAll('#neighbors .neighbor').length === 10);
    const scores = [...document.querySelectorAll('#neighbors .neighbor .score')].map((s) => Number(s.textContent));
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    expect(document.querySelectorAll('#neighbors .neighbor.same, #neighbors .neighbor.other').length).toBe(10);

    // Coming back with the same model keeps the answer instead of recomputing everything.
    app.go('data');
    app.go('explore');
    await app.screens.explore.shown();
    expect(document.querySelectorAll('#neighbors .neighbor').length).toBe(10);

    document.querySelector<HTMLButtonElement>('#compare')!.click();
    // The mock keeps a snapshot per epoch; the last one is the latest model. Oldest first.
    await until(() => document.querySelectorAll('.comparison .strip-block').length === 2);
    expect([...document.querySelectorAll('.comparison h4')].map((h) => h.textContent)).toEqual(['epoch 1', 'epoch 2 (latest)']);

    await app.screens.explore.neighbors.queryOutside('/elsewhere/cat.jpg');
    expect(text('#neighbors')).toContain('outside image cat.jpg');

    app.go('export');
    await until(() => document.querySelectorAll('#export-run option').length === 1);
    // The run's kNN curve in the comparison chart, one point per epoch; unticking removes it.
    await until(() => document.querySelector('#run-comparison .plot') !== null);
    expect(document.querySelector<HTMLElement>('#run-comparison .plot')!.dataset.points).toBe('2');
    const tick = document.querySelector<HTMLInputElement>('#run-comparison input[type="checkbox"]')!;
    tick.checked = false;
    tick.dispatchEvent(new Event('change'));
    expect(document.querySelector('#run-comparison .plot')).toBeNull();
    expect(text('#run-comparison')).toContain('Tick one or more runs');
    window.spreadoutTest!.answerDialogs(['/chosen/folder']);
    document.querySelector<HTMLButtonElement>('#export-model')!.click();
    await until(() => text('#export-results').includes('loads back'));
    expect(text('#export-results')).toContain('/chosen/folder/model.safetensors');
    expect(text('#export-results')).toContain('Only these files were written: the 2 other files and folders there were left as they were.');
  });
});

describe('Dropping a file', () => {
  it('on any screen opens Explore with the outside image\'s neighbours', async () => {
    const backend = quickBackend();
    const app = await mountApp(backend);
    await startTraining(app, { epochs: 1, batch_size: 10 });
    await until(() => app.store.shared.run?.status === 'finished');
    app.go('data');
    backend.dropFiles(['/elsewhere/dog.png']);
    await until(() => text('#neighbors').includes('outside image dog.png'));
    expect(document.querySelector('#tab-explore')?.getAttribute('aria-selected')).toBe('true');
  });
});

describe('Resuming', () => {
  it('offers an unfinished run at the next start and continues it', async () => {
    const backend = quickBackend();
    const first = await mountApp(backend);
    await startTraining(first, { epochs: 40, batch_size: 10 });
    await until(() => (first.store.shared.run?.metrics.length ?? 0) >= 1);
    (document.querySelector('#stop') as HTMLButtonElement).click();
    await until(() => first.store.shared.run?.status === 'stopped');

    const second = await mountApp(backend);
    expect(text('#resume-offers')).toContain('Unfinished run /mock/runs/run-1');
    [...document.querySelectorAll<HTMLButtonElement>('#resume-offers button')].find((b) => b.textContent === 'Resume')!.click();
    await until(() => second.store.shared.run?.status === 'finished', 10_000);
    expect(text('#train-status')).toContain('Finished: 40 epochs');
    expect(text('#resume-offers')).toBe('');
  });

  it('is not offered for the run that is training, and a refused resume leaves Pause and Stop working', async () => {
    const backend = quickBackend({ stepMs: 2 });
    const app = await mountApp(backend);
    await startTraining(app, { epochs: 50, batch_size: 2 });
    await until(() => (app.store.shared.run?.metrics.length ?? 0) >= 1);
    const live = app.store.shared.run!;
    const config = app.store.shared.config;

    app.go('export');
    await until(() => text('#run-training').includes('training now'));
    expect(document.querySelector('#run-resume')).toBeNull();
    expect(document.querySelector<HTMLButtonElement>('#run-rename')!.disabled).toBe(true);
    expect(document.querySelector<HTMLButtonElement>('#run-delete')!.disabled).toBe(true);

    // The banner at startup can still offer it: the backend refuses, and nothing of the live run changes.
    const [listed] = await backend.listRuns();
    await app.screens.train.resume({ ...listed, record: { ...listed.record, config: { ...config, seed: 99 } } });
    expect(text('.train [role="alert"]')).toContain('a training run is already active');
    expect(app.store.shared.run?.dir).toBe(live.dir);
    expect(app.store.shared.run?.status).toBe('running');
    expect(app.store.shared.config.seed).toBe(config.seed);
    expect(document.querySelector<HTMLButtonElement>('#pause')!.disabled).toBe(false);
    const stop = document.querySelector<HTMLButtonElement>('#stop')!;
    expect(stop.disabled).toBe(false);
    stop.click();
    await until(() => app.store.shared.run?.status === 'stopped');

    app.go('export');
    await until(() => document.querySelector('#run-resume') !== null);
    expect(document.querySelector<HTMLButtonElement>('#run-rename')!.disabled).toBe(false);
  });

  it('clears the notices of the earlier run', async () => {
    const backend = quickBackend();
    const app = await mountApp(backend);
    await startTraining(app, { epochs: 40, batch_size: 10 });
    await until(() => (app.store.shared.run?.metrics.length ?? 0) >= 1);
    document.querySelector<HTMLButtonElement>('#stop')!.click();
    await until(() => app.store.shared.run?.status === 'stopped');
    app.screens.train.onEvent({ type: 'warning', message: 'an earlier warning' });
    expect(text('.train .notices')).toContain('an earlier warning');
    const [run] = await backend.listRuns();
    await app.screens.train.resume(run);
    expect(text('.train .notices')).not.toContain('an earlier warning');
    await until(() => app.store.shared.run?.status === 'finished', 10_000);
  });

  it('offers a run stopped in its first epoch', async () => {
    const backend = quickBackend({ stepMs: 5 });
    const first = await mountApp(backend);
    await startTraining(first, { epochs: 2, batch_size: 2 });
    (document.querySelector('#stop') as HTMLButtonElement).click();
    await until(() => first.store.shared.run?.status === 'stopped');
    expect(first.store.shared.run?.metrics.length).toBe(0);

    const second = await mountApp(backend);
    expect(text('#resume-offers')).toContain('0 of 2 epochs done');
    [...document.querySelectorAll<HTMLButtonElement>('#resume-offers button')].find((b) => b.textContent === 'Resume')!.click();
    await until(() => second.store.shared.run?.status === 'finished', 10_000);
  });
});

describe('Closing the app while a run trains', () => {
  it('says the checkpoint is being saved, and leaves nothing to pause, stop or start meanwhile', async () => {
    const backend = quickBackend({ stepMs: 2 });
    const app = await mountApp(backend);
    const notice = document.querySelector<HTMLElement>('#closing-notice')!;
    expect(notice.hidden).toBe(true);
    await startTraining(app, { epochs: 50, batch_size: 2 });
    await until(() => app.screens.train.loss.points().length > 0);
    backend.simulateClosing();
    expect(notice.hidden).toBe(false);
    expect(notice.textContent).toBe('Saving the run\'s checkpoint before closing…');
    const button = (id: string) => document.querySelector<HTMLButtonElement>(`#${id}`)!;
    expect([button('pause').disabled, button('stop').disabled]).toEqual([true, true]);
    // The backend stopped the run; its end leaves them so, and the notice in place.
    await until(() => app.store.shared.run?.status === 'stopped');
    expect([button('start').disabled, button('pause').disabled, button('stop').disabled]).toEqual([true, true, true]);
    expect(notice.hidden).toBe(false);
  });
});

describe('A folder another fill is caching', () => {
  it('says the check waits for it, can be cancelled meanwhile, and goes on once it is done', async () => {
    const backend = quickBackend();
    const canceled: string[] = [];
    const cancel = backend.cancelJob;
    backend.cancelJob = (job) => (canceled.push(job), cancel(job));
    let release = () => {};
    const check = backend.checkFolder;
    backend.checkFolder = (path, size, job, progress) => {
      // As the desktop backend while another window or command holds the folder's cache lock.
      progress({ done: 0, total: 31, waiting: true });
      return new Promise<void>((resolve) => (release = resolve)).then(() => check(path, size, job, progress));
    };
    await mountApp(backend);
    const opened = window.spreadoutTest!.openFolder('/mock/a', null);
    await until(() => text('.data .progress-label').includes('Waiting for another fill of this folder'));
    const cancelButton = document.querySelector<HTMLButtonElement>('.data .progress button')!;
    expect(cancelButton.hidden).toBe(false);
    release();
    await opened;
    expect(text('.skipped-table')).toContain('broken.jpg');
    expect(canceled).toEqual([]);
  });
});
