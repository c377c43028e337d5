import { beforeEach, describe, expect, it } from 'vitest';
import { ThumbnailGrid } from '../src/components/grid';
import { neighborStrip } from '../src/components/neighbors';
import { ProgressBar } from '../src/components/progress';
import { Notices } from '../src/screen';
import { mountApp, startTraining, text, until } from './helpers';

beforeEach(() => localStorage.clear());

const key = (target: Element, name: string) => target.dispatchEvent(new KeyboardEvent('keydown', { key: name, bubbles: true }));

describe('screen tabs', () => {
  it('are a tablist with one tabpanel, one tab in the Tab order', async () => {
    await mountApp();
    const tabs = [...document.querySelectorAll<HTMLButtonElement>('[role="tablist"][aria-label="Screens"] [role="tab"]')];
    expect(tabs.map((tab) => tab.id)).toEqual(['tab-data', 'tab-augment', 'tab-train', 'tab-explore', 'tab-export']);
    const panel = document.getElementById('screen')!;
    expect(panel.getAttribute('role')).toBe('tabpanel');
    expect(tabs.every((tab) => tab.getAttribute('aria-controls') === 'screen')).toBe(true);
    expect(tabs.map((tab) => tab.getAttribute('aria-selected'))).toEqual(['true', 'false', 'false', 'false', 'false']);
    expect(tabs.map((tab) => tab.tabIndex)).toEqual([0, -1, -1, -1, -1]);
    expect(panel.getAttribute('aria-labelledby')).toBe('tab-data');

    tabs[2].click();
    expect(tabs.map((tab) => tab.getAttribute('aria-selected'))).toEqual(['false', 'false', 'true', 'false', 'false']);
    expect(tabs.map((tab) => tab.tabIndex)).toEqual([-1, -1, 0, -1, -1]);
    expect(panel.getAttribute('aria-labelledby')).toBe('tab-train');
    expect(panel.querySelector('.screen.train')).not.toBeNull();
  });

  it('move the focus with Left/Right (wrapping), Home and End; the focused tab opens when pressed', async () => {
    await mountApp();
    const tab = (id: string) => document.getElementById(`tab-${id}`)!;
    tab('data').focus();
    key(document.activeElement!, 'ArrowRight');
    expect(document.activeElement).toBe(tab('augment'));
    key(document.activeElement!, 'End');
    expect(document.activeElement).toBe(tab('export'));
    key(document.activeElement!, 'ArrowRight');
    expect(document.activeElement).toBe(tab('data'));
    key(document.activeElement!, 'ArrowLeft');
    expect(document.activeElement).toBe(tab('export'));
    key(document.activeElement!, 'Home');
    expect(document.activeElement).toBe(tab('data'));
    key(document.activeElement!, 'ArrowRight');
    key(document.activeElement!, 'ArrowRight');
    // Moving the focus does not open the screen (Explore would start embedding on the way past).
    expect(tab('train').getAttribute('aria-selected')).toBe('false');
    expect(tab('data').getAttribute('aria-selected')).toBe('true');
    (document.activeElement as HTMLButtonElement).click();
    expect(tab('train').getAttribute('aria-selected')).toBe('true');
  });
});

describe('shortcuts', () => {
  it('Ctrl+1…5 open the screens by the digit keys\' place, so they work on AZERTY too', async () => {
    await mountApp();
    // On AZERTY the key left of 3 types "é" (the digit needs Shift); its code is still Digit2.
    document.dispatchEvent(new KeyboardEvent('keydown', { key: 'é', code: 'Digit2', ctrlKey: true, bubbles: true }));
    expect(document.getElementById('tab-augment')!.getAttribute('aria-selected')).toBe('true');
    document.dispatchEvent(new KeyboardEvent('keydown', { key: '5', code: 'Digit5', ctrlKey: true, bubbles: true }));
    expect(document.getElementById('tab-export')!.getAttribute('aria-selected')).toBe('true');
    document.dispatchEvent(new KeyboardEvent('keydown', { key: '6', code: 'Digit6', ctrlKey: true, bubbles: true }));
    expect(document.getElementById('tab-export')!.getAttribute('aria-selected')).toBe('true');
  });
});

