// Picks the backend: the desktop one inside the Tauri webview, the in-memory mock anywhere else
// (a plain browser on `npm run dev`; Vitest imports the mock itself). Both are loaded on demand,
// and only a development build carries the mock: Vite drops the `import.meta.env.DEV` branch, and
// with it the mock's module, from a production build.
import type { Backend } from './types';

export * from './types';

export async function loadBackend(): Promise<Backend> {
  if (typeof window !== 'undefined' && '__TAURI_INTERNALS__' in window) {
    return (await import('./tauri')).tauriBackend;
  }
  if (import.meta.env.DEV) return (await import('./mock')).mockBackend();
  throw new Error('This build of Spreadout runs inside its desktop app; `npm run dev` serves the UI to a plain browser with a simulated backend.');
}
