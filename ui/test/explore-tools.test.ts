import { describe, expect, it } from 'vitest';
import { fractionAbove, startOf } from '../src/components/threshold';
import { mockBackend } from '../src/backend/mock';
import { Latest } from '../src/latest';
import { mountApp, quickBackend, startTraining, text, until } from './helpers';

/** An app with a finished mock run of `epochs` epochs, on the Explore screen. */
async function exploring(backend = quickBackend(), epochs = 1) {
  const app = await mountApp(backend);
  await startTraining(app, { epochs, batch_size: 10 });
  await until(() => app.store.shared.run?.status === 'finished');
  app.go('explore');
  await until(() => document.querySelectorAll('.explore .grid .cell').length > 0);
  return app;
}

/** A key pressed on `element`, which has the focus as it would when a person presses it. */
function press(element: HTMLElement, key: string): void {
  element.focus();
  element.dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true }));
}

describe('Explore tabs', () => {
  it('are a tablist the arrow keys move through, one panel shown at a time', async () => {
    await exploring();
    const tabs = [...document.querySelectorAll<HTMLButtonElement>('.explore [role="tab"]')];
    expect(tabs.map((t) => t.textContent)).toEqual(['Neighbours & map', 'Near-duplicates', 'Clusters']);
    expect(tabs.map((t) => t.getAttribute('aria-selected'))).toEqual(['true', 'false', 'false']);
    press(tabs[0], 'ArrowRight');
    expect(document.activeElement).toBe(tabs[1]);
    expect(document.querySelector<HTMLElement>('#explore-panel-duplicates')!.hidden).toBe(false);
    expect(document.querySelector<HTMLElement>('#explore-panel-neighbors')!.hidden).toBe(true);
    press(tabs[1], 'End');
    expect(tabs[2].getAttribute('aria-selected')).toBe('true');
    press(tabs[2], 'ArrowRight');
    expect(tabs[0].getAttribute('aria-selected')).toBe('true');
    expect(tabs.map((t) => t.tabIndex)).toEqual([0, -1, -1]);
  });
});

describe('Picking another snapshot while one is embedded', () => {
  it('cancels the earlier embedding and keeps the newer one\'s progress and Cancel', async () => {
    const backend = quickBackend();
    const canceled: string[] = [];
    backend.cancelJob = async (job) => void canceled.push(job);
    // Once `holding`, each embedding waits until the test lets it answer.
    let holding = false;
    const held: { job: string; answer: () => void }[] = [];
    const open = backend.openCollection;
    backend.openCollection = (model, folder, device, job, progress) => {
      if (!holding) return open(model, folder, device, job, progress);
      progress({ done: 1, total: 30, waiting: false });
      return new Promise<void>((resolve) => held.push({ job, answer: resolve })).then(() => open(model, folder, device, job, () => {}));
    };
    await exploring(backend, 2);
    holding = true;
    const source = document.querySelector<HTMLSelectElement>('#explore-source')!;
    const pick = (index: number) => {
      source.selectedIndex = index;
      source.dispatchEvent(new Event('change'));
    };
    pick(1);
    pick(0);
    await until(() => held.length === 2);
    expect(canceled).toEqual([held[0].job]);
    held[0].answer();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(text('.explore > .progress .progress-label')).toContain('Embedding');
    expect(document.querySelector<HTMLButtonElement>('.explore > .progress button')!.hidden).toBe(false);
    held[1].answer();
    await until(() => text('.explore > .progress .progress-label') === '');
    expect(text('.explore .notices')).toBe('');
  });
});

