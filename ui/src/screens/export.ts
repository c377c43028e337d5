// Export screen: pick a run (this session's, an earlier one, or any run folder on disk), see its
// history, resume it if it was interrupted, and export the model and the embeddings.
import { baseName, h, replace } from '../dom';
import { CurvePlot, paletteColor } from '../components/charts';
import { ProgressBar } from '../components/progress';
import { count, duration, mebibytes, percent } from '../format';
import type { Exported, RunInfo } from '../backend';
import { Notices, newJob, type Context, type Screen } from '../screen';

export interface ExportHooks {
  resume(run: RunInfo): Promise<void>;
  explore(run: RunInfo): Promise<void>;
}

/** A run's name in the comparison: its folder and, when not the paper's, its method. */
const runLabel = (run: RunInfo): string => {
  const method = run.record.config.method ?? 'spreadout';
  return method === 'spreadout' ? baseName(run.dir) : `${baseName(run.dir)} (${method})`;
};

export class ExportScreen implements Screen {
  readonly id = 'export';
  readonly title = 'Export';
  readonly element: HTMLElement;
  private readonly notices = new Notices();
  private readonly progress: ProgressBar;
  private readonly runSelect = h('select', { id: 'export-run' });
  private readonly details = h('div', { class: 'run-details' });
  private readonly results = h('div', { id: 'export-results', class: 'export-results', 'aria-live': 'polite' });
  /** Runs ticked for the comparison chart, by folder. */
  private readonly compared = new Set<string>();
  private readonly comparison = h('div', { id: 'run-comparison', class: 'run-comparison' });
  /** The comparison chart on screen, released when a new one replaces it. */
  private comparisonPlot: CurvePlot | null = null;
  private runs: RunInfo[] = [];
  private job: string | null = null;
  /** The run training now (running or paused), whose folder must not be resumed, renamed or deleted. */
  private training: string | null = null;
  /** The rename form or delete confirmation open under the run's facts, and the button that opened it. */
  private dialog: { element: HTMLElement; opener: HTMLElement } | null = null;

  constructor(
    private readonly context: Context,
    private readonly hooks: ExportHooks,
  ) {
    this.progress = new ProgressBar(() => this.job && void context.backend.cancelJob(this.job));
    this.runSelect.addEventListener('change', () => this.renderDetails());
    context.store.subscribe(({ run }) => {
      const training = run && (run.status === 'running' || run.status === 'paused') ? run.dir : null;
      if (training === this.training) return;
      this.training = training;
      this.renderDetails();
    });
    this.element = h(
      'section',
      { class: 'screen export' },
      h('div', { class: 'toolbar' }, h('label', {}, 'Run ', this.runSelect), h('button', { class: 'secondary', onclick: () => void this.openFolder() }, 'Open run folder…')),
      this.notices.element,
      this.progress.element,
      this.details,
      h(
        'div',
        { class: 'export-actions' },
        h('button', { id: 'export-model', onclick: () => void this.exportModel() }, 'Export model (safetensors + config)…'),
        h('button', { id: 'export-embeddings', onclick: () => void this.exportEmbeddings() }, 'Export embeddings + file list…'),
      ),
      h('h3', {}, 'Compare runs: kNN accuracy per epoch'),
      this.comparison,
      h('p', { class: 'hint' }, 'The model loads in PyTorch (keys follow torchvision\'s ResNet-18 naming; see the README for the module). A model export writes only model.safetensors and config.json, never over files another program wrote, and replaces its own atomically: a failed export leaves an earlier one intact.'),
      this.results,
    );
  }

  async shown(): Promise<void> {
    try {
      this.runs = await this.context.backend.listRuns();
    } catch (error) {
      this.notices.error('Could not list runs', error);
    }
    this.fillRuns(this.context.store.shared.run?.dir);
  }

