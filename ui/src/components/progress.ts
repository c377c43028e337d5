// A labelled progress bar with an optional Cancel button, for every long action. Its label is a
// live region that stays in the page while idle (empty, taking no space), so screen readers hear
// each job start and move on; a region that appeared together with its text would go unread.
import { h, replace } from '../dom';

let barCount = 0;

export class ProgressBar {
  readonly element: HTMLElement;
  private readonly bar: HTMLProgressElement;
  private readonly label: HTMLSpanElement;
  private readonly cancel: HTMLButtonElement | null;
  private generation = 0;

  constructor(onCancel?: () => void) {
    barCount += 1;
    const labelId = `progress-label-${barCount}`;
    this.bar = h('progress', { max: 1, value: 0, hidden: true, 'aria-labelledby': labelId });
    this.label = h('span', { class: 'progress-label', id: labelId, role: 'status' });
    this.cancel = onCancel ? h('button', { class: 'secondary', hidden: true, onclick: onCancel }, 'Cancel') : null;
    this.element = h('div', { class: 'progress', dataset: { idle: '' } }, this.bar, this.label, this.cancel);
  }

  show(text: string, done?: number, total?: number): void {
    this.setActive(true);
    if (done === undefined || !total) this.bar.removeAttribute('value');
    else {
      this.bar.max = total;
      this.bar.value = done;
    }
    replace(this.label, text);
  }

  /**
   * A progress callback for one job. Reports can arrive after the job's result (they travel on
   * their own channel), so a callback goes quiet once the bar is hidden, or once a newer job has
   * taken the bar over. While the job waits for another fill of the same folder (another window
   * or a command caching it), the bar says so instead of standing still unexplained.
   */
  reporter(describe: (done: number, total: number) => string): (progress: { done: number; total: number; waiting?: boolean }) => void {
    const generation = ++this.generation;
    return ({ done, total, waiting }) => {
      if (generation !== this.generation) return;
      if (waiting) this.show('Waiting for another fill of this folder to finish (another Spreadout window or command is caching it)…');
      else this.show(describe(done, total), done, total);
    };
  }

  hide(): void {
    this.generation += 1;
    this.setActive(false);
    replace(this.label);
  }

  private setActive(active: boolean): void {
    this.bar.hidden = !active;
    if (this.cancel) this.cancel.hidden = !active;
    if (active) delete this.element.dataset.idle;
    else this.element.dataset.idle = '';
  }
}
