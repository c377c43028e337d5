// Drives the real app: open a generated folder (with planted copies), then one with a camera raw file and
// iPhone-style HEIC photos among the pictures, check augmentations, train
// a tiny model for two epochs, watch the curves and histogram fill, query neighbours in Explore,
// find the planted copies among the near-duplicates, cluster the folder, draw its UMAP map, export
// the model and the embeddings, and read both files back; then close the window in the middle of
// a run, start the app again and resume the run to its end. Saves a screenshot of every screen.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import assert from 'node:assert/strict';

const SHOTS = resolve(process.env.SPREADOUT_SCREENSHOTS ?? 'docs/screenshots');

/** A 32×32 24-bit BMP (a format the app reads) of `pixel(x, y) -> [r, g, b]`. */
function bmp(pixel) {
  const size = 32;
  const row = size * 3;
  const data = Buffer.alloc(54 + row * size);
  data.write('BM', 0);
  data.writeUInt32LE(data.length, 2);
  data.writeUInt32LE(54, 10);
  data.writeUInt32LE(40, 14);
  data.writeInt32LE(size, 18);
  data.writeInt32LE(size, 22);
  data.writeUInt16LE(1, 26);
  data.writeUInt16LE(24, 28);
  data.writeUInt32LE(row * size, 34);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const [r, g, b] = pixel(x, size - 1 - y);
      const at = 54 + y * row + x * 3;
      data[at] = b;
      data[at + 1] = g;
      data[at + 2] = r;
    }
  }
  return data;
}

/** Each image's own tint: shifted stripes alone repeat every 8 images, and a young network's
 * pooling barely tells shifts apart, so without it some generated images would be duplicates. */
const tint = (k) => [((k * 37) % 61) - 30, ((k * 53) % 61) - 30, ((k * 71) % 61) - 30];
const clamp = (v) => Math.max(0, Math.min(255, Math.round(v)));
const tinted = (rgb, k) => rgb.map((v, c) => clamp(v + tint(k)[c]));

/** Three visually distinct classes; image k of a class is `CLASSES[name](x, y, k)`. */
const CLASSES = {
  stripes: (x, y, k) => tinted((y + k) % 8 < 4 ? [220, 60, 40] : [250, 240, 220], k),
  columns: (x, y, k) => tinted((x + k) % 8 < 4 ? [40, 90, 200] : [235, 240, 250], k),
  blob: (x, y, k) => tinted((x - 16 - (k % 5)) ** 2 + (y - 16) ** 2 < 90 + 10 * (k % 4) ? [30, 160, 80] : [245, 245, 240], k),
};

/**
 * A camera raw file as cameras lay them out, TIFF-based (byte order, an IFD with the Orientation
 * tag), holding a 32 px JPEG preview of the "columns" class (written by the `image` crate): the
 * app reads raw files through that preview.
 */
function rawFile() {
  const header = Buffer.alloc(26);
  header.write('II*\0', 0, 'latin1');
  header.writeUInt32LE(8, 4);
  header.writeUInt16LE(1, 8);
  header.writeUInt16LE(0x0112, 10);
  header.writeUInt16LE(3, 12);
  header.writeUInt32LE(1, 14);
  header.writeUInt32LE(1, 18);
  header.writeUInt32LE(0, 22);
  return Buffer.concat([header, Buffer.from(COLUMNS_JPEG, 'base64')]);
}
const COLUMNS_JPEG =
  '/9j/4AAQSkZJRgABAgAAAQABAAD/wAARCAAgACADAREAAhEBAxEB/9sAQwAGBAUGBQQGBgUGBwcGCAoQCgoJCQoUDg8MEBcUGBgXFBYWGh0lHxobIxwWFiAsICMmJykqKRkfLTAtKDAlKCko/9sAQwEHBwcKCAoTCgoTKBoWGigoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDsPiX/AMkc8K/9un/pO1fT5f8A7/V/7e/9KR5WJ/3eHy/IPiX/AMkc8K/9un/pO1GX/wC/1f8At7/0pBif93h8vyD4l/8AJHPCv/bp/wCk7UZf/v8AV/7e/wDSkGJ/3eHy/IPiX/yRzwr/ANun/pO1GX/7/V/7e/8ASkGJ/wB3h8vyD4l/8kc8K/8Abp/6TtRl/wDv9X/t7/0pBif93h8vyD4l/wDJHPCv/bp/6TtRl/8Av9X/ALe/9KQYn/d4fL8g+Jf/ACRzwr/26f8ApO1GX/7/AFf+3v8A0pBif93h8vyD4l/8kc8K/wDbp/6TtRl/+/1f+3v/AEpBif8Ad4fL8g+Jf/JHPCv/AG6f+k7UZf8A7/V/7e/9KQYn/d4fL8g+Jf8AyRzwr/26f+k7UZf/AL/V/wC3v/SkGJ/3eHy/IPiX/wAkc8K/9un/AKTtRl/+/wBX/t7/ANKQYn/d4fL8g+Jf/JHPCv8A26f+k7UZf/v9X/t7/wBKQYn/AHeHy/IPiX/yRzwr/wBun/pO1GX/AO/1f+3v/SkGJ/3eHy/IPiX/AMkc8K/9un/pO1GX/wC/1f8At7/0pBif93h8vyD4l/8AJHPCv/bp/wCk7UZf/v8AV/7e/wDSkGJ/3eHy/IPiX/yRzwr/ANun/pO1GX/7/V/7e/8ASkGJ/wB3h8vyP//Z';

