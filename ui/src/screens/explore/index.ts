// Explore screen: embed the training folder with a run's model (or an earlier snapshot) and show
// it in three tabs, each a panel: neighbours and map (neighbors.ts), near-duplicates and
// clusters. The screen owns the run and snapshot choice, the tabs, comparing one query across
// snapshots, and opening an embedding again when the backend has dropped it (reopen.ts).
import { baseName, h, replace } from '../../dom';
import { onTablistKey } from '../../components/tabs';
import { ProgressBar } from '../../components/progress';
import type { Backend, CollectionInfo, RunInfo } from '../../backend';
import { Latest } from '../../latest';
import { Notices, newJob, type Context, type Screen } from '../../screen';
import { ClustersPanel } from './clusters';
import { DuplicatesPanel } from './duplicates';
import { NeighborsPanel } from './neighbors';
import { reopening } from './reopen';

type View = 'neighbors' | 'duplicates' | 'clusters';

/** The Model choice that opens a folder by its perceptual hashes alone (near-duplicates only). */
const NO_MODEL = '(none)';
const VIEWS: { id: View; title: string }[] = [
  { id: 'neighbors', title: 'Neighbours & map' },
  { id: 'duplicates', title: 'Near-duplicates' },
  { id: 'clusters', title: 'Clusters' },
];

interface Source {
  label: string;
  model: string;
}

export class ExploreScreen implements Screen {
  readonly id = 'explore';
  readonly title = 'Explore';
  readonly element: HTMLElement;
  private readonly notices = new Notices();
  private readonly progress: ProgressBar;
  private readonly runSelect = h('select', { id: 'explore-run' });
  private readonly sourceSelect = h('select', { id: 'explore-source' });
  readonly neighbors: NeighborsPanel;
  readonly duplicates: DuplicatesPanel;
  readonly clusters: ClustersPanel;
  private readonly tabs: HTMLButtonElement[];
  private readonly panels: Record<View, HTMLElement>;
  private view: View = 'neighbors';
  /** The collection key each tab last showed, so a tab is computed once per collection. */
  private readonly shownKey: Partial<Record<View, string>> = {};
  private readonly latestOpen = new Latest();
  private runs: RunInfo[] = [];
  private collection: CollectionInfo | null = null;
  private job: string | null = null;
  /** The backend, with calls on an embedding it has dropped made again once it is reopened. */
  private readonly backend: Backend;
  /** What each embedding opened here was made from, to open it again when the backend drops it. */
  private readonly madeFrom = new Map<string, { model: string; folder: string }>();
  /** Settles when the screen has opened its collection (or failed to). */
  private ready: Promise<void> = Promise.resolve();

  constructor(private readonly context: Context) {
    this.backend = reopening(context.backend, (key) => this.reopen(key));
    this.progress = new ProgressBar(() => this.job && void context.backend.cancelJob(this.job));
    this.neighbors = new NeighborsPanel(this.backend, context.backend, this.notices);
    const queryFromPanel = (index: number) => {
      this.showView('neighbors');
      this.neighbors.select(index);
    };
    this.duplicates = new DuplicatesPanel(this.backend, this.notices, queryFromPanel);
    this.clusters = new ClustersPanel(this.backend, this.notices, queryFromPanel);
    this.runSelect.addEventListener('change', () => void this.fillSources());
    this.sourceSelect.addEventListener('change', () => void this.openSelected());
    this.tabs = VIEWS.map(({ id, title }) =>
      h('button', { role: 'tab', id: `explore-tab-${id}`, 'aria-controls': `explore-panel-${id}`, onclick: () => this.showView(id) }, title),
    );
    const tablist = h('div', { role: 'tablist', class: 'subtabs', 'aria-label': 'Explore views' }, ...this.tabs);
    // A view opens as the focus reaches its tab.
    tablist.addEventListener('keydown', (event) => onTablistKey(event, this.tabs, (index) => this.showView(VIEWS[index].id)));
    const panel = (id: View, ...children: HTMLElement[]) =>
      h('div', { role: 'tabpanel', id: `explore-panel-${id}`, 'aria-labelledby': `explore-tab-${id}`, class: 'subpanel' }, ...children);
    this.panels = {
      neighbors: panel('neighbors', this.neighbors.element),
      duplicates: panel('duplicates', this.duplicates.element),
      clusters: panel('clusters', this.clusters.element),
    };
    this.element = h(
      'section',
      { class: 'screen explore' },
      h('div', { class: 'toolbar' }, h('label', {}, 'Run ', this.runSelect), h('label', {}, 'Model ', this.sourceSelect), this.neighbors.kSelect, h('button', { class: 'secondary', id: 'compare', onclick: () => void this.compare() }, 'Compare across snapshots')),
      this.notices.element,
      this.progress.element,
      tablist,
      ...Object.values(this.panels),
    );
    this.showView('neighbors');
    context.backend
      .onFileDrop((paths) => {
        // A drop anywhere in the window is a query: show where its answer appears.
        if (!paths[0]) return;
        context.go('explore');
        void this.ready.then(() => this.neighbors.queryOutside(paths[0]));
      })
      .catch((error) => this.notices.error('Dropping images on the window will not work; use "choose one…"', error));
  }

