import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadBackend } from '../src/backend';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

describe('backend boundary', () => {
  it('only ui/src/backend imports @tauri-apps', () => {
    const offenders = files('ui/src')
      .filter((path) => !relative('ui/src', path).startsWith('backend'))
      .filter((path) => /from ['"]@tauri-apps/.test(readFileSync(path, 'utf8')));
    expect(offenders).toEqual([]);
  });
});

describe('the mock backend', () => {
  it('is imported statically by no module of the app, so a production build can leave it out', () => {
    const importers = files('ui/src').filter((path) => /(from|import) ['"][^'"]*\/mock['"]/.test(readFileSync(path, 'utf8')));
    expect(importers).toEqual([]);
  });

  it('is loaded on demand outside the desktop app in a development build', async () => {
    expect((await loadBackend()).kind).toBe('mock');
  });
});

