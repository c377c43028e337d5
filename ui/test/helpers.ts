import { App } from '../src/app';
import type { StartTraining, TrainConfig } from '../src/backend';
import { mockBackend, type MockBackend, type MockOptions } from '../src/backend/mock';
import { SETTINGS_KEY } from '../src/store';

/** A mock backend with instant training steps and 5 images per class. */
export const quickBackend = (options: MockOptions = {}): MockBackend => mockBackend({ perClass: 5, stepMs: 0, ...options });

/** An app over `backend`, mounted in the document and started. */
export async function mountApp(backend: MockBackend = quickBackend()): Promise<App> {
  const app = new App(backend, await backend.startup());
  document.body.replaceChildren(app.element);
  await app.start();
  return app;
}

/** Opens the mock folder, applies `config` and starts training from the Train screen. */
export async function startTraining(app: App, config: Partial<TrainConfig>): Promise<void> {
  await window.spreadoutTest!.openFolder('/mock/photos', null);
  window.spreadoutTest!.setConfig(config);
  app.go('train');
  await app.screens.train.start();
}

/** Waits until `check` holds (polling), failing after `ms`. */
export async function until(check: () => boolean, ms = 3000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export function text(selector: string): string {
  return document.querySelector(selector)?.textContent ?? '';
}

/** Mounts the app on the Train screen once the device list has arrived. */
export async function onTrainScreen(backend: MockBackend = quickBackend()): Promise<App> {
  const app = await mountApp(backend);
  app.go('train');
  await until(() => (document.querySelector('.settings [name="device"]')?.querySelectorAll('option').length ?? 0) > 1);
  return app;
}

/** The settings the app remembered between launches. */
export const stored = () => JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? 'null');

/** The requests `backend` is asked to start runs with, as they arrive. */
export function recordStarts(backend: MockBackend): StartTraining[] {
  const requests: StartTraining[] = [];
  const start = backend.startTraining;
  backend.startTraining = (request, onEvent) => (requests.push(request), start(request, onEvent));
  return requests;
}