describe('Comparing across more snapshots than the backend keeps', () => {
  it('leaves the snapshot on screen working: an embedding the backend dropped is opened again', async () => {
    const app = await exploring(quickBackend(), 10);
    const source = document.querySelector<HTMLSelectElement>('#explore-source')!;
    // Ten snapshots, and the folder without a model.
    expect(source.options.length).toBe(11);
    expect(source.options[10].textContent).toBe('none: perceptual hashes only');
    // The oldest snapshot on screen, then ten embeddings for the comparison: the backend keeps 8.
    source.selectedIndex = 9;
    source.dispatchEvent(new Event('change'));
    await until(() => text('#neighbors').includes('Click an image'));
    document.querySelector<HTMLButtonElement>('#compare')!.click();
    await until(() => document.querySelectorAll('.comparison .strip-block').length === 10);
    document.querySelector<HTMLButtonElement>('.explore .grid .cell')!.click();
    await until(() => text('#neighbors').includes('Nearest 10 of'));
    app.screens.explore.showView('duplicates');
    await until(() => document.querySelectorAll('#duplicate-groups .dup-group').length > 0);
    expect(text('.explore .notices')).toBe('');
  });
});

describe('Near-duplicates', () => {
  it('opens at the suggested threshold, says how it was chosen, and lists groups largest first', async () => {
    const app = await exploring();
    app.screens.explore.showView('duplicates');
    await until(() => document.querySelectorAll('#duplicate-groups .dup-group').length > 0);
    expect(text('#duplicate-how')).toContain('Suggested threshold 0.930');
    expect(text('#duplicate-how')).toContain('equal-error point');
    const handle = document.querySelector<HTMLElement>('.threshold-handle')!;
    expect(handle.getAttribute('role')).toBe('slider');
    expect(handle.getAttribute('aria-valuenow')).toBe('0.930');
    // The mock's pairs n = 4..9 are above 0.93 (0.90 + n / 100), and n = 5 has a third member.
    const sizes = [...document.querySelectorAll('#duplicate-groups .dup-group')].map((g) => g.querySelectorAll('.dup-member').length);
    expect(sizes).toEqual([3, 2, 2, 2, 2, 2]);
    expect(text('#duplicate-summary')).toMatch(/^\d+ groups? of near-duplicates/);
    expect(text('.dup-group .score')).toBe('most central');
    // Each other member says which stage linked it to the first: the model, the hashes, or both.
    const scores = [...document.querySelectorAll('.dup-group')][0].querySelectorAll('.score');
    expect(scores[1].textContent).toBe('0.950 · model and hash (1 bit)');
    expect(scores[2].textContent).toBe('0.940 · hash (2 bits)');
    // Each member is named once, by the visible name under its picture.
    expect([...document.querySelectorAll('.dup-member img')].every((img) => img.getAttribute('alt') === '')).toBe(true);
    expect(text('.threshold-readout')).toMatch(/Threshold 0\.930: [\d.]+ % of edited copies are above it/);
  });

  it('finds near-duplicates before any training, by perceptual hashes, with the other views off', async () => {
    const backend = quickBackend();
    const opened: string[] = [];
    const open = backend.openHashedFolder;
    backend.openHashedFolder = (folder, job, progress) => (opened.push(folder), open(folder, job, progress));
    const app = await mountApp(backend);
    await window.spreadoutTest!.openFolder('/mock/photos', null);
    app.go('explore');
    await until(() => document.querySelector('#explore-without-model') !== null);
    document.querySelector<HTMLButtonElement>('#explore-without-model')!.click();
    await until(() => document.querySelectorAll('#duplicate-groups .dup-group').length > 0);
    expect(opened).toEqual(['/mock/photos']);
    expect(text('#duplicate-note')).toContain('No model: near-duplicates come from perceptual hashes alone');
    expect(document.querySelector<HTMLButtonElement>('#explore-tab-neighbors')!.disabled).toBe(true);
    expect(document.querySelector<HTMLButtonElement>('#explore-tab-clusters')!.disabled).toBe(true);
    expect(document.querySelector<HTMLElement>('#explore-panel-duplicates')!.hidden).toBe(false);
  });

  it('says when the model cannot tell copies from neighbours yet, and groups by the hashes alone', async () => {
    const backend = quickBackend({ untrained: true });
    const searched: (number | null)[] = [];
    const find = backend.findDuplicates;
    backend.findDuplicates = (key, threshold) => (searched.push(threshold), find(key, threshold));
    const app = await exploring(backend);
    // Over the neighbour lists first.
    await until(() => !document.querySelector<HTMLElement>('#readiness-note')!.hidden);
    expect(text('#readiness-note')).toContain('cannot tell copies from neighbours yet');
    app.screens.explore.showView('duplicates');
    await until(() => document.querySelectorAll('#duplicate-groups .dup-group').length > 0);
    expect(document.querySelector<HTMLElement>('#duplicate-note')!.hidden).toBe(false);
    expect(text('#duplicate-note')).toContain('from the perceptual hashes alone');
    // The panel asks for the suggested threshold; the backend leaves the model out.
    expect(searched).toEqual([null]);
    expect(text('#duplicate-summary')).toContain('at the suggested threshold');
    const scores = [...document.querySelectorAll('.dup-group')][0].querySelectorAll('.score');
    expect(scores[1].textContent).toBe('0.900 · hash (1 bit)');
    // A threshold the person sets is theirs: the model takes part at it.
    const handle = document.querySelector<HTMLElement>('.threshold-handle')!;
    for (let i = 0; i < 4; i++) press(handle, 'ArrowRight');
    await until(() => /near-duplicates .* above 0\.950 or with matching hashes/.test(text('#duplicate-summary')));
    expect(searched).toEqual([null, 0.95]);
    expect([...document.querySelectorAll('.dup-group')][0].querySelectorAll('.score')[1].textContent).toContain('model and hash');
  });

  it('follows the threshold the person moves, searching once it rests, and drops answers to older thresholds', async () => {
    const backend = quickBackend();
    const searched: (number | null)[] = [];
    const find = backend.findDuplicates;
    backend.findDuplicates = (key, threshold) => (searched.push(threshold), find(key, threshold));
    const app = await exploring(backend);
    app.screens.explore.showView('duplicates');
    await until(() => document.querySelectorAll('#duplicate-groups .dup-group').length > 0);
    const before = document.querySelectorAll('#duplicate-groups .dup-group').length;
    const handle = document.querySelector<HTMLElement>('.threshold-handle')!;
    for (let i = 0; i < 8; i++) press(handle, 'ArrowRight');
    await until(() => handle.getAttribute('aria-valuenow') === '0.970');
    await until(() => /near-duplicates .* above 0\.970/.test(text('#duplicate-summary')));
    // Opened at the suggested threshold (null: the backend's), then eight key presses in quick
    // succession make one search, at the threshold they end on.
    expect(searched).toEqual([null, 0.97]);
    const after = document.querySelectorAll('#duplicate-groups .dup-group').length;
    expect(after).toBeLessThan(before);
    document.querySelector<HTMLButtonElement>('#duplicate-reset')!.click();
    await until(() => /near-duplicates .* at the suggested threshold/.test(text('#duplicate-summary')));
    expect(searched).toEqual([null, 0.97, null]);
    expect(document.querySelectorAll('#duplicate-groups .dup-group').length).toBe(before);
  });

  it('exports the groups where the person chose, as CSV or JSON', async () => {
    const backend = mockBackend({ perClass: 5, stepMs: 0 });
    const saved: unknown[][] = [];
    const save = backend.saveDuplicates;
    backend.saveDuplicates = async (...args) => {
      saved.push(args);
      return save(...args);
    };
    const app = await exploring(backend);
    app.screens.explore.showView('duplicates');
    await until(() => document.querySelectorAll('#duplicate-groups .dup-group').length > 0);
    window.spreadoutTest!.answerDialogs(['/chosen/dups.csv']);
    document.querySelector<HTMLButtonElement>('#duplicate-csv')!.click();
    await until(() => saved.length === 1);
    expect(saved[0].slice(1)).toEqual([null, 'csv', '/chosen/dups.csv']);
    await until(() => text('.explore .notices').includes('/chosen/dups.csv'));
  });

  it('counts the groups it wrote, not those of an earlier threshold still on screen', async () => {
    const app = await exploring();
    app.screens.explore.showView('duplicates');
    await until(() => document.querySelectorAll('#duplicate-groups .dup-group').length === 6);
    const handle = document.querySelector<HTMLElement>('.threshold-handle')!;
    for (let i = 0; i < 8; i++) press(handle, 'ArrowRight');
    // Exported before the search at 0.970 has answered: the six groups above 0.930 are still shown.
    window.spreadoutTest!.answerDialogs(['/chosen/dups.csv']);
    document.querySelector<HTMLButtonElement>('#duplicate-csv')!.click();
    await until(() => text('.explore .notices').includes('/chosen/dups.csv'));
    expect(text('.explore .notices')).toContain('Wrote the 2 groups above 0.970');
  });

  it('names the copy to keep, marks a group resolved with the chosen copy, and sets it aside until reopened', async () => {
    const backend = mockBackend({ perClass: 5, stepMs: 0 });
    const marked: unknown[][] = [];
    const mark = backend.markDuplicatesResolved;
    backend.markDuplicatesResolved = async (...args) => {
      marked.push(args);
      return mark(...args);
    };
    const app = await exploring(backend);
    app.screens.explore.showView('duplicates');
    await until(() => document.querySelectorAll('#duplicate-groups .dup-group').length === 6);
    const first = () => document.querySelector<HTMLElement>('#duplicate-groups .dup-group')!;
    // The suggestion is marked on its picture, with the reason, and chosen in the group's list.
    expect(first().querySelector('.dup-member.keep .keep-badge')!.textContent).toBe('Keep: most pixels (640×480)');
    const select = first().querySelector('select')!;
    const members = [...first().querySelectorAll('.dup-member .name')].map((n) => n.textContent);
    expect(select.selectedOptions[0].textContent).toBe(first().querySelector('.dup-member.keep .name')!.textContent);
    // The person keeps another copy and marks the group resolved.
    select.value = select.options[2].value;
    const kept = select.options[2].textContent;
    [...first().querySelectorAll('button')].find((b) => b.textContent === 'Mark resolved')!.click();
    await until(() => document.querySelectorAll('#duplicate-groups .dup-group').length === 5);
    expect(marked[0].slice(2)).toEqual([Number(select.options[2].value)]);
    expect(text('#duplicate-summary')).toContain('5 groups of near-duplicates');
    expect(text('#duplicate-summary')).toContain('1 more marked resolved.');
    expect(text('.explore .notices')).toContain(`keeping ${kept}`);
    // Another search (a new threshold and back) still sets it aside: the decision is the backend's.
    document.querySelector<HTMLButtonElement>('#duplicate-reset')!.click();
    await until(() => /at the suggested threshold/.test(text('#duplicate-summary')));
    await until(() => document.querySelectorAll('#duplicate-groups .dup-group').length === 5);
    const toggle = document.querySelector<HTMLButtonElement>('#duplicate-show-resolved')!;
    expect(toggle.hidden).toBe(false);
    expect(toggle.textContent).toBe('Show 1 resolved group');
    toggle.click();
    expect(toggle.getAttribute('aria-pressed')).toBe('true');
    const resolved = document.querySelector<HTMLElement>('#duplicate-groups .dup-group.resolved')!;
    expect(resolved.getAttribute('aria-label')).toContain('resolved');
    expect([...resolved.querySelectorAll('.dup-member .name')].map((n) => n.textContent)).toEqual(members);
    expect(resolved.querySelector('.dup-member.keep .name')!.textContent).toBe(kept);
    expect(resolved.querySelector('select')!.disabled).toBe(true);
    // Reopened, it is listed as before.
    [...resolved.querySelectorAll('button')].find((b) => b.textContent === 'Reopen')!.click();
    await until(() => document.querySelectorAll('#duplicate-groups .dup-group.resolved').length === 0);
    expect(marked[1].slice(2)).toEqual([null]);
    expect(document.querySelectorAll('#duplicate-groups .dup-group').length).toBe(6);
    expect(toggle.hidden).toBe(true);
  });

  it('clicking a member shows its neighbours', async () => {
    const app = await exploring();
    app.screens.explore.showView('duplicates');
    await until(() => document.querySelectorAll('.dup-member').length > 0);
    document.querySelector<HTMLButtonElement>('.dup-member')!.click();
    await until(() => document.querySelectorAll('#neighbors .neighbor').length > 0);
    expect(document.querySelector<HTMLElement>('#explore-panel-neighbors')!.hidden).toBe(false);
  });
});