  private fillRuns(selected?: string): void {
    replace(
      this.runSelect,
      ...this.runs.map((run) => h('option', { value: run.dir, selected: run.dir === selected }, `${baseName(run.dir)}: ${run.epochs_completed}/${run.record.config.epochs} epochs${run.unfinished ? ' (unfinished)' : ''}`)),
    );
    if (selected) this.compared.add(selected);
    this.renderDetails();
    this.renderComparison();
  }

  /** One chart with a kNN curve per ticked run (the paper's Fig. 3 for runs of several methods). */
  private renderComparison(): void {
    this.comparisonPlot?.destroy();
    this.comparisonPlot = null;
    const scored = this.runs.filter((run) => run.metrics.some((m) => m.knn_accuracy !== null));
    if (!scored.length) {
      replace(this.comparison, h('p', { class: 'empty' }, 'Runs scored on a labelled folder appear here.'));
      return;
    }
    const ticked = scored.filter((run) => this.compared.has(run.dir));
    const plot = new CurvePlot(
      'kNN top-1 after each epoch',
      { x: 'epoch', y: 'kNN %', yMin: 0, yMax: 100 },
      ticked.map((run, index) => ({ label: runLabel(run), color: paletteColor(index) })),
    );
    this.comparisonPlot = plot;
    ticked.forEach((run, index) =>
      plot.set(
        index,
        run.metrics.flatMap((m) => (m.knn_accuracy === null ? [] : [{ x: m.epoch, y: m.knn_accuracy }])),
      ),
    );
    replace(
      this.comparison,
      h(
        'div',
        { class: 'run-choices' },
        ...scored.map((run) =>
          h(
            'label',
            { class: 'run-choice' },
            h('input', {
              type: 'checkbox',
              value: run.dir,
              checked: this.compared.has(run.dir),
              onchange: (event: Event) => {
                if ((event.target as HTMLInputElement).checked) this.compared.add(run.dir);
                else this.compared.delete(run.dir);
                this.renderComparison();
              },
            }),
            ` ${runLabel(run)}`,
          ),
        ),
      ),
      ticked.length ? plot.element : h('p', { class: 'empty' }, 'Tick one or more runs to draw their kNN curves in one chart.'),
    );
  }

  private selected(): RunInfo | undefined {
    return this.runs.find((run) => run.dir === this.runSelect.value);
  }

  private async openFolder(): Promise<void> {
    const dir = await this.context.backend.pickFolder('Open a Spreadout run folder');
    if (!dir) return;
    try {
      const run = await this.context.backend.openRun(dir);
      this.runs = [run, ...this.runs.filter((known) => known.dir !== run.dir)];
      this.fillRuns(run.dir);
    } catch (error) {
      this.notices.error(`${dir} is not a run folder I can read`, error);
    }
  }