  shown(): Promise<void> {
    this.ready = this.refresh();
    return this.ready;
  }

  private async refresh(): Promise<void> {
    this.neighbors.attach();
    try {
      this.runs = (await this.context.backend.listRuns()).filter((run) => run.epochs_completed > 0);
    } catch (error) {
      this.notices.error('Could not list runs', error);
    }
    const current = this.context.store.shared.run?.dir;
    replace(this.runSelect, ...this.runs.map((run) => h('option', { value: run.dir, selected: run.dir === current }, `${baseName(run.dir)} (${run.epochs_completed} epochs)`)));
    if (!this.runs.length) {
      this.neighbors.say(
        h('p', { class: 'empty' }, 'Train a model first (Train screen), or open a previous run folder on the Export screen.'),
        h('p', { class: 'empty' }, 'Near-duplicates need no model: ', h('button', { class: 'secondary', id: 'explore-without-model', onclick: () => void this.openWithoutModel() }, 'Find them in the Data folder by their perceptual hashes')),
      );
      return;
    }
    await this.fillSources();
  }

  /** Opens a run chosen elsewhere (Export screen's "Open run folder"). */
  async showRun(run: RunInfo): Promise<void> {
    if (!this.runs.some((known) => known.dir === run.dir)) this.runs.unshift(run);
    replace(this.runSelect, ...this.runs.map((known) => h('option', { value: known.dir, selected: known.dir === run.dir }, `${baseName(known.dir)} (${known.epochs_completed} epochs)`)));
    await this.fillSources();
  }

  private selectedRun(): RunInfo | undefined {
    return this.runs.find((run) => run.dir === this.runSelect.value);
  }

  /** The run's models, newest first: its snapshots, and the latest export when no snapshot is it. */
  private sources(run: RunInfo): Source[] {
    const latest = run.epochs_completed;
    const snapshots = run.snapshots.map((s) => ({ label: `epoch ${s.epoch}${s.epoch === latest ? ' (latest)' : ''}`, model: s.dir })).reverse();
    const latestKept = run.snapshots.some((s) => s.epoch === latest);
    return latestKept ? snapshots : [{ label: `latest (epoch ${latest})`, model: run.dir }, ...snapshots];
  }

  private fillSources(): Promise<void> {
    const run = this.selectedRun();
    if (!run) return Promise.resolve();
    const previous = this.sourceSelect.value;
    // Last, the folder without a model: near-duplicates by perceptual hashes.
    const choices = [...this.sources(run), { label: 'none: perceptual hashes only', model: NO_MODEL }];
    replace(this.sourceSelect, ...choices.map((source) => h('option', { value: source.model, selected: source.model === previous }, source.label)));
    this.ready = this.openSelected();
    return this.ready;
  }

