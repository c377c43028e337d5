// A labelled progress bar with an optional Cancel button, for every long action.
import { h, replace } from '../dom';

export class ProgressBar {
  readonly element: HTMLElement;
  private readonly bar: HTMLProgressElement;
  private readonly label: HTMLSpanElement;
  private readonly cancel: HTMLButtonElement;

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

  hide(): void {
    this.element.hidden = true;
  }
}
