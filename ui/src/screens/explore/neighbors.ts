// Explore › Neighbours & map: the open collection's images in a grid, the nearest neighbours of
// the one clicked (or of an outside image dropped on the window), the note where the model cannot
// tell copies from neighbours yet, the similarity distributions and a 2-D map of the embedding
// (PCA or UMAP). The screen chooses the collection; this panel draws everything about it.
import { baseName, h, replace } from '../../dom';
import { HistogramPlot, ScatterPlot } from '../../components/charts';
import { ThumbnailGrid } from '../../components/grid';
import { neighborStrip } from '../../components/neighbors';
import { ProgressBar } from '../../components/progress';
import type { Backend, CollectionInfo, Distributions, MapMethod, Neighbor } from '../../backend';
import { Latest } from '../../latest';
import { newJob, type Notices } from '../../screen';

export class NeighborsPanel {
  readonly element: HTMLElement;
  /** Placed in the screen's toolbar: its comparison asks for as many neighbours. */
  readonly kSelect = h('select', { id: 'explore-k' }, ...[5, 10, 20, 50].map((k) => h('option', { value: String(k), selected: k === 10 }, `${k} neighbours`)));
  readonly distributionPlot = new HistogramPlot('Cosine similarity distributions (paper Fig. 5)');
  readonly map: ScatterPlot;
  private readonly results = h('div', { id: 'neighbors', class: 'results' });
  /** Shown over the neighbour lists where the model cannot tell copies from neighbours yet. */
  private readonly readinessNote = h('p', { class: 'notice warning', id: 'readiness-note', role: 'note', hidden: true });
  private readonly grid: ThumbnailGrid;
  private readonly labelSelect = h('select', { id: 'distribution-label' });
  private readonly hover = h('img', { class: 'hover-thumb', hidden: true, alt: '' });
  private readonly mapSelect = h(
    'select',
    { id: 'map-method', 'aria-label': 'Map method' },
    h('option', { value: 'pca' }, 'PCA: two principal components'),
    h('option', { value: 'umap' }, 'UMAP: neighbourhoods kept'),
  );
  private readonly mapProgress: ProgressBar;
  private mapJob: string | null = null;
  private readonly latestQuery = new Latest();
  private readonly latestMap = new Latest();
  private collection: CollectionInfo | null = null;
  private distributions: Distributions | null = null;

  /**
   * `backend` makes the calls on an embedding (the screen's, which opens one again when the
   * backend has dropped it); `direct` the rest, thumbnails and cancels.
   */
  constructor(
    private readonly backend: Backend,
    private readonly direct: Backend,
    private readonly notices: Notices,
  ) {
    this.grid = new ThumbnailGrid({ thumbnailUrl: (path) => direct.thumbnailUrl(path), onActivate: (index) => void this.query(index), cell: 88 });
    this.map = new ScatterPlot('Embedding map (click a point to query it)', {
      onHover: (index, x, y) => this.showHover(index, x, y),
      onClick: (index) => void this.query(index),
    });
    this.mapProgress = new ProgressBar(() => this.mapJob && void direct.cancelJob(this.mapJob));
    this.mapSelect.addEventListener('change', () => void this.drawMap());
    this.labelSelect.addEventListener('change', () => this.drawDistributions());
    const dropZone = h(
      'div',
      { class: 'drop-zone', id: 'drop-zone' },
      'Drop an image from anywhere on this window to find its neighbours, or ',
      h('button', { class: 'link', onclick: () => void this.pickOutside() }, 'choose one…'),
    );
    this.element = h(
      'div',
      {},
      this.readinessNote,
      h('div', { class: 'explore-layout' }, h('div', { class: 'explore-left' }, dropZone, this.grid.element), h('div', { class: 'explore-right' }, this.results)),
      h(
        'div',
        { class: 'plots two' },
        h('div', {}, h('label', {}, 'Pairs ', this.labelSelect), this.distributionPlot.element),
        h('div', { class: 'map-wrap' }, h('label', {}, 'Map ', this.mapSelect), this.mapProgress.element, this.map.element, this.hover),
      ),
    );
  }

  /** Called each time the screen is shown: the grid measures itself once visible. */
  attach(): void {
    this.grid.attach();
  }

  /** Says `message` where the neighbours appear (before any collection is open). */
  say(...message: HTMLElement[]): void {
    replace(this.results, ...message);
  }

  /** The number of neighbours asked for. */
  k(): number {
    return Number(this.kSelect.value);
  }

  /** The index of the image selected in the grid, or -1. */
  get selection(): number {
    return this.grid.selection;
  }

  /** Shows `collection`'s images, with nothing queried yet; its plots come with `showDistributions` and `drawMap`. */
  show(collection: CollectionInfo): void {
    this.collection = collection;
    this.grid.setItems(collection.files.map((path, i) => ({ path, label: labelOf(collection, i) })));
    replace(this.results, h('p', { class: 'empty' }, 'Click an image (or select it with the arrow keys and press Enter) to see its nearest neighbours.'));
  }

  /** Says over the neighbour lists when the model cannot tell copies from neighbours yet. */
  async checkReadiness(collection: CollectionInfo): Promise<void> {
    this.readinessNote.hidden = true;
    try {
      const readiness = await this.backend.readiness(collection.key);
      if (this.collection !== collection) return;
      this.readinessNote.hidden = readiness.separates;
      this.readinessNote.textContent = readiness.note ?? '';
    } catch (error) {
      if (this.collection === collection) this.notices.error('Could not measure whether the model separates copies yet', error);
    }
  }

