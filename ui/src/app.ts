// The app shell: tabs for the five screens, keyboard shortcuts, the run badge, startup (demo data,
// unfinished runs) and the end-to-end test hooks.
import type { Backend, Picked, RunInfo, Startup, TrainConfig } from './backend';
import { h, replace } from './dom';
import { onTablistKey } from './components/tabs';
import { count } from './format';
import { AugmentScreen } from './screens/augment';
import { DataScreen } from './screens/data';
import { ExploreScreen } from './screens/explore';
import { ExportScreen } from './screens/export';
import type { Context, Screen } from './screen';
import { TrainScreen } from './screens/train';
import { Store, type RunView, type Shared } from './store';

/** What the end-to-end test drives instead of native dialogs (only with SPREADOUT_TEST_HOOKS=1). */
export interface TestHooks {
  openFolder(path: string, testDir: string | null): Promise<void>;
  setConfig(change: Partial<TrainConfig>): void;
  /** Answers for the next native dialogs, in order. */
  answerDialogs(answers: string[]): void;
  /** Closes the window as its close button does. */
  closeWindow(): Promise<void>;
}

declare global {
  interface Window {
    spreadoutTest?: TestHooks;
  }
}

export class App {
  readonly element: HTMLElement;
  readonly store: Store;
  readonly screens: { data: DataScreen; augment: AugmentScreen; train: TrainScreen; explore: ExploreScreen; export: ExportScreen };
  private readonly tabs: HTMLButtonElement[];
  private readonly panel = h('div', { id: 'screen', role: 'tabpanel' });
  private readonly banner = h('div', { class: 'resume-offers', id: 'resume-offers' });
  private readonly closingNotice = h('p', { class: 'notice info closing-notice', id: 'closing-notice', role: 'status', hidden: true }, 'Saving the run\'s checkpoint before closing…');
  private current: Screen | null = null;
  private readonly dialogAnswers: string[] = [];

  /** `startup`: what the backend said when the app started, the engine's settings among it. */
  constructor(
    private readonly backend: Backend,
    private readonly startup: Startup,
  ) {
    this.store = new Store(startup.settings);
    const context: Context = { backend: this.withDialogAnswers(backend), store: this.store, go: (id) => this.go(id) };
    const train = new TrainScreen(context);
    const explore = new ExploreScreen(context);
    this.screens = {
      data: new DataScreen(context),
      augment: new AugmentScreen(context),
      train,
      explore,
      export: new ExportScreen(context, {
        resume: (run) => train.resume(run),
        explore: async (run) => {
          this.go('explore');
          await explore.showRun(run);
        },
      }),
    };
    const all = Object.values(this.screens) as Screen[];
    // One panel shows whichever screen is selected, so every tab controls it. Only the selected
    // tab is in the Tab order (roving tabindex).
    this.tabs = all.map((screen, i) =>
      h('button', { role: 'tab', id: `tab-${screen.id}`, 'aria-controls': 'screen', 'aria-selected': 'false', tabindex: '-1', title: `${screen.title} (Ctrl+${i + 1})`, onclick: () => this.go(screen.id) }, screen.title),
    );
    const tablist = h('nav', { role: 'tablist', 'aria-label': 'Screens' }, ...this.tabs);
    // The arrow keys only move the focus; Enter or Space opens the focused screen.
    tablist.addEventListener('keydown', (event) => onTablistKey(event, this.tabs));
    const runBadge = h('span', { class: 'run-badge', id: 'run-badge', role: 'status' });
    this.store.subscribe((shared) => {
      replace(runBadge, badgeText(shared));
      if (shared.run) runBadge.dataset.status = shared.run.status;
      else delete runBadge.dataset.status;
    });
    this.element = h(
      'div',
      { class: 'app' },
      h('header', {}, h('h1', {}, 'Spreadout'), tablist, runBadge),
      h('div', { class: 'body' }, this.closingNotice, this.banner, h('main', {}, this.panel)),
      h('footer', {}, backend.kind === 'mock' ? 'Browser preview with a simulated backend: no files are read and no model is trained.' : 'Everything runs on this computer unless you choose another machine as the device; Spreadout makes no other network requests.'),
    );
    // The window stays open until the stopped run has written its checkpoint: the notice says
    // why, and stays until the window closes.
    backend.onClosing(() => {
      this.closingNotice.hidden = false;
      train.closing();
    });
    // By the key's place, not its character: on AZERTY layouts the digits need Shift.
    document.addEventListener('keydown', (event) => {
      const n = Number(/^Digit(\d)$/.exec(event.code)?.[1]);
      if ((event.ctrlKey || event.metaKey) && n >= 1 && n <= all.length) {
        event.preventDefault();
        this.go(all[n - 1].id);
      }
    });
  }

