// Data screen: choose a folder (or the demo set), see what is in it and what cannot be used, and
// browse every image in a virtualised grid.
import { baseName, h, replace } from '../dom';
import { ThumbnailGrid } from '../components/grid';
import { ProgressBar } from '../components/progress';
import { count, mebibytes } from '../format';
import type { FolderSummary } from '../backend';
import { Latest } from '../latest';
import { Notices, newJob, type Context, type Screen } from '../screen';

export class DataScreen implements Screen {
  readonly id = 'data';
  readonly title = 'Data';
  readonly element: HTMLElement;
  private readonly summary = h('div', { class: 'summary' });
  private readonly skipped = h('div', { class: 'skipped' });
  private readonly cache = h('div', { class: 'cache', id: 'image-cache' });
  private readonly notices = new Notices();
  private readonly progress: ProgressBar;
  private readonly grid: ThumbnailGrid;
  /** The folder check in progress, cancelled when another folder is opened. */
  private job: string | null = null;
  private readonly latestOpen = new Latest();

  constructor(private readonly context: Context) {
    this.progress = new ProgressBar(() => this.job && void context.backend.cancelJob(this.job));
    this.grid = new ThumbnailGrid({ thumbnailUrl: (path) => context.backend.thumbnailUrl(path), label: 'Images in the folder' });
    this.element = h(
      'section',
      { class: 'screen data' },
      h(
        'div',
        { class: 'toolbar' },
        h('button', { id: 'choose-folder', onclick: () => void this.choose() }, 'Choose folder…'),
        h('button', { id: 'use-demo', class: 'secondary', onclick: () => void this.openDemo() }, 'Use the demo data set'),
        h('span', { class: 'hint' }, 'Labels are never used for training; label folders (one subfolder per class) only score the model.'),
      ),
      this.notices.element,
      this.progress.element,
      this.summary,
      this.skipped,
      this.cache,
      this.grid.element,
    );
    this.renderSummary(null);
  }

  shown(): void {
    this.grid.attach();
    // The test folder can have changed on the Train screen.
    this.renderSummary(this.context.store.shared.folder);
  }

  private async choose(): Promise<void> {
    const path = await this.context.backend.pickFolder('Choose a folder of images');
    if (path) await this.open(path, null);
  }

  async openDemo(): Promise<void> {
    try {
      this.progress.show('Generating the demo data set…');
      const [train, test] = await this.context.backend.demoFolders();
      await this.open(train, test);
    } catch (error) {
      this.progress.hide();
      this.notices.error('Could not create the demo data set', error);
    }
  }

  /**
   * Opens `path` as the training folder; `testDir` is a labelled folder scored each epoch. Opening
   * another folder meanwhile cancels this one's check and drops its answers, so one folder's
   * results never land in another's, and the newer check keeps its progress bar and Cancel.
   */
  async open(path: string, testDir: string | null): Promise<void> {
    const { backend, store } = this.context;
    const turn = this.latestOpen.next();
    if (this.job) void backend.cancelJob(this.job);
    this.job = null;
    this.notices.clear();
    try {
      this.progress.show(`Listing ${path}…`);
      const folder = await backend.scanFolder(path);
      if (!this.latestOpen.is(turn)) return;
      store.update({ folder, check: null, testDir });
      this.renderSummary(folder);
      this.renderSkipped();
      this.grid.setItems(folder.files.map((file, i) => ({ path: file, label: labelName(folder, i) })));
      const job = newJob('check');
      this.job = job;
      const check = await backend.checkFolder(
        path,
        store.shared.config.image_size,
        job,
        this.progress.reporter((done, total) => `Checking every file decodes: ${count(done)} / ${count(total)}`),
      );
      if (!this.latestOpen.is(turn)) return;
      store.update({ check });
      this.renderSkipped();
      await this.renderCache();
    } catch (error) {
      if (this.latestOpen.is(turn)) this.notices.error(`Could not open ${path}`, error);
    } finally {
      if (this.latestOpen.is(turn)) {
        this.job = null;
        this.progress.hide();
      }
    }
  }

