// Picks the backend: the desktop one inside the Tauri webview, the in-memory mock anywhere else
// (a plain browser, Vitest).
import { mockBackend } from './mock';
import type { Backend } from './types';

export * from './types';

export async function loadBackend(): Promise<Backend> {
  if (typeof window !== 'undefined' && '__TAURI_INTERNALS__' in window) {
    return (await import('./tauri')).tauriBackend;
  }
  return mockBackend();
}