/** `perClass` images of each class (numbered from `seed`). */
function generateFolder(root, perClass, seed) {
  for (const [name, paint] of Object.entries(CLASSES)) {
    mkdirSync(join(root, name), { recursive: true });
    for (let i = 0; i < perClass; i++) writeFileSync(join(root, name, `${i}.bmp`), bmp((x, y) => paint(x, y, i + seed)));
  }
}

/** Copies planted beside training images: byte-identical, slightly brightened, and with a few
 * pixels darkened (gentle edits: the model here is a width-4 network after two epochs; how well
 * the finder does on harder edits is measured by benchmarks/near-duplicates/run.sh). */
const PLANTED = [
  { name: 'stripes', index: 0, copy: 'stripes/0-copy.bmp', edit: (rgb) => rgb },
  { name: 'columns', index: 2, copy: 'columns/2-brighter.bmp', edit: (rgb) => rgb.map((v) => clamp(v + 6)) },
  { name: 'blob', index: 5, copy: 'blob/5-speckled.bmp', edit: (rgb, x, y) => ((x * 7 + y * 13) % 97 === 0 ? rgb.map((v) => clamp(v - 25)) : rgb) },
].map((planted) => ({ ...planted, original: `${planted.name}/${planted.index}.bmp` }));

async function screenshot(name) {
  mkdirSync(SHOTS, { recursive: true });
  // Let the webview paint what the DOM already holds before capturing it.
  await browser.executeAsync((done) => requestAnimationFrame(() => requestAnimationFrame(() => done())));
  await browser.pause(300);
  await browser.saveScreenshot(join(SHOTS, `${name}.png`));
}

async function tab(id) {
  await $(`#tab-${id}`).click();
}

function safetensorsHeader(path) {
  const bytes = readFileSync(path);
  const length = Number(bytes.readBigUInt64LE(0));
  return JSON.parse(bytes.subarray(8, 8 + length).toString('utf8'));
}

