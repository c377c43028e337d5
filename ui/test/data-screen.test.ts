// The Data screen's check of a folder: what it says about files an earlier release had skipped.
import { beforeEach, describe, expect, it } from 'vitest';
import { mountApp, quickBackend, text } from './helpers';

beforeEach(() => localStorage.clear());

describe('Data screen, files skipped before', () => {
  it('says how many files an earlier release skipped were tried again', async () => {
    const backend = quickBackend();
    const check = backend.checkFolder;
    backend.checkFolder = async (...args) => ({ ...(await check(...args)), retried: 3 });
    await mountApp(backend);
    await window.spreadoutTest!.openFolder('/mock/photos', null);
    expect(text('#retried-note')).toBe('3 files skipped before were tried again.');
    expect(text('#check-result')).toContain('1 skipped');
  });

  it('says it of one file, also when every file now decodes', async () => {
    const backend = quickBackend();
    const check = backend.checkFolder;
    backend.checkFolder = async (...args) => ({ ...(await check(...args)), usable: 31, skipped: [], retried: 1 });
    await mountApp(backend);
    await window.spreadoutTest!.openFolder('/mock/photos', null);
    expect(text('#check-result')).toBe('All 31 images decode.');
    expect(text('#retried-note')).toBe('1 file skipped before was tried again.');
  });

  it('says nothing when none were', async () => {
    await mountApp();
    await window.spreadoutTest!.openFolder('/mock/photos', null);
    expect(text('#check-result')).toContain('1 skipped');
    expect(document.querySelector('#retried-note')).toBeNull();
  });
});
