import { beforeEach, describe, expect, it } from 'vitest';
import type { DeviceChoice, ErrorKind } from '../src/backend';
import { mountApp, quickBackend, startTraining, text, until } from './helpers';

beforeEach(() => localStorage.clear());

const alerts = () => [...document.querySelectorAll('.train [role="alert"] span')].map((alert) => alert.textContent ?? '');

describe('a failed run', () => {
  it('that diverged says to lower the learning rate in the training settings, with no command-line flag', async () => {
    const app = await mountApp();
    app.go('train');
    app.screens.train.onEvent({ type: 'failed', code: 'diverged', message: 'training diverged at epoch 3, step 12: the loss or the weights became NaN; the last good checkpoint is kept' });
    expect(text('.train [role="alert"]')).toContain('the last good checkpoint is kept. Lower the learning rate (or raise the temperature τ) in the training settings');
    expect(text('.train .notices')).not.toContain('--');
  });

  it('names an invalid setting by the label of its field, and one without a field by its key', async () => {
    const app = await mountApp();
    app.go('train');
    app.screens.train.onEvent({ type: 'failed', code: 'config', message: 'invalid setting knn_k: must be at least 1: the kNN evaluation votes with that many neighbours' });
    app.screens.train.onEvent({ type: 'failed', code: 'config', message: 'invalid setting lr: must be a positive number' });
    app.screens.train.onEvent({ type: 'failed', code: 'config', message: 'invalid setting knn_sigma: must be a positive number' });
    expect(alerts()).toEqual([
      'Training stopped: invalid setting knn_k: must be at least 1: the kNN evaluation votes with that many neighbours. Change “kNN neighbours k” in the training settings.',
      'Training stopped: invalid setting lr: must be a positive number. Change “Learning rate” in the training settings.',
      'Training stopped: invalid setting knn_sigma: must be a positive number',
    ]);
  });

  it('of any kind is worded without command-line flags', async () => {
    const app = await mountApp();
    app.go('train');
    const codes: ErrorKind[] = ['data', 'device', 'files', 'eval', 'config', 'existing_run', 'out_holds_images', 'nothing_to_resume', 'changed_folder', 'diverged', 'crashed'];
    for (const code of codes) app.screens.train.onEvent({ type: 'failed', code, message: `what happened (${code})` });
    expect(alerts().length).toBe(codes.length);
    expect(text('.train .notices')).not.toContain('--');
    expect(alerts().find((alert) => alert.includes('(device)'))).toContain('Pick another device, or the CPU, in the Device picker.');
    expect(alerts().find((alert) => alert.includes('(crashed)'))).toContain('Resume the run from the Export screen');
  });
});

describe('a resumed run whose training folder changed', () => {
  /** A run of the mock's changed folders, stopped after its first epoch and resumed on the CPU. */
  async function resumedOnChangedFolder() {
    const backend = quickBackend({ folderChanged: true });
    const resumes: { device: DeviceChoice | null; accept: boolean }[] = [];
    const resume = backend.resumeTraining;
    backend.resumeTraining = (dir, epochs, device, accept, onEvent) => (resumes.push({ device, accept }), resume(dir, epochs, device, accept, onEvent));
    const app = await mountApp(backend);
    await startTraining(app, { epochs: 30, batch_size: 10 });
    await until(() => (app.store.shared.run?.metrics.length ?? 0) >= 1);
    document.querySelector<HTMLButtonElement>('#stop')!.click();
    await until(() => app.store.shared.run?.status === 'stopped');
    app.store.chooseDevice('cpu');
    const [run] = await backend.listRuns();
    await app.screens.train.resume(run);
    await until(() => app.store.shared.run?.status === 'failed');
    return { app, resumes };
  }

  it('offers to accept the changed folder, and continues the run on the same device to its end', async () => {
    const { app, resumes } = await resumedOnChangedFolder();
    expect(text('.train [role="alert"]')).toContain('changed since this run started');
    expect(text('#changed-folder')).toContain('new ones start fresh');
    // A device chosen since then does not move the run.
    const device = document.querySelector<HTMLSelectElement>('#device')!;
    device.value = '0';
    device.dispatchEvent(new Event('change'));
    document.querySelector<HTMLButtonElement>('#accept-changed-folder')!.click();
    expect(document.querySelector('#accept-changed-folder')).toBeNull();
    await until(() => app.store.shared.run?.status === 'finished', 10_000);
    expect(text('#train-status')).toContain('Finished: 30 epochs');
    expect(resumes).toEqual([{ device: 'cpu', accept: false }, { device: 'cpu', accept: true }]);
    expect(document.querySelector('#accept-changed-folder')).toBeNull();
  });

  it('is no longer offered once another run starts', async () => {
    const { app } = await resumedOnChangedFolder();
    expect(document.querySelector('#accept-changed-folder')).not.toBeNull();
    await app.screens.train.start();
    expect(document.querySelector('#accept-changed-folder')).toBeNull();
    await until(() => app.store.shared.run?.status === 'finished', 10_000);
  });
});