  /**
   * Embeds `folder` with `model`. A newer open (another run or snapshot picked meanwhile) cancels
   * this one, and only the newest owns the progress bar and its Cancel.
   */
  private async open(model: string, folder: string): Promise<CollectionInfo> {
    const { backend } = this.context;
    if (this.job) void backend.cancelJob(this.job);
    const job = newJob('embed');
    this.job = job;
    try {
      const collection =
        model === NO_MODEL
          ? await backend.openHashedFolder(folder, job, this.progress.reporter((done, total) => `Reading ${folder}: ${done} / ${total}`))
          : await backend.openCollection(
              model,
              folder,
              this.context.store.shared.device,
              job,
              this.progress.reporter((done, total) => `Embedding ${folder}: ${done} / ${total}`),
            );
      this.madeFrom.set(collection.key, { model, folder });
      return collection;
    } finally {
      if (this.job === job) {
        this.job = null;
        this.progress.hide();
      }
    }
  }

  /** Embeds again what the backend has dropped; false for an embedding not opened here. */
  private async reopen(key: string): Promise<boolean> {
    const source = this.madeFrom.get(key);
    return source !== undefined && (await this.open(source.model, source.folder)).key === key;
  }

  private async openSelected(): Promise<void> {
    const run = this.selectedRun();
    if (!run) return;
    await this.openAndShow(this.sourceSelect.value, run.record.train_dir);
  }

  /** Before any training: the Data screen's folder by its perceptual hashes, near-duplicates only. */
  private async openWithoutModel(): Promise<void> {
    const folder = this.context.store.shared.folder?.root;
    if (!folder) return this.notices.warn('Choose a folder on the Data screen first.');
    await this.openAndShow(NO_MODEL, folder);
  }

  private async openAndShow(model: string, folder: string): Promise<void> {
    this.notices.clear();
    const turn = this.latestOpen.next();
    try {
      const collection = await this.open(model, folder);
      // The person may have picked another run or snapshot meanwhile: show only the newest.
      if (!this.latestOpen.is(turn)) return;
      // Coming back to the screen with the same model (the key changes when the model file does):
      // keep the grid, the answer on screen and the plots instead of recomputing them.
      if (collection.key === this.collection?.key) return;
      this.collection = collection;
      // Without a model there are no embeddings: only the near-duplicates tab has anything to show.
      const hashesOnly = model === NO_MODEL;
      VIEWS.forEach(({ id }, i) => {
        this.tabs[i].disabled = hashesOnly && id !== 'duplicates';
        this.tabs[i].title = this.tabs[i].disabled ? 'Needs a trained model' : '';
      });
      this.neighbors.show(collection);
      if (collection.skipped.length) this.notices.warn(`${collection.skipped.length} file(s) could not be read (see the Data screen).`);
      // Each tab computes for this collection when it is first shown.
      for (const view of VIEWS) delete this.shownKey[view.id];
      if (hashesOnly) return this.showView('duplicates');
      void this.openView(this.view);
      void this.neighbors.checkReadiness(collection);
      await this.neighbors.showDistributions(collection);
    } catch (error) {
      if (this.latestOpen.is(turn)) this.notices.error('Could not embed the images', error);
    }
  }

  /** Shows one of the Explore tabs (and computes it for the open collection the first time). */
  showView(view: View): void {
    this.view = view;
    VIEWS.forEach(({ id }, i) => {
      const selected = id === view;
      this.tabs[i].setAttribute('aria-selected', String(selected));
      this.tabs[i].tabIndex = selected ? 0 : -1;
      this.panels[id].hidden = !selected;
    });
    void this.openView(view);
  }

  private async openView(view: View): Promise<void> {
    const collection = this.collection;
    if (!collection || this.shownKey[view] === collection.key) return;
    this.shownKey[view] = collection.key;
    if (view === 'neighbors') return this.neighbors.drawMap();
    if (view === 'duplicates') return this.duplicates.open(collection);
    return this.clusters.open(collection);
  }

  /** The selected image's neighbours under every snapshot of the run, side by side. */
  private async compare(): Promise<void> {
    const run = this.selectedRun();
    const index = this.neighbors.selection;
    if (!run || !this.collection || index < 0) return this.notices.warn('Select an image first.');
    const query = this.collection.files[index];
    const add = this.neighbors.compare(query);
    try {
      for (const source of this.sources(run).reverse()) {
        const collection = await this.open(source.model, run.record.train_dir);
        const at = collection.files.indexOf(query);
        if (at < 0) continue;
        add(source.label, await this.backend.neighbors(collection.key, at, this.neighbors.k()));
      }
    } catch (error) {
      this.notices.error('Could not compare snapshots', error);
    }
  }
}