describe('run folder dialogs', () => {
  it('open one at a time, take the focus, and give it back when Escape or Cancel closes them', async () => {
    const app = await mountApp();
    await startTraining(app, { epochs: 1, batch_size: 10 });
    await until(() => app.store.shared.run?.status === 'finished');
    app.go('export');
    await until(() => document.querySelector('#run-rename') !== null);
    const rename = document.querySelector<HTMLButtonElement>('#run-rename')!;
    const remove = document.querySelector<HTMLButtonElement>('#run-delete')!;
    rename.click();
    rename.click();
    expect(document.querySelectorAll('#run-new-name').length).toBe(1);
    expect(document.activeElement).toBe(document.querySelector('#run-new-name'));
    remove.click();
    remove.click();
    expect(document.querySelectorAll('#run-new-name').length).toBe(0);
    const dialogs = document.querySelectorAll<HTMLElement>('[role="alertdialog"]');
    expect(dialogs.length).toBe(1);
    expect(dialogs[0].getAttribute('aria-modal')).toBe('true');
    expect(document.activeElement).toBe(document.querySelector('#run-delete-confirm'));
    key(document.activeElement!, 'Escape');
    expect(document.querySelector('[role="alertdialog"]')).toBeNull();
    expect(document.activeElement).toBe(remove);
    rename.click();
    [...document.querySelectorAll<HTMLButtonElement>('.run-action button')].find((b) => b.textContent === 'Cancel')!.click();
    expect(document.querySelector('#run-new-name')).toBeNull();
    expect(document.activeElement).toBe(rename);
  });
});

describe('thumbnail grid', () => {
  it('marks the selected cell and names it as the active descendant', async () => {
    await mountApp();
    await window.spreadoutTest!.openFolder('/mock/photos', null);
    const grid = document.querySelector<HTMLElement>('.data .grid')!;
    expect(grid.getAttribute('role')).toBe('grid');
    expect(grid.getAttribute('aria-label')).toBe('Images in the folder');
    const selected = () => [...grid.querySelectorAll('[role="gridcell"][aria-selected="true"]')];
    expect(selected().map((cell) => cell.getAttribute('data-index'))).toEqual(['0']);
    expect(grid.querySelectorAll('[role="gridcell"][aria-selected="false"]').length).toBe(grid.querySelectorAll('[role="gridcell"]').length - 1);
    expect(grid.getAttribute('aria-activedescendant')).toBe(selected()[0].id);
    key(grid, 'ArrowRight');
    expect(selected().map((cell) => cell.getAttribute('data-index'))).toEqual(['1']);
    expect(grid.getAttribute('aria-activedescendant')).toBe(selected()[0].id);
    expect(grid.querySelector('[role="row"]')!.getAttribute('aria-rowindex')).toBe('1');
    expect(Number(grid.getAttribute('aria-rowcount'))).toBe(Math.ceil(30 / Number(grid.getAttribute('aria-colcount'))));
  });

  it('gives each grid its own cell ids, and drops the active descendant when empty', () => {
    const grids = [0, 1].map(() => new ThumbnailGrid({ thumbnailUrl: (path) => path }));
    grids.forEach((grid) => grid.setItems([{ path: '/a.png' }]));
    const [first, second] = grids.map((grid) => grid.element.getAttribute('aria-activedescendant'));
    expect(first).toBeTruthy();
    expect(first).not.toBe(second);
    grids[0].setItems([]);
    expect(grids[0].element.hasAttribute('aria-activedescendant')).toBe(false);
  });
});