describe('Clusters', () => {
  it('offer the suggested k, show sizes and typical members, and export the assignment', async () => {
    const app = await exploring();
    app.screens.explore.showView('clusters');
    await until(() => document.querySelectorAll('#cluster-list .cluster').length === 6);
    expect(document.querySelector<HTMLInputElement>('#cluster-k')!.value).toBe('6');
    expect(text('#cluster-suggested')).toContain('one per label folder');
    expect(text('#cluster-summary')).toBe('6 clusters of 30 images, largest first: sizes 5, 5, 5, 5, 5, 5.');
    expect(text('#cluster-list .cluster header')).toContain('100 %');
    const k = document.querySelector<HTMLInputElement>('#cluster-k')!;
    k.value = '3';
    document.querySelector<HTMLButtonElement>('#cluster-run')!.click();
    await until(() => document.querySelectorAll('#cluster-list .cluster').length === 3);
    expect(text('#cluster-summary')).toContain('sizes 10, 10, 10');
    k.value = '0';
    document.querySelector<HTMLButtonElement>('#cluster-run')!.click();
    await until(() => text('.explore .notices').includes('whole number from 1 to 30'));
    window.spreadoutTest!.answerDialogs(['/chosen/clusters.csv']);
    k.value = '3';
    document.querySelector<HTMLButtonElement>('#cluster-csv')!.click();
    await until(() => text('.explore .notices').includes('/chosen/clusters.csv'));
  });
});

