// Explore › Clusters: k-means on the embedding, each cluster as a grid of its most typical images
// (closest to the centre) with its size; the assignment exported as CSV.
import { baseName, h, replace } from '../../dom';
import { ProgressBar } from '../../components/progress';
import type { Backend, Clustering, CollectionInfo } from '../../backend';
import { Latest } from '../../latest';
import { newJob, type Notices } from '../../screen';

/** Typical members shown per cluster before "show all". */
const TYPICAL = 12;

export class ClustersPanel {
  readonly element: HTMLElement;
  private readonly kInput = h('input', { id: 'cluster-k', type: 'number', min: '2', step: '1', value: '10' });
  private readonly suggested = h('span', { class: 'hint', id: 'cluster-suggested' });
  private readonly summary = h('p', { class: 'summary', id: 'cluster-summary', role: 'status' });
  private readonly list = h('div', { class: 'clusters', id: 'cluster-list' });
  private readonly progress: ProgressBar;
  private collection: CollectionInfo | null = null;
  private clustering: Clustering | null = null;
  private job: string | null = null;
  private readonly latest = new Latest();

  constructor(
    private readonly backend: Backend,
    private readonly notices: Notices,
    private readonly onQuery: (index: number) => void,
  ) {
    this.progress = new ProgressBar(() => this.job && void backend.cancelJob(this.job));
    this.element = h(
      'section',
      { class: 'clusters-panel', 'aria-label': 'Clusters' },
      h(
        'div',
        { class: 'toolbar' },
        h('label', {}, 'Clusters ', this.kInput),
        this.suggested,
        h('button', { id: 'cluster-run', onclick: () => void this.run() }, 'Cluster'),
        h('button', { class: 'secondary', id: 'cluster-csv', onclick: () => void this.save() }, 'Export assignment as CSV…'),
      ),
      this.progress.element,
      this.summary,
      this.list,
    );
    this.kInput.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') void this.run();
    });
  }

  /** Offers the collection's suggested number of clusters and clusters with it. */
  async open(collection: CollectionInfo): Promise<void> {
    this.collection = collection;
    this.kInput.max = String(collection.files.length);
    this.kInput.value = String(collection.suggested_clusters);
    this.suggested.textContent = collection.label_names.length
      ? `suggested: ${collection.suggested_clusters}, one per label folder`
      : `suggested: ${collection.suggested_clusters} (√(images / 2))`;
    await this.run();
  }

  private k(): number | null {
    const k = Number(this.kInput.value);
    const most = this.collection?.files.length ?? 0;
    return Number.isInteger(k) && k >= 1 && k <= most ? k : null;
  }

  private async run(): Promise<void> {
    const collection = this.collection;
    if (!collection) return;
    const k = this.k();
    if (k === null) return this.notices.warn(`The number of clusters must be a whole number from 1 to ${collection.files.length}.`);
    const turn = this.latest.next();
    if (this.job) void this.backend.cancelJob(this.job);
    const job = newJob('cluster');
    this.job = job;
    this.progress.show(`Clustering ${collection.files.length} images into ${k}…`);
    try {
      const clustering = await this.backend.clusterCollection(collection.key, k, job, () => undefined);
      if (!this.latest.is(turn)) return;
      this.clustering = clustering;
      this.draw(collection, clustering);
    } catch (error) {
      if (this.latest.is(turn)) this.notices.error('Could not cluster the images', error);
    } finally {
      if (this.job === job) {
        this.job = null;
        this.progress.hide();
      }
    }
  }

  private draw(collection: CollectionInfo, clustering: Clustering): void {
    const sizes = clustering.clusters.map((c) => c.members.length);
    this.summary.textContent = `${clustering.clusters.length} clusters of ${collection.files.length} images, largest first: sizes ${sizes.join(', ')}.`;
    replace(
      this.list,
      ...clustering.clusters.map((cluster, c) => {
        const grid = h('div', { class: 'cluster-grid' });
        const fill = (count: number) =>
          replace(
            grid,
            ...cluster.members.slice(0, count).map((row, m) => {
              const path = collection.files[row];
              return h(
                'button',
                { class: 'cluster-member', title: `${path}\nsimilarity to the centre ${cluster.similarities[m].toFixed(3)}; click for its nearest neighbours`, onclick: () => this.onQuery(row) },
                h('img', { src: this.backend.thumbnailUrl(path), alt: baseName(path), loading: 'lazy' }),
              );
            }),
          );
        fill(TYPICAL);
        const all = h('button', { class: 'link', hidden: cluster.members.length <= TYPICAL }, `show all ${cluster.members.length}`);
        all.addEventListener('click', () => {
          fill(cluster.members.length);
          all.hidden = true;
        });
        return h(
          'article',
          { class: 'cluster', 'aria-label': `Cluster ${c + 1}, ${cluster.members.length} images` },
          h('header', {}, `Cluster ${c + 1} · ${cluster.members.length} images`, labelMix(collection, cluster.members)),
          grid,
          all,
        );
      }),
    );
  }

  private async save(): Promise<void> {
    const collection = this.collection;
    const k = this.k();
    if (!collection || !this.clustering || k === null) return this.notices.warn('Cluster the images first.');
    const destination = await this.backend.pickSaveFile('clusters.csv', 'csv');
    if (!destination) return;
    try {
      const written = await this.backend.saveClusters(collection.key, k, destination);
      this.notices.info(`Wrote every image's cluster (${k} clusters) to ${written}.`);
    } catch (error) {
      this.notices.error('Could not export the clusters', error);
    }
  }
}

/** The most common label folder of a cluster and its share, when the folder has labels. */
function labelMix(collection: CollectionInfo, members: number[]): string {
  if (!collection.label_names.length) return '';
  const counts = new Map<number, number>();
  for (const row of members) {
    const label = collection.labels[row];
    if (label !== null) counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  const [label, count] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0] ?? [null, 0];
  return label === null ? '' : ` · ${Math.round((100 * count) / members.length)} % ${collection.label_names[label]}`;
}