describe('live regions', () => {
  it('announce notices politely and errors at once', () => {
    const notices = new Notices();
    expect(notices.element.getAttribute('aria-live')).toBe('polite');
    notices.warn('Low disk space.');
    notices.error('Could not open /x', { code: 'files', message: 'not found' });
    const [warning, error] = notices.element.children;
    expect(warning.getAttribute('role')).toBeNull();
    expect(error.getAttribute('role')).toBe('alert');
    expect(error.textContent).toContain('Could not open /x: not found');
  });

  it('keep a progress bar\'s status in the page while idle, and label the bar with it', () => {
    const progress = new ProgressBar(() => {});
    const label = progress.element.querySelector('[role="status"]')!;
    const bar = progress.element.querySelector('progress')!;
    expect(label.textContent).toBe('');
    expect(bar.hidden).toBe(true);
    progress.show('Checking 3 / 10', 3, 10);
    expect(label.textContent).toBe('Checking 3 / 10');
    expect(bar.hidden).toBe(false);
    expect(bar.getAttribute('aria-labelledby')).toBe(label.id);
    progress.hide();
    expect(label.textContent).toBe('');
    expect(progress.element.contains(label)).toBe(true);
  });

  it('report the training state in the status line and the header badge', async () => {
    const app = await mountApp();
    expect(document.getElementById('run-badge')!.getAttribute('role')).toBe('status');
    await startTraining(app, { epochs: 1, batch_size: 10 });
    expect(document.getElementById('train-status')!.getAttribute('role')).toBe('status');
    expect(document.getElementById('train-progress')!.getAttribute('aria-label')).toBe('Training progress');
    await until(() => app.store.shared.run?.status === 'finished');
    expect(text('#run-badge')).toBe('Finished: 1 epoch done');
  });
});

describe('neighbour strips', () => {
  it('say same or other label in words as well as by the frame colour', () => {
    const strip = neighborStrip(
      '/q/cat/1.png',
      [
        { path: '/d/cat/2.png', score: 0.91, same_label: true },
        { path: '/d/dog/3.png', score: 0.8, same_label: false },
        { path: '/d/x/4.png', score: 0.7, same_label: null },
      ],
      { thumbnailUrl: (path) => path },
    );
    const tiles = [...strip.querySelectorAll('.neighbor')];
    expect(tiles.map((tile) => tile.querySelector('.label-mark')?.textContent ?? null)).toEqual(['✓ same', '✗ other', null]);
    expect(tiles.map((tile) => tile.getAttribute('aria-label'))).toEqual([
      '1: 2.png, cosine 0.910, same label as the query',
      '2: 3.png, cosine 0.800, another label than the query',
      '3: 4.png, cosine 0.700',
    ]);
    expect(tiles.map((tile) => tile.classList.contains('same') || tile.classList.contains('other'))).toEqual([true, true, false]);
  });

  it('appear in the training probes', async () => {
    const app = await mountApp();
    await startTraining(app, { epochs: 1, batch_size: 10 });
    await until(() => app.store.shared.run?.status === 'finished');
    expect(document.querySelectorAll('#probes .neighbor.same .label-mark').length).toBe(document.querySelectorAll('#probes .neighbor.same').length);
    expect(text('#probes')).toContain('✗ other');
  });
});

describe('training charts', () => {
  it('describe the run in words as it goes', async () => {
    const app = await mountApp();
    await startTraining(app, { epochs: 2, batch_size: 10 });
    await until(() => app.store.shared.run?.status === 'finished');
    const summaries = [...document.querySelectorAll('.train .plot-summary')].map((p) => p.textContent);
    expect(summaries[0]).toMatch(/^loss: 6 values, step 1 to 6; latest [\d.]+, lowest [\d.]+ at step 6, highest [\d.]+ at step 1\.$/);
    expect(summaries[1]).toBe('kNN (top-1 %): 2 values, epoch 1 to 2; latest 70, lowest 50 at epoch 1, highest 70 at epoch 2.');
    expect(summaries[2]).toMatch(/^same-label neighbours: mean cosine similarity [\d.]+, most pairs near [\d.]+\. other-label neighbours: /);
  });
});
