import { beforeEach, describe, expect, it } from 'vitest';
import type { Failure } from '../src/backend';
import { mountApp, text } from './helpers';

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
    const codes: Failure[] = ['data', 'device', 'files', 'eval', 'config', 'existing_run', 'out_holds_images', 'nothing_to_resume', 'changed_folder', 'diverged', 'crashed'];
    for (const code of codes) app.screens.train.onEvent({ type: 'failed', code, message: `what happened (${code})` });
    expect(alerts().length).toBe(codes.length);
    expect(text('.train .notices')).not.toContain('--');
    expect(alerts().find((alert) => alert.includes('(device)'))).toContain('Pick another device, or the CPU, in the Device picker.');
    expect(alerts().find((alert) => alert.includes('(crashed)'))).toContain('Resume the run from the Export screen');
  });
});