describe('Spreadout desktop app', () => {
  const work = mkdtempSync(join(tmpdir(), 'spreadout-e2e-'));
  const train = join(work, 'train');
  const test = join(work, 'test');
  const rawFolder = join(work, 'with-raw');
  const started = Date.now();

  before(async () => {
    generateFolder(train, 12, 0);
    for (const { name, index, copy, edit } of PLANTED) writeFileSync(join(train, copy), bmp((x, y) => edit(CLASSES[name](x, y, index), x, y)));
    generateFolder(test, 4, 100);
    writeFileSync(join(train, 'stripes', 'broken.jpg'), 'not really a JPEG');
    // A folder of its own, so the training folder (and what its runs find) stays as it is.
    generateFolder(rawFolder, 1, 200);
    writeFileSync(join(rawFolder, 'columns', 'raw-photo.nef'), rawFile());
    // HEIC photos as iPhones write them (HEVC in a HEIF container; one portrait, turned by its irot
    // property); the fixtures' README says how they were made.
    for (const name of ['photo.heic', 'rotated.heic']) copyFileSync(resolve('tests/fixtures/heif', name), join(rawFolder, 'columns', name));
    await browser.setWindowSize(1400, 900);
    await browser.waitUntil(() => browser.execute(() => window.spreadoutTest !== undefined), { timeout: 60_000, timeoutMsg: 'the app did not expose its test hooks' });
  });

  after(() => console.log(`end-to-end run: ${Math.round((Date.now() - started) / 1000)} s`));

  it('opens a folder and reports what it holds', async () => {
    await browser.executeAsync((train, test, done) => window.spreadoutTest.openFolder(train, test).then(done), train, test);
    await expect($('#image-count')).toHaveText('40');
    await expect($('#label-folders')).toHaveText(expect.stringContaining('blob (13)'));
    await expect($('#check-result')).toHaveText(expect.stringContaining('1 skipped'));
    await expect($('.skipped-table')).toHaveText(expect.stringContaining('broken.jpg'));
    await browser.waitUntil(async () => (await $$('.grid .cell img')).length > 10);
    await screenshot('data');
  });

  it('reads camera raw and HEIC files among the pictures, with thumbnails', async () => {
    await browser.executeAsync((folder, done) => window.spreadoutTest.openFolder(folder, null).then(done), rawFolder);
    await expect($('#image-count')).toHaveText('6');
    await expect($('#raw-note')).toHaveText(expect.stringContaining('1 read through the full-size JPEG preview'));
    await expect($('#heif-note')).toHaveText(expect.stringContaining('2 decoded through libheif'));
    await expect($('#check-result')).toHaveText('All 6 images decode.');
    for (const name of ['raw-photo.nef', 'photo.heic', 'rotated.heic']) {
      await browser.waitUntil(
        () => browser.execute((name) => [...document.querySelectorAll('.grid .cell')].some((cell) => cell.title.endsWith(name) && cell.querySelector('img')?.naturalWidth > 0), name),
        { timeoutMsg: `no thumbnail of ${name}` },
      );
    }
    await screenshot('data-raw-heic');
    // Back to the folder the rest of the run works on.
    await browser.executeAsync((train, test, done) => window.spreadoutTest.openFolder(train, test).then(done), train, test);
    await expect($('#image-count')).toHaveText('40');
  });

  it('previews augmented views', async () => {
    await tab('augment');
    await browser.waitUntil(async () => (await $$('.pair img')).length >= 6 * 3, { timeoutMsg: 'no augmentation previews' });
    await screenshot('augmentations');
  });

  it('trains for two epochs with live curves and histogram', async () => {
    await browser.execute(() => window.spreadoutTest.setConfig({ epochs: 2, batch_size: 4, width: 8, image_size: 32 }));
    await tab('train');
    await $('#device').selectByAttribute('value', 'cpu');
    await $('#start').click();
    const points = (selector) => browser.execute((s) => Number(document.querySelector(s)?.dataset.points ?? 0), selector);
    await browser.waitUntil(async () => (await points('.plot.curve')) > 0, { timeout: 10 * 60_000, timeoutMsg: 'no loss point arrived' });
    await browser.waitUntil(async () => (await $('#train-status').getAttribute('data-phase')) === 'finished', { timeout: 10 * 60_000, interval: 1000, timeoutMsg: 'training did not finish' });
    await expect($('#train-status')).toHaveText(expect.stringContaining('Finished: 2 epochs'));
    assert.ok((await points('.plot.curve')) >= 2, 'loss curve drawn (steps arrive throttled, the first and last always)');
    const knn = await browser.execute(() => Number(document.querySelectorAll('.plot.curve')[1].dataset.points));
    assert.equal(knn, 2, 'kNN curve has a point per epoch');
    assert.ok((await points('.plot.histogram')) > 0, 'histogram drawn');
    await expect($('#epoch-summary')).toHaveText(expect.stringContaining('Epoch 2'));
    assert.ok((await $$('#probes .neighbor')).length >= 5, 'probe neighbours shown');
    await screenshot('train');
  });

  it('shows the neighbours of a clicked image with scores', async () => {
    await tab('explore');
    await browser.waitUntil(async () => (await $$('.explore .grid .cell')).length > 5, { timeout: 120_000, timeoutMsg: 'collection not embedded' });
    await (await $$('.explore .grid .cell'))[3].click();
    await browser.waitUntil(async () => (await $$('#neighbors .neighbor')).length === 10, { timeoutMsg: 'no neighbours' });
    const scores = await browser.execute(() => [...document.querySelectorAll('#neighbors .neighbor .score')].map((s) => Number(s.textContent)));
    assert.ok(scores.every((s) => s >= -1 && s <= 1), `scores are cosines: ${scores}`);
    assert.deepEqual(scores, [...scores].sort((a, b) => b - a));
    assert.equal((await $$('#neighbors .neighbor.same, #neighbors .neighbor.other')).length, 10, 'label frames');
    await browser.waitUntil(async () => Number(await $('.plot.scatter').getAttribute('data-points')) === 39);
    assert.equal((await $$('.explore .notice.error')).length, 0, 'no errors (file drop listener registered)');
    await $('#compare').click();
    // Two epochs keep two snapshots, the second being the latest model: two rows of neighbours.
    await browser.waitUntil(async () => (await $$('.comparison .strip-block')).length === 2, { timeout: 120_000, timeoutMsg: 'no comparison across snapshots' });
    await screenshot('explore');
  });

  it('finds the planted copies among the near-duplicates', async () => {
    await $('#explore-tab-duplicates').click();
    await browser.waitUntil(async () => (await $$('#duplicate-groups .dup-group')).length > 0, { timeout: 120_000, timeoutMsg: 'no near-duplicate groups' });
    await expect($('#duplicate-how')).toHaveText(expect.stringContaining('Suggested threshold'));
    const groups = await browser.execute(() =>
      [...document.querySelectorAll('#duplicate-groups .dup-group')].map((group) => [...group.querySelectorAll('.dup-member')].map((member) => member.title.split('\n')[0])),
    );
    for (const { original, copy } of PLANTED) {
      const together = groups.some((members) => members.includes(join(train, original)) && members.includes(join(train, copy)));
      assert.ok(together, `${copy} is grouped with ${original} (${await $('#duplicate-how').getText()}): ${JSON.stringify(groups)}`);
    }
    await screenshot('duplicates');
    const csv = join(work, 'near-duplicates.csv');
    await browser.execute((answer) => window.spreadoutTest.answerDialogs([answer]), csv);
    await $('#duplicate-csv').click();
    await browser.waitUntil(() => existsSync(csv), { timeoutMsg: 'no CSV written' });
    const lines = readFileSync(csv, 'utf8').trim().split('\n');
    assert.equal(lines[0], 'group,path,similarity,stage,hash_bits,keep,resolved');
    assert.ok(lines.some((line) => line.includes(PLANTED[0].copy)), 'the CSV lists the byte-identical copy');
    // The byte-identical copy's hash equals its original's: linked by the hashes at 0 bits.
    assert.ok(lines.some((line) => /,(both|hash),0,(true|false),false$/.test(line)), `a pair linked by its hashes at 0 bits: ${lines.join(' | ')}`);
    // Every group names one copy to keep, with the reason on its picture.
    const keeps = await browser.execute(() => [...document.querySelectorAll('#duplicate-groups .dup-group')].map((g) => g.querySelectorAll('.dup-member.keep .keep-badge').length));
    assert.ok(keeps.every((count) => count === 1), `one copy to keep a group: ${keeps}`);
    // Marked resolved, the first group is set aside, and the export says so.
    const before = groups.length;
    await browser.execute(() => [...document.querySelector('#duplicate-groups .dup-group').querySelectorAll('button')].find((b) => b.textContent === 'Mark resolved').click());
    await browser.waitUntil(async () => (await $$('#duplicate-groups .dup-group')).length === before - 1, { timeoutMsg: 'the resolved group is still listed' });
    await expect($('#duplicate-summary')).toHaveText(expect.stringContaining('1 more marked resolved'));
    await browser.execute((answer) => window.spreadoutTest.answerDialogs([answer]), csv);
    await $('#duplicate-csv').click();
    await browser.waitUntil(() => readFileSync(csv, 'utf8').includes(',true\n'), { timeoutMsg: 'no resolved group in the CSV' });
  });

  it('clusters the folder into groups with their typical images', async () => {
    await $('#explore-tab-clusters').click();
    await browser.waitUntil(async () => (await $$('#cluster-list .cluster')).length === 3, { timeout: 120_000, timeoutMsg: 'no clusters' });
    await expect($('#cluster-suggested')).toHaveText(expect.stringContaining('one per label folder'));
    const sizes = await browser.execute(() => [...document.querySelectorAll('#cluster-list .cluster')].map((c) => c.querySelectorAll('.cluster-member').length));
    assert.ok(sizes.every((size) => size > 0), `every cluster shows members: ${sizes}`);
    await expect($('#cluster-summary')).toHaveText(expect.stringContaining('3 clusters of 39 images'));
    await screenshot('clusters');
  });

  it('draws the UMAP map', async () => {
    await $('#explore-tab-neighbors').click();
    await $('#map-method').selectByAttribute('value', 'umap');
    await browser.waitUntil(async () => (await $('.plot.scatter').getAttribute('data-method')) === 'umap', { timeout: 120_000, timeoutMsg: 'no UMAP map' });
    assert.equal(Number(await $('.plot.scatter').getAttribute('data-points')), 39);
    assert.equal((await $$('.explore .notice.error')).length, 0, 'no errors');
    await $('.map-wrap').scrollIntoView({ block: 'end' });
    await screenshot('explore-umap');
  });

  it('exports the model and the embeddings, and both load back', async () => {
    const modelDir = join(work, 'exported-model');
    const embeddings = join(work, 'embeddings.safetensors');
    await tab('export');
    await browser.execute((answer) => window.spreadoutTest.answerDialogs([answer]), modelDir);
    await $('#export-model').click();
    await expect($('#export-results')).toHaveText(expect.stringContaining('loads back: ResNet-18 width 8'), { wait: 60_000 });
    assert.ok(existsSync(join(modelDir, 'model.safetensors')) && existsSync(join(modelDir, 'config.json')));
    assert.deepEqual(safetensorsHeader(join(modelDir, 'model.safetensors'))['linear.weight'].shape, [128, 64]);
    await browser.execute((answer) => window.spreadoutTest.answerDialogs([answer]), embeddings);
    await $('#export-embeddings').click();
    await expect($('#export-results')).toHaveText(expect.stringContaining('embeddings [39, 128]'), { wait: 60_000 });
    const header = safetensorsHeader(embeddings);
    assert.deepEqual(header.embeddings.shape, [39, 128]);
    assert.equal(JSON.parse(header.__metadata__.paths).length, 39);
    await screenshot('export');
  });

  it('closes mid-run without losing a step, and the app started again resumes the run to its end', async () => {
    // Batches of 2 from 39 usable images: 19 steps an epoch.
    await browser.execute(() => window.spreadoutTest.setConfig({ epochs: 4, batch_size: 2, width: 8, image_size: 32 }));
    await tab('train');
    await $('#device').selectByAttribute('value', 'cpu');
    await $('#start').click();
    // The epoch and step the Train screen shows, read together from one line.
    const position = () => browser.execute(() => {
      const text = document.querySelector('#train-numbers')?.textContent ?? '';
      const epoch = /epoch (\d+) \//.exec(text);
      const step = /step (\d+) \//.exec(text);
      return epoch && step ? { epoch: Number(epoch[1]), step: Number(step[1]), text } : null;
    });
    // Inside the first epoch: no epoch's checkpoint exists yet, and the timer's is minutes away,
    // so a checkpoint can only come from the close.
    let seen = null;
    await browser.waitUntil(async () => {
      seen = await position();
      return seen !== null && seen.epoch === 1 && seen.step >= 3;
    }, { timeout: 10 * 60_000, interval: 20, timeoutMsg: 'the run did not reach its third step' });
    // The answer may never come: the app may be gone before it could send it.
    await browser.execute(() => void window.spreadoutTest.closeWindow()).catch(() => {});
    // The app stops the run, writes its checkpoint and only then closes and exits.
    await browser.waitUntil(async () => {
      try {
        await browser.getWindowHandles();
        return false;
      } catch {
        return true;
      }
    }, { timeout: 90_000, interval: 250, timeoutMsg: 'the app did not close' });
    const runs = join(process.env.SPREADOUT_DATA_DIR, 'runs');
    const run = readdirSync(runs)
      .map((name) => join(runs, name))
      .find((dir) => existsSync(join(dir, 'checkpoint.safetensors')) && JSON.parse(safetensorsHeader(join(dir, 'checkpoint.safetensors')).__metadata__.spreadout_state).config.epochs === 4);
    assert.ok(run, `the run closed at "${seen.text}" has a checkpoint`);
    const state = JSON.parse(safetensorsHeader(join(run, 'checkpoint.safetensors')).__metadata__.spreadout_state);
    assert.ok(state.epochs_completed * 19 + state.steps_into_epoch >= seen.step, `checkpoint at ${state.epochs_completed} epochs + ${state.steps_into_epoch} steps; the screen showed "${seen.text}" before closing`);

    await browser.reloadSession();
    await browser.waitUntil(() => browser.execute(() => window.spreadoutTest !== undefined), { timeout: 60_000, timeoutMsg: 'the app did not start again' });
    const offer = await $('.resume-offer');
    await expect(offer).toHaveText(expect.stringContaining(`${state.epochs_completed} of 4 epochs done`));
    await offer.$('button.secondary').click();
    await browser.waitUntil(async () => (await $('#train-status').getAttribute('data-phase')) === 'finished', { timeout: 10 * 60_000, interval: 1000, timeoutMsg: 'the resumed run did not finish' });
    await expect($('#train-status')).toHaveText(expect.stringContaining('Finished: 4 epochs'));
    assert.equal(JSON.parse(safetensorsHeader(join(run, 'checkpoint.safetensors')).__metadata__.spreadout_state).epochs_completed, 4);
  });
});
