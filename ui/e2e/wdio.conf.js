// End-to-end test of the real desktop app: WebdriverIO talks W3C WebDriver to tauri-driver, which
// starts WebKitWebDriver and the built app (under Xvfb on Linux). scripts/e2e.sh builds the app
// and sets SPREADOUT_APP_BINARY.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

let driver;

export const config = {
  runner: 'local',
  hostname: '127.0.0.1',
  port: 4444,
  specs: ['./app.e2e.js'],
  maxInstances: 1,
  capabilities: [{ maxInstances: 1, 'tauri:options': { application: process.env.SPREADOUT_APP_BINARY } }],
  logLevel: 'warn',
  waitforTimeout: 30_000,
  connectionRetryTimeout: 120_000,
  connectionRetryCount: 3,
  framework: 'mocha',
  reporters: ['spec'],
  mochaOpts: { ui: 'bdd', timeout: 15 * 60_000 },
  onPrepare() {
    // The app reads these: a throw-away data folder, and the test hooks instead of native dialogs.
    process.env.SPREADOUT_DATA_DIR = mkdtempSync(join(tmpdir(), 'spreadout-e2e-data-'));
    process.env.SPREADOUT_TEST_HOOKS = '1';
  },
  beforeSession() {
    const binary = process.env.TAURI_DRIVER ?? join(homedir(), '.cargo', 'bin', 'tauri-driver');
    driver = spawn(binary, [], { stdio: [null, process.stdout, process.stderr], env: process.env });
    return new Promise((resolve) => setTimeout(resolve, 1500));
  },
  afterSession() {
    driver?.kill();
  },
};