  /** Shows screen `id`. */
  go(id: string): void {
    const screen = (Object.values(this.screens) as Screen[]).find((s) => s.id === id);
    if (!screen || screen === this.current) return;
    this.current = screen;
    for (const tab of this.tabs) {
      const selected = tab.id === `tab-${id}`;
      tab.setAttribute('aria-selected', String(selected));
      tab.tabIndex = selected ? 0 : -1;
    }
    this.panel.setAttribute('aria-labelledby', `tab-${id}`);
    replace(this.panel, screen.element);
    screen.shown?.();
  }

  /** Opens the first screen and does what the app was started for. */
  async start(): Promise<void> {
    this.go('data');
    const { startup } = this;
    if (startup.test_hooks) {
      window.spreadoutTest = {
        openFolder: (path, testDir) => this.screens.data.open(path, testDir),
        // What the person would type into the form, so it is remembered and wins over defaults.
        setConfig: (change) => {
          this.store.choose(change);
          this.screens.train.syncForm();
        },
        answerDialogs: (answers) => this.dialogAnswers.push(...answers),
        closeWindow: () => this.backend.closeWindow(),
      };
    }
    await this.offerResume();
    if (startup.open_demo) await this.screens.data.openDemo();
  }

  /** Offers every run that stopped before its last epoch (app closed, crash, Stop) for resume. */
  private async offerResume(): Promise<void> {
    let unfinished: RunInfo[] = [];
    try {
      unfinished = (await this.backend.listRuns()).filter((run) => run.unfinished);
    } catch {
      // Listing runs only feeds this offer; the Export screen reports the error when opened.
    }
    replace(
      this.banner,
      ...unfinished.slice(0, 3).map((run) => {
        const offer: HTMLElement = h(
          'div',
          { class: 'notice info resume-offer' },
          h('span', {}, `Unfinished run ${run.dir}: ${run.epochs_completed} of ${run.record.config.epochs} epochs done. Continue from its last checkpoint?`),
          h('span', {},
            h('button', { class: 'secondary', onclick: () => { replace(this.banner); void this.screens.train.resume(run); } }, 'Resume'),
            h('button', { class: 'link', onclick: () => offer.remove() }, 'Not now'),
          ),
        );
        return offer;
      }),
    );
  }

  private withDialogAnswers(backend: Backend): Backend {
    const answer = (ask: () => Promise<Picked>) => (this.dialogAnswers.length ? Promise.resolve(this.dialogAnswers.shift() ?? null) : ask());
    return {
      ...backend,
      pickFolder: (title) => answer(() => backend.pickFolder(title)),
      pickImage: () => answer(() => backend.pickImage()),
      pickSaveFile: (name, kind) => answer(() => backend.pickSaveFile(name, kind)),
    };
  }
}

const STATUS_WORDS: Record<RunView['status'], string> = {
  running: 'Training',
  paused: 'Paused',
  finished: 'Finished',
  stopped: 'Stopped',
  failed: 'Failed',
};

/** The header's one line about what the app is doing: the run, else the open folder. */
function badgeText({ run, folder }: Shared): string {
  if (run) {
    const epochs = run.metrics.length;
    return `${STATUS_WORDS[run.status]}: ${epochs} epoch${epochs === 1 ? '' : 's'} done`;
  }
  return folder ? `${count(folder.files.length)} images open` : '';
}
