// Explore › Near-duplicates: groups of images the model finds more alike than a threshold or whose
// perceptual hashes match, the threshold dragged on the two distributions it was suggested from,
// and the groups exported as CSV or JSON. The panel asks for the suggested threshold until the
// person moves it; what the suggestion means (the hashes alone while the model cannot tell copies
// from neighbours, which the note then says) is the backend's rule. Each group names the copy to
// keep (the backend's suggestion, with its reason) and can be marked resolved, which sets it aside
// in later searches, here and in the CLI, until a new copy joins it. Nothing here moves or deletes
// the person's files.
import { baseName, h, replace } from '../../dom';
import { ThresholdHistogram, fractionAbove, type ThresholdSeries } from '../../components/threshold';
import type { Backend, CollectionInfo, DuplicateGroup, TableFormat, ThresholdSuggestion } from '../../backend';
import { Latest } from '../../latest';
import type { Notices } from '../../screen';

/** Groups drawn at first; more on request, so 10 000 groups do not stall the window. */
const PAGE = 60;

/**
 * Milliseconds the threshold rests before a search starts: every search is a full pass over the
 * collection that cannot be cancelled, and a held arrow key repeats many times a second.
 */
export const SETTLE_MS = 200;

export class DuplicatesPanel {
  readonly element: HTMLElement;
  readonly histogram: ThresholdHistogram;
  private readonly how = h('p', { class: 'how', id: 'duplicate-how' });
  /** Shown where the model cannot separate copies yet. */
  private readonly note = h('p', { class: 'notice warning', id: 'duplicate-note', role: 'note', hidden: true });
  /** The threshold the person set, or null for the suggested one (the backend decides what it is). */
  private asked: number | null = null;
  private readonly summary = h('p', { class: 'summary', id: 'duplicate-summary', role: 'status' });
  private readonly groupsList = h('div', { class: 'dup-groups', id: 'duplicate-groups' });
  private readonly more = h('button', { class: 'secondary', hidden: true, onclick: () => this.showMore() }, 'Show more groups');
  private readonly resolvedToggle = h('button', {
    class: 'secondary',
    id: 'duplicate-show-resolved',
    hidden: true,
    'aria-pressed': 'false',
    onclick: () => this.toggleResolved(),
  });
  /** Whether groups marked resolved are listed too. */
  private showResolved = false;
  private collection: CollectionInfo | null = null;
  private suggestion: ThresholdSuggestion | null = null;
  private groups: DuplicateGroup[] = [];
  /** The threshold `groups` were asked for (the handle can be ahead of it while a search runs);
   * undefined before the first answer. */
  private groupsAt: number | null | undefined = undefined;
  /** The search waiting for the threshold to rest. */
  private settling: ReturnType<typeof setTimeout> | undefined;
  private shown = 0;
  /** Answers to an older threshold or collection are dropped (the person drags quickly). */
  private readonly latest = new Latest();

  constructor(
    private readonly backend: Backend,
    private readonly notices: Notices,
    private readonly onQuery: (index: number) => void,
  ) {
    this.histogram = new ThresholdHistogram(
      'Drag the threshold: similarity of images (the best cosine over whole, zoomed and mirrored views) to an edited copy of themselves, and to their nearest other image',
      (threshold) => this.settle(threshold),
      describeThreshold,
    );
    this.element = h(
      'section',
      { class: 'duplicates', 'aria-label': 'Near-duplicates' },
      h(
        'div',
        { class: 'toolbar' },
        h('button', { class: 'secondary', id: 'duplicate-reset', onclick: () => this.resetThreshold() }, 'Use the suggested threshold'),
        h('button', { class: 'secondary', id: 'duplicate-csv', onclick: () => void this.save('csv') }, 'Export groups as CSV…'),
        h('button', { class: 'secondary', id: 'duplicate-json', onclick: () => void this.save('json') }, 'Export groups as JSON…'),
      ),
      this.note,
      this.histogram.element,
      this.how,
      h('p', { class: 'hint' }, 'Spreadout never moves or deletes images: export the groups and act on them in your file manager.'),
      this.summary,
      this.resolvedToggle,
      this.groupsList,
      this.more,
    );
  }