describe('Map', () => {
  it('switches between PCA and UMAP, with progress for UMAP', async () => {
    const app = await exploring();
    await until(() => app.screens.explore.neighbors.map.element.dataset.method === 'pca');
    const select = document.querySelector<HTMLSelectElement>('#map-method')!;
    select.value = 'umap';
    select.dispatchEvent(new Event('change'));
    await until(() => app.screens.explore.neighbors.map.element.dataset.method === 'umap');
    expect(app.screens.explore.neighbors.map.groupSizes().reduce((a, b) => a + b, 0)).toBe(30);
  });
});

describe('A million images', () => {
  it('opens: the grid holds only the rows in view, End and a click answer with neighbours, the map draws a sample', async () => {
    // The backend's answers for a library of a million: what the desktop backend sends for one
    // (file list, neighbours, every image's place on the map), the rest of the mock as it is.
    const n = 1_000_000;
    const file = (i: number) => `/library/${2000 + Math.floor(i / 100_000)}/${String(Math.floor(i / 1000) % 100).padStart(3, '0')}/IMG_${String(i).padStart(7, '0')}.png`;
    const backend = quickBackend();
    const open = backend.openCollection;
    backend.openCollection = async (...args) => ({ ...(await open(...args)), files: Array.from({ length: n }, (_, i) => file(i)), labels: new Array(n).fill(null), label_names: [], suggested_clusters: 50 });
    const asked: number[] = [];
    backend.neighbors = async (_key, index, k) => {
      asked.push(index);
      return Array.from({ length: k }, (_, m) => ({ path: file((index + 1 + m) % n), score: 0.9 - m / 100, same_label: null }));
    };
    backend.embeddingMap = async () => Array.from({ length: n }, (_, i): [number, number] => [i % 1000, Math.floor(i / 1000)]);
    const app = await exploring(backend);
    const grid = document.querySelector<HTMLElement>('.explore .grid')!;
    expect(document.querySelectorAll('.explore .grid .cell').length).toBeLessThan(500);
    // A click on the first image, then the last reached from the keyboard (jsdom lays nothing
    // out, so the grid cannot scroll there to be clicked).
    document.querySelector<HTMLButtonElement>('.explore .grid .cell')!.click();
    await until(() => document.querySelectorAll('#neighbors .neighbor').length === 10);
    expect(text('#neighbors')).toContain('Nearest 10 of IMG_0000000.png');
    press(grid, 'End');
    press(grid, 'Enter');
    await until(() => text('#neighbors').includes('Nearest 10 of IMG_0999999.png'));
    expect(asked).toEqual([0, n - 1]);
    expect(document.querySelectorAll('.explore .grid .cell').length).toBeLessThan(500);
    // Every image has its place; an even sample of them is drawn.
    await until(() => app.screens.explore.neighbors.map.groupSizes()[0] === n);
    expect(Number(app.screens.explore.neighbors.map.element.dataset.points)).toBe(50_000);
  });
});

