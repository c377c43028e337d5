import { defineConfig } from 'vitest/config';

// The UI lives in ui/; Tauri loads ui/dist in the app and Vite's dev server while developing.
export default defineConfig({
  root: 'ui',
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' },
  test: {
    root: '.',
    include: ['ui/test/**/*.test.ts'],
    environment: 'happy-dom',
    // Above the longest `until` wait (10 s, ui/test/helpers.ts) plus the rest of its test, so a
    // slow machine fails with `until`'s message naming the condition, not Vitest's 5 s timeout.
    testTimeout: 20_000,
  },
});