  /** Shows the collection's suggestion and the groups above it. */
  async open(collection: CollectionInfo): Promise<void> {
    this.collection = collection;
    this.groupsAt = undefined;
    clearTimeout(this.settling);
    const turn = this.latest.next();
    replace(this.groupsList);
    this.summary.textContent = 'Measuring the model on this folder…';
    try {
      const [suggestion, readiness] = await Promise.all([
        this.backend.duplicateThreshold(collection.key),
        this.backend.readiness(collection.key),
      ]);
      if (!this.latest.is(turn)) return;
      this.suggestion = suggestion;
      this.note.hidden = readiness.separates;
      this.note.textContent = readiness.note ?? '';
      this.histogram.setSeries(seriesOf(suggestion));
      this.histogram.set(suggestion.threshold);
      this.how.textContent = `Suggested threshold ${suggestion.threshold.toFixed(3)}: ${suggestion.how}.`;
      await this.find(null);
    } catch (error) {
      if (this.latest.is(turn)) this.notices.error('Could not measure the duplicate threshold', error);
    }
  }

  private resetThreshold(): void {
    if (!this.suggestion) return;
    this.histogram.set(this.suggestion.threshold);
    void this.find(null);
  }

  /** Searches at `threshold` once it has rested for SETTLE_MS; an answer to an earlier one is dropped. */
  private settle(threshold: number): void {
    clearTimeout(this.settling);
    this.latest.next();
    this.asked = threshold;
    this.summary.textContent = `Finding groups ${at(threshold)}…`;
    this.settling = setTimeout(() => void this.find(threshold), SETTLE_MS);
  }

  /** Searches at the person's `threshold`, or at the suggested one for null. */
  private async find(threshold: number | null): Promise<void> {
    clearTimeout(this.settling);
    const collection = this.collection;
    if (!collection) return;
    const turn = this.latest.next();
    this.asked = threshold;
    this.summary.textContent = `Finding groups ${at(threshold)}…`;
    try {
      const groups = await this.backend.findDuplicates(collection.key, threshold);
      if (!this.latest.is(turn)) return;
      this.groups = groups;
      this.groupsAt = threshold;
      this.render();
    } catch (error) {
      if (this.latest.is(turn)) this.notices.error('Could not find near-duplicates', error);
    }
  }

  /** The summary, the resolved groups' toggle and the first page of groups, from `groups`. */
  private render(): void {
    const threshold = this.groupsAt ?? null;
    const open = this.groups.filter((group) => !group.resolved);
    const resolved = this.groups.length - open.length;
    const images = open.reduce((sum, group) => sum + group.members.length, 0);
    const by = threshold === null ? at(null) : `${at(threshold)} or with matching hashes`;
    const aside = resolved ? ` ${resolved} more marked resolved.` : '';
    this.summary.textContent = open.length
      ? `${open.length} group${open.length === 1 ? '' : 's'} of near-duplicates (${images} images) ${by}, largest first.${aside}`
      : resolved
        ? `Every group ${by} is marked resolved (${resolved}).`
        : threshold === null
          ? 'No near-duplicates at the suggested threshold.'
          : `No two images are more similar than ${threshold.toFixed(3)}, and no two hashes match.`;
    this.resolvedToggle.hidden = resolved === 0;
    this.resolvedToggle.textContent = this.showResolved ? 'Hide resolved groups' : `Show ${resolved} resolved group${resolved === 1 ? '' : 's'}`;
    this.resolvedToggle.setAttribute('aria-pressed', String(this.showResolved));
    replace(this.groupsList);
    this.shown = 0;
    this.showMore();
  }

  private toggleResolved(): void {
    this.showResolved = !this.showResolved;
    this.render();
  }

  /** Groups listed, each with its number among all the search found (the CLI's numbering). */
  private listed(): [DuplicateGroup, number][] {
    return this.groups.flatMap((group, i): [DuplicateGroup, number][] => (this.showResolved || !group.resolved ? [[group, i + 1]] : []));
  }

  /** Marks `group` resolved keeping row `keep`, or reopens it (null), and shows the change. */
  private async mark(group: DuplicateGroup, keep: number | null): Promise<void> {
    const collection = this.collection;
    if (!collection) return;
    try {
      await this.backend.markDuplicatesResolved(collection.key, group.members, keep);
      group.resolved = keep !== null;
      if (keep !== null && keep !== group.keep?.row) group.keep = { row: keep, reason: 'kept when marked resolved' };
      const name = keep === null ? '' : `, keeping ${baseName(collection.files[keep])}`;
      this.notices.info(keep === null ? 'The group is no longer marked resolved.' : `Marked resolved${name}: later searches set it aside until a new copy joins it.`);
      this.render();
    } catch (error) {
      this.notices.error('Could not record the decision', error);
    }
  }

  private showMore(): void {
    const collection = this.collection;
    if (!collection) return;
    const listed = this.listed();
    const next = listed.slice(this.shown, this.shown + PAGE);
    this.groupsList.append(...next.map(([group, number]) => this.card(collection, group, number)));
    this.shown += next.length;
    this.more.hidden = this.shown >= listed.length;
  }

