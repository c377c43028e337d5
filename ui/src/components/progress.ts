// A labelled progress bar with an optional Cancel button, for every long action.
import { h, replace } from '../dom';

export class ProgressBar {
  readonly element: HTMLElement;
  private readonly bar: HTMLProgressElement;
  private readonly label: HTMLSpanElement;
  private readonly cancel: HTMLButtonElement;
  private generation = 0;

  constructor(onCancel?: () => void) {
    this.bar = h('progress', { max: 1, value: 0 });
    this.label = h('span', { class: 'progress-label' });
    this.cancel = h('button', { class: 'secondary', onclick: () => onCancel?.(), hidden: !onCancel }, 'Cancel');
    this.element = h('div', { class: 'progress', hidden: true }, this.bar, this.label, this.cancel);
  }

  show(text: string, done?: number, total?: number): void {
    this.element.hidden = false;
    if (done === undefined || !total) this.bar.removeAttribute('value');
    else {
      this.bar.max = total;
      this.bar.value = done;
    }
    replace(this.label, text);
  }

  /**
   * A progress callback for one job. Reports can arrive after the job's result (they travel on
   * their own channel), so a callback goes quiet once the bar is hidden.
   */
  reporter(describe: (done: number, total: number) => string): (progress: { done: number; total: number }) => void {
    const generation = this.generation;
    return ({ done, total }) => {
      if (generation === this.generation) this.show(describe(done, total), done, total);
    };
  }

  hide(): void {
    this.generation += 1;
    this.element.hidden = true;
  }
}