describe('Small parts', () => {
  it('a threshold splits a histogram bin linearly', () => {
    const histogram = { lo: 0, hi: 1, counts: [0, 2, 2, 0] };
    expect(fractionAbove(histogram, 0.5)).toBe(0.5);
    expect(fractionAbove(histogram, 0.375)).toBe(0.75);
    expect(fractionAbove(histogram, 0.9)).toBe(0);
    expect(fractionAbove({ lo: 0, hi: 1, counts: [0, 0] }, 0.5)).toBe(0);
  });

  it('the threshold plot starts a little below the lowest similarity', () => {
    const at = (lowestBin: number) => {
      const counts = Array.from({ length: 2000 }, (_, i) => (i >= lowestBin ? 1 : 0));
      return startOf([{ label: 'x', className: 'x', histogram: { lo: -1, hi: 1, counts } }]);
    };
    expect(at(1600)).toBe(0.56); // data from 0.6: a tenth of the range below it
    expect(at(1999)).toBe(0.99); // everything at the top: the last 0.01 shown
    expect(at(0)).toBe(0); // never below 0
  });

  it('only the newest request counts', () => {
    const latest = new Latest();
    const first = latest.next();
    const second = latest.next();
    expect([latest.is(first), latest.is(second)]).toEqual([false, true]);
  });
});