  private card(collection: CollectionInfo, group: DuplicateGroup, number: number): HTMLElement {
    const keep = group.keep?.row ?? group.members[0];
    const choice = h(
      'select',
      { 'aria-label': `Copy to keep in group ${number}`, disabled: group.resolved },
      ...group.members.map((row) => {
        const option = h('option', { value: String(row) }, baseName(collection.files[row]));
        option.selected = row === keep;
        return option;
      }),
    );
    const action = group.resolved
      ? h('button', { class: 'secondary', onclick: () => void this.mark(group, null) }, 'Reopen')
      : h('button', { class: 'secondary', onclick: () => void this.mark(group, Number(choice.value)) }, 'Mark resolved');
    const state = group.resolved ? ' · resolved' : '';
    return h(
      'article',
      { class: group.resolved ? 'dup-group resolved' : 'dup-group', 'aria-label': `Group ${number}, ${group.members.length} images${state}` },
      h('header', {}, `Group ${number} · ${group.members.length} images · weakest link ${group.weakest_link.toFixed(3)}${state}`),
      h(
        'div',
        { class: 'dup-members' },
        ...group.members.map((row, m) => {
          const path = collection.files[row];
          const score = m === 0 ? 'most central' : `${group.similarities[m].toFixed(3)} · ${foundBy(group, group.members[0], row)}`;
          const kept = row === group.keep?.row;
          return h(
            'button',
            { class: kept ? 'dup-member keep' : 'dup-member', title: `${path}\nclick for its nearest neighbours`, onclick: () => this.onQuery(row) },
            // The name under the image says which file it is; in `alt` too it would be read twice.
            h('img', { src: this.backend.thumbnailUrl(path), alt: '', loading: 'lazy' }),
            h('span', { class: 'name' }, baseName(path)),
            h('span', { class: 'score' }, score),
            kept && group.keep ? h('span', { class: 'keep-badge' }, `Keep: ${group.keep.reason}`) : null,
          );
        }),
      ),
      h('footer', { class: 'dup-actions' }, h('label', {}, 'Keep ', choice), action),
    );
  }

  private async save(format: TableFormat): Promise<void> {
    const collection = this.collection;
    if (!collection) return this.notices.warn('Open a run first.');
    const destination = await this.backend.pickSaveFile(`near-duplicates.${format}`, format);
    if (!destination) return;
    const asked = this.asked;
    try {
      const written = await this.backend.saveDuplicates(collection.key, asked, format, destination);
      // The groups on screen may be an earlier threshold's while a search is pending: count the
      // groups written, searching at their threshold if need be.
      const groups = this.groupsAt === asked && this.collection === collection ? this.groups : await this.backend.findDuplicates(collection.key, asked);
      this.notices.info(`Wrote the ${groups.length} group${groups.length === 1 ? '' : 's'} ${at(asked)} to ${written}.`);
    } catch (error) {
      this.notices.error('Could not export the groups', error);
    }
  }
}

/** Where a search draws its line, in words: the person's threshold, or the suggested one. */
function at(threshold: number | null): string {
  return threshold === null ? 'at the suggested threshold' : `above ${threshold.toFixed(3)}`;
}

function seriesOf(suggestion: ThresholdSuggestion): ThresholdSeries[] {
  return [
    { label: 'image vs its edited copy', histogram: suggestion.copies, className: 'series-copies' },
    { label: 'image vs its nearest other image', histogram: suggestion.nearest, className: 'series-nearest' },
  ];
}

/** What the threshold means on the two sampled distributions, in one sentence. */
export function describeThreshold(threshold: number, series: ThresholdSeries[]): string {
  const [copies, nearest] = series;
  if (!copies || !nearest) return `Threshold ${threshold.toFixed(3)}`;
  const kept = (100 * fractionAbove(copies.histogram, threshold)).toFixed(1);
  const crowded = (100 * fractionAbove(nearest.histogram, threshold)).toFixed(1);
  return `Threshold ${threshold.toFixed(3)}: ${kept} % of edited copies are above it; ${crowded} % of images have another image above it.`;
}

/** Which stage linked `row` to the group's first member: the model, the perceptual hashes (with
 * their differing bits), or both. */
function foundBy(group: DuplicateGroup, first: number, row: number): string {
  const [a, b] = first < row ? [first, row] : [row, first];
  const link = group.links.find((l) => l.a === a && l.b === b);
  if (!link) return '';
  const bits = link.hash_bits === null ? '' : ` (${link.hash_bits} bit${link.hash_bits === 1 ? '' : 's'})`;
  return { both: `model and hash${bits}`, hash: `hash${bits}`, embedding: 'model' }[link.stage];
}
