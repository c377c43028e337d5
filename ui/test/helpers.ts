import { App } from '../src/app';
import { mockBackend } from '../src/backend/mock';

/** An app over the mock backend with instant training steps, mounted in the document. */
export async function mountApp(perClass = 5): Promise<App> {
  document.body.innerHTML = '';
  const app = new App(mockBackend({ perClass, stepMs: 0 }));
  document.body.append(app.element);
  await app.start();
  return app;
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
