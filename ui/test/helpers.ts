import { App } from '../src/app';
import type { TrainConfig } from '../src/backend';
import { mockBackend, type MockBackend, type MockOptions } from '../src/backend/mock';

/** A mock backend with instant training steps and 5 images per class. */
export const quickBackend = (options: MockOptions = {}): MockBackend => mockBackend({ perClass: 5, stepMs: 0, ...options });

/** An app over `backend`, mounted in the document and started. */
export async function mountApp(backend: MockBackend = quickBackend()): Promise<App> {
  const app = new App(backend);
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
