import { beforeEach, describe, expect, it } from 'vitest';
import { mountApp, quickBackend, startTraining, text, until } from './helpers';

beforeEach(() => localStorage.clear());

describe('resuming a run', () => {
  it('that already finished says it is complete and starts nothing', async () => {
    const backend = quickBackend();
    const app = await mountApp(backend);
    await startTraining(app, { epochs: 2, batch_size: 10 });
    await until(() => app.store.shared.run?.status === 'finished');
    const [run] = await backend.listRuns();
    let events = 0;
    const resume = backend.resumeTraining;
    backend.resumeTraining = (dir, epochs, device, accept, onEvent) => resume(dir, epochs, device, accept, (event) => (events++, onEvent(event)));
    await app.screens.train.resume(run);
    expect(text('#train-status')).toContain('This run is complete: 2 of 2 epochs trained.');
    expect(app.store.shared.run?.status).toBe('finished');
    expect(events).toBe(0);
  });

  it('on another device than the run recorded says what changed', async () => {
    const backend = quickBackend();
    const app = await mountApp(backend);
    app.store.chooseDevice('cpu');
    await startTraining(app, { epochs: 30, batch_size: 10 });
    await until(() => (app.store.shared.run?.metrics.length ?? 0) >= 1);
    document.querySelector<HTMLButtonElement>('#stop')!.click();
    await until(() => app.store.shared.run?.status === 'stopped');
    const [run] = await backend.listRuns();
    await app.screens.train.resume(run, 'gpu');
    expect(text('.train .notices')).toContain('Resumed with device cpu → gpu.');
    await until(() => app.store.shared.run?.status === 'finished', 10_000);
  });
});