  /** Fetches and draws `collection`'s similarity distributions; rejects with the backend's error. */
  async showDistributions(collection: CollectionInfo): Promise<void> {
    const distributions = await this.backend.distributions(collection.key);
    if (this.collection !== collection) return;
    this.distributions = distributions;
    replace(
      this.labelSelect,
      h('option', { value: '' }, distributions.labeled ? 'all labels' : 'random pairs'),
      ...distributions.per_label.map(([name]) => h('option', { value: name }, name)),
    );
    this.drawDistributions();
  }

  /** Draws the map with the chosen method; UMAP shows its progress and can be cancelled. */
  async drawMap(): Promise<void> {
    const collection = this.collection;
    if (!collection) return;
    const method = this.mapSelect.value as MapMethod;
    const turn = this.latestMap.next();
    if (this.mapJob) void this.direct.cancelJob(this.mapJob);
    const job = newJob('map');
    this.mapJob = job;
    try {
      const points = await this.backend.embeddingMap(
        collection.key,
        method,
        job,
        this.mapProgress.reporter((done, total) => `UMAP layout of ${collection.files.length} images: epoch ${done} / ${total}`),
      );
      if (!this.latestMap.is(turn) || this.collection !== collection) return;
      this.map.set(points, collection.labels, collection.label_names, method === 'umap' ? ['UMAP 1', 'UMAP 2'] : ['PC 1', 'PC 2']);
      this.map.element.dataset.method = method;
    } catch (error) {
      if (this.latestMap.is(turn) && (error as { code?: string }).code !== 'canceled') this.notices.error('Could not draw the map', error);
    } finally {
      if (this.mapJob === job) {
        this.mapJob = null;
        this.mapProgress.hide();
      }
    }
  }

  private drawDistributions(): void {
    const d = this.distributions;
    if (!d) return;
    const label = this.labelSelect.value;
    const chosen = label ? d.per_label.find(([name]) => name === label)?.[1] : d.labeled;
    this.distributionPlot.set(
      chosen
        ? [
            { label: 'same-label neighbours', histogram: chosen.positive },
            { label: 'other-label neighbours', histogram: chosen.negative },
            { label: 'random pairs', histogram: d.random_pairs },
          ]
        : [{ label: 'random pairs', histogram: d.random_pairs }],
    );
  }

  /** Selects image `index` in the grid and shows its neighbours. */
  select(index: number): void {
    this.grid.select(index);
    void this.query(index);
  }

  /** Shows the neighbours of image `index` of the open collection. */
  async query(index: number): Promise<void> {
    const collection = this.collection;
    if (!collection) return;
    const turn = this.latestQuery.next();
    try {
      const found = await this.backend.neighbors(collection.key, index, this.k());
      if (!this.latestQuery.is(turn)) return;
      replace(this.results, this.strip(collection.files[index], found, `Nearest ${found.length} of ${baseName(collection.files[index])}`));
      this.results.querySelector<HTMLButtonElement>('.neighbor')?.focus();
    } catch (error) {
      this.notices.error('Could not find neighbours', error);
    }
  }

  /**
   * Starts a comparison of `query`'s neighbours under several embeddings; each call of the
   * function it returns adds one embedding's, below those before, as they arrive.
   */
  compare(query: string): (caption: string, found: Neighbor[]) => void {
    const rows: HTMLElement[] = [];
    return (caption, found) => {
      rows.push(this.strip(query, found, caption));
      replace(this.results, h('div', { class: 'comparison' }, ...rows));
    };
  }

  private strip(query: string, found: Neighbor[], caption: string): HTMLElement {
    return neighborStrip(query, found, {
      thumbnailUrl: (path) => this.direct.thumbnailUrl(path),
      caption,
      onPick: (path) => {
        const index = this.collection?.files.indexOf(path) ?? -1;
        if (index >= 0) this.select(index);
      },
    });
  }

  private async pickOutside(): Promise<void> {
    const path = await this.direct.pickImage();
    if (path) await this.queryOutside(path);
  }

  /** Shows the neighbours of the image at `path`, which need not be in the collection. */
  async queryOutside(path: string): Promise<void> {
    const collection = this.collection;
    if (!collection) return this.notices.warn('Open a run first, then drop an image to query it.');
    const turn = this.latestQuery.next();
    try {
      const found = await this.backend.queryFile(collection.key, path, this.k());
      if (!this.latestQuery.is(turn)) return;
      replace(this.results, this.strip(path, found, `Nearest ${found.length} of the outside image ${baseName(path)}`));
    } catch (error) {
      this.notices.error(`Could not query with ${path}`, error);
    }
  }

  private showHover(index: number | null, x: number, y: number): void {
    if (index === null || !this.collection) {
      this.hover.hidden = true;
      return;
    }
    this.hover.src = this.direct.thumbnailUrl(this.collection.files[index]);
    this.hover.title = this.collection.files[index];
    this.hover.style.left = `${x + 12}px`;
    this.hover.style.top = `${y + 12}px`;
    this.hover.hidden = false;
  }
}

function labelOf(collection: CollectionInfo, index: number): string | null {
  const label = collection.labels[index];
  return label === null ? null : collection.label_names[label];
}