  private renderSummary(folder: FolderSummary | null): void {
    if (!folder) {
      replace(this.summary, h('p', { class: 'empty' }, 'Choose a folder of images (JPEG, PNG, WebP, BMP, GIF, TIFF; subfolders included), or try the built-in demo data set.'));
      return;
    }
    // One pass over the files, however many label folders there are.
    const sizes = folder.label_names.map(() => 0);
    for (const label of folder.labels) if (label !== null) sizes[label] += 1;
    const perLabel = folder.label_names.map((name, label) => `${name} (${count(sizes[label])})`);
    replace(
      this.summary,
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Folder'),
        h('dd', { id: 'folder-root' }, folder.root),
        h('dt', {}, 'Images'),
        h('dd', { id: 'image-count' }, count(folder.files.length)),
        h('dt', {}, 'Formats'),
        h('dd', {}, Object.entries(folder.formats).map(([ext, n]) => `${ext} ${count(n)}`).join(' · ')),
        folder.raw_files ? h('dt', {}, 'Camera raw') : null,
        folder.raw_files
          ? h('dd', { id: 'raw-note' }, `${count(folder.raw_files)} read through the full-size JPEG preview each embeds (the camera's own rendering; the sensor data is not developed)`)
          : null,
        folder.heif_files ? h('dt', {}, 'HEIC / AVIF') : null,
        folder.heif_files
          ? h('dd', { id: 'heif-note' }, `${count(folder.heif_files)} decoded through libheif ${folder.libheif} (the primary image, turned upright, at 8 bits)`)
          : null,
        h('dt', {}, 'Label folders'),
        h('dd', { id: 'label-folders' }, perLabel.length ? perLabel.join(', ') : 'none (kNN accuracy needs one subfolder per class)'),
        this.context.store.shared.testDir ? h('dt', {}, 'Test folder') : null,
        this.context.store.shared.testDir ? h('dd', {}, this.context.store.shared.testDir) : null,
      ),
    );
  }

  /** The preprocessed cache: where it is, what it takes, and a way to give the space back. */
  private async renderCache(): Promise<void> {
    const { backend } = this.context;
    const summary = await backend.cacheSummary();
    replace(
      this.cache,
      h(
        'p',
        { class: 'hint' },
        `Decoded images are cached in ${summary.root}: ${mebibytes(summary.bytes)} for ${count(summary.folders.length)} folder${summary.folders.length === 1 ? '' : 's'}, so later passes decode nothing. `,
        h(
          'button',
          {
            id: 'clear-cache',
            class: 'secondary',
            disabled: summary.bytes === 0,
            onclick: async () => {
              try {
                const freed = await backend.clearCache();
                this.notices.info(`Cleared the image cache (${mebibytes(freed)} freed); folders are decoded again when next used.`);
              } catch (error) {
                this.notices.error('Could not clear the image cache', error);
              }
              await this.renderCache();
            },
          },
          'Clear cache',
        ),
      ),
    );
  }

  private renderSkipped(): void {
    const check = this.context.store.shared.check;
    if (!check) return replace(this.skipped);
    // Files an earlier release could not read are tried again by this one's decoder: say so, or a
    // folder whose skipped list shrank (or did not) after an update looks unexplained.
    const one = check.retried === 1;
    const retried = check.retried
      ? h('p', { class: 'hint', id: 'retried-note' }, `${count(check.retried)} ${one ? 'file' : 'files'} skipped before ${one ? 'was' : 'were'} tried again.`)
      : null;
    if (!check.skipped.length) {
      return replace(this.skipped, h('p', { class: 'ok', id: 'check-result' }, `All ${count(check.usable)} images decode.`), retried);
    }
    replace(
      this.skipped,
      h('p', { class: 'warning', id: 'check-result' }, `${count(check.usable)} images usable; ${count(check.skipped.length)} skipped:`),
      retried,
      h(
        'table',
        { class: 'skipped-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'File'), h('th', {}, 'Why it is skipped'))),
        h('tbody', {}, ...check.skipped.map((file) => h('tr', {}, h('td', { title: file.path }, baseName(file.path)), h('td', {}, file.reason)))),
      ),
    );
  }
}

function labelName(folder: FolderSummary, index: number): string | null {
  const label = folder.labels[index];
  return label === null ? null : folder.label_names[label];
}