  private renderDetails(): void {
    // A dialog belongs to the run it was opened for; redrawing the details closes it.
    this.dialog = null;
    const run = this.selected();
    if (!run) {
      replace(this.details, h('p', { class: 'empty' }, 'No runs yet. Train one, or open a run folder.'));
      return;
    }
    const { record } = run;
    const training = run.dir === this.training;
    replace(
      this.details,
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Folder'),
        h('dd', {}, run.dir),
        h('dt', {}, 'Trained on'),
        h('dd', {}, `${count(record.images)} images in ${record.train_dir} (${record.skipped} skipped), ${record.device}`),
        h('dt', {}, 'Network'),
        h('dd', {}, `${record.config.method ?? 'spreadout'}, ResNet-18 width ${record.config.width}, ${record.config.dim}-d, ${record.config.image_size} px, batch ${record.config.batch_size}, τ ${record.config.tau}, lr ${record.config.lr}`),
        h('dt', {}, 'On disk'),
        h(
          'dd',
          { id: 'run-disk' },
          `${mebibytes(run.bytes)} (checkpoint, model, ${run.snapshots.length} snapshot${run.snapshots.length === 1 ? '' : 's'})`,
          h('button', { class: 'secondary inline', id: 'run-rename', disabled: training, onclick: (event: Event) => this.askRename(run, event.currentTarget as HTMLElement) }, 'Rename…'),
          h('button', { class: 'secondary inline danger', id: 'run-delete', disabled: training, onclick: (event: Event) => this.askDelete(run, event.currentTarget as HTMLElement) }, 'Delete…'),
        ),
        h('dt', {}, 'Progress'),
        h('dd', {}, `${run.epochs_completed} of ${record.config.epochs} epochs`, this.resumeOffer(run), h('button', { class: 'secondary inline', onclick: () => void this.hooks.explore(run) }, 'Explore')),
      ),
      run.metrics.length
        ? h(
            'table',
            { class: 'metrics' },
            h('thead', {}, h('tr', {}, ...['epoch', 'loss', 'kNN', 'R@1', 'NMI', 'time'].map((t) => h('th', {}, t)))),
            h(
              'tbody',
              {},
              ...run.metrics.map((m) =>
                h('tr', {}, h('td', {}, m.epoch), h('td', {}, m.loss.toFixed(4)), h('td', {}, percent(m.knn_accuracy)), h('td', {}, percent(m.recall_at?.[0]?.[1])), h('td', {}, m.nmi === null ? '—' : m.nmi.toFixed(3)), h('td', {}, duration(m.seconds))),
              ),
            ),
          )
        : null,
    );
  }

  /**
   * Resume for an unfinished run, unless a run is training: the backend trains one at a time, and
   * the run training now is continuing already.
   */
  private resumeOffer(run: RunInfo): HTMLElement | null {
    if (!run.unfinished) return null;
    if (run.dir === this.training) return h('span', { class: 'hint', id: 'run-training' }, ' training now');
    if (this.training) return h('span', { class: 'hint', id: 'run-resume-later' }, ' can be resumed once the run training now has ended');
    return h('button', { class: 'secondary inline', id: 'run-resume', onclick: () => void this.hooks.resume(run) }, 'Resume training');
  }

  /** An inline form under the run's facts: the folder's new name, Rename, Cancel. */
  private askRename(run: RunInfo, opener: HTMLElement): void {
    const input = h('input', { id: 'run-new-name', type: 'text', value: baseName(run.dir), 'aria-label': 'New name of the run folder' });
    const form = h(
      'form',
      { class: 'notice info run-action', 'aria-label': 'Rename the run folder' },
      h('label', {}, 'New folder name ', input),
      h('button', { type: 'submit', id: 'run-rename-confirm' }, 'Rename'),
      h('button', { type: 'button', class: 'link', onclick: () => this.closeDialog() }, 'Cancel'),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.rename(run, input.value);
    });
    this.openDialog(form, opener, input);
    input.select();
  }

  private async rename(run: RunInfo, name: string): Promise<void> {
    try {
      const renamed = await this.context.backend.renameRun(run.dir, name);
      this.runs = this.runs.map((known) => (known.dir === run.dir ? renamed : known));
      if (this.compared.delete(run.dir)) this.compared.add(renamed.dir);
      this.notices.info(`Renamed ${run.dir} to ${renamed.dir}.`);
      this.fillRuns(renamed.dir);
    } catch (error) {
      this.notices.error(`Could not rename ${run.dir}`, error);
    }
  }

  /** Deleting asks once more, in the page, saying what is lost and what is not. */
  private askDelete(run: RunInfo, opener: HTMLElement): void {
    const confirm = h('button', { class: 'danger', id: 'run-delete-confirm', onclick: () => void this.remove(run) }, 'Delete the run');
    this.openDialog(
      h(
        'div',
        { class: 'notice warning run-action', role: 'alertdialog', 'aria-modal': 'true', 'aria-label': 'Delete the run?', 'aria-describedby': 'run-delete-what' },
        h('span', { id: 'run-delete-what' }, `Delete ${run.dir} and its ${mebibytes(run.bytes)} (checkpoint, model, snapshots, metrics)? The images it trained on are not touched.`),
        confirm,
        h('button', { class: 'link', onclick: () => this.closeDialog() }, 'Keep it'),
      ),
      opener,
      confirm,
    );
  }

  /**
   * Shows `dialog` under the run's facts as the only one (a second click replaces the first, so
   * ids stay unique) and moves the focus to `focus` in it. Escape closes it, and closing gives the
   * focus back to `opener`.
   */
  private openDialog(dialog: HTMLElement, opener: HTMLElement, focus: HTMLElement): void {
    this.dialog?.element.remove();
    dialog.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape') return;
      event.preventDefault();
      this.closeDialog();
    });
    this.dialog = { element: dialog, opener };
    this.details.append(dialog);
    focus.focus();
  }

  private closeDialog(): void {
    if (!this.dialog) return;
    const { element, opener } = this.dialog;
    this.dialog = null;
    element.remove();
    opener.focus();
  }

  private async remove(run: RunInfo): Promise<void> {
    try {
      const deleted = await this.context.backend.deleteRun(run.dir);
      this.runs = this.runs.filter((known) => known.dir !== run.dir);
      this.compared.delete(run.dir);
      const freed = mebibytes(deleted.bytes);
      if (deleted.kept.length === 0) this.notices.info(`Deleted ${run.dir} (${freed} freed).`);
      else {
        // The folder held more than a run writes: those were never Spreadout's to delete.
        const shown = deleted.kept.slice(0, 5).join(', ');
        const more = deleted.kept.length > 5 ? ` and ${deleted.kept.length - 5} more` : '';
        this.notices.info(`Deleted the run's files (${freed} freed). ${run.dir} was kept because it also holds ${shown}${more}, which Spreadout did not write.`);
      }
      this.fillRuns(this.runs[0]?.dir);
    } catch (error) {
      this.notices.error(`Could not delete ${run.dir}`, error);
    }
  }

  private showResult(what: string, exported: Exported): void {
    this.results.prepend(
      h(
        'div',
        { class: 'notice ok export-result' },
        h('strong', {}, `${what} written: `),
        exported.files.join(', '),
        h('br'),
        h('span', { class: 'verified' }, exported.verified),
        exported.others_kept ? h('p', { class: 'kept' }, keptSentence(exported.others_kept)) : null,
      ),
    );
  }

  private async exportModel(): Promise<void> {
    const run = this.selected();
    if (!run) return this.notices.warn('Choose a run first.');
    const destination = await this.context.backend.pickFolder('Choose where to put model.safetensors and config.json');
    if (!destination) return;
    try {
      this.progress.show('Writing and verifying the model…');
      this.showResult('Model', await this.context.backend.exportModel(run.dir, destination));
    } catch (error) {
      this.notices.error('Model export failed', error);
    } finally {
      this.progress.hide();
    }
  }

  private async exportEmbeddings(): Promise<void> {
    const run = this.selected();
    if (!run) return this.notices.warn('Choose a run first.');
    const destination = await this.context.backend.pickSaveFile(`${baseName(run.dir)}-embeddings.safetensors`);
    if (!destination) return;
    this.job = newJob('embed');
    try {
      const collection = await this.context.backend.openCollection(
        run.dir,
        run.record.train_dir,
        this.context.store.shared.device,
        this.job,
        this.progress.reporter((done, total) => `Embedding ${count(done)} / ${count(total)} images…`),
      );
      this.progress.show('Writing and verifying the embeddings…');
      this.showResult('Embeddings', await this.context.backend.exportEmbeddings(collection.key, destination));
    } catch (error) {
      this.notices.error('Embedding export failed', error);
    } finally {
      this.job = null;
      this.progress.hide();
    }
  }
}

/** That an export wrote only its own files: `count` other files and folders were already there. */
function keptSentence(count: number): string {
  return count === 1
    ? 'Only these files were written: the 1 other file or folder there was left as it was.'
    : `Only these files were written: the ${count} other files and folders there were left as they were.`;
}