describe('Run folders', () => {
  it('show their disk use and can be renamed, and deleted after a second confirmation', async () => {
    const backend = quickBackend();
    const app = await mountApp(backend);
    await startTraining(app, { epochs: 2, batch_size: 10 });
    await until(() => app.store.shared.run?.status === 'finished');
    app.go('export');
    await until(() => text('#run-disk').includes('MiB'));
    expect(text('#run-disk')).toContain('16.6 MiB (checkpoint, model, 2 snapshots)');
    document.querySelector<HTMLButtonElement>('#run-rename')!.click();
    const name = document.querySelector<HTMLInputElement>('#run-new-name')!;
    expect(name.value).toBe('run-1');
    name.value = 'holiday/photos';
    document.querySelector<HTMLButtonElement>('#run-rename-confirm')!.click();
    await until(() => text('.export .notices').includes('cannot name a run folder'));
    document.querySelector<HTMLButtonElement>('#run-rename')!.click();
    document.querySelector<HTMLInputElement>('#run-new-name')!.value = 'holiday photos';
    document.querySelector<HTMLButtonElement>('#run-rename-confirm')!.click();
    await until(() => document.querySelector<HTMLSelectElement>('#export-run')!.value === '/mock/runs/holiday photos');
    document.querySelector<HTMLButtonElement>('#run-delete')!.click();
    expect(text('[role="alertdialog"]')).toContain('The images it trained on are not touched');
    document.querySelector<HTMLButtonElement>('#run-delete-confirm')!.click();
    await until(() => text('.export .notices').includes('Deleted /mock/runs/holiday photos (16.6 MiB freed)'));
    expect(document.querySelectorAll('#export-run option').length).toBe(0);
    expect((await backend.listRuns()).length).toBe(0);
  });
});
