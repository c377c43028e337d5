// What every screen gives the app shell, and the error banner they share.
import { asCommandError, type Backend } from './backend';
import { h, replace } from './dom';
import type { Store } from './store';

export interface Screen {
  readonly id: string;
  readonly title: string;
  readonly element: HTMLElement;
  /** Called each time the screen becomes visible. */
  shown?(): void;
}

export interface Context {
  backend: Backend;
  store: Store;
  /** Switches to another screen. */
  go(id: string): void;
}

/**
 * A place on a screen where errors (and other notices) appear until dismissed. It is a polite live
 * region from the start, so screen readers read each notice as it is added; an error interrupts
 * (role alert) instead of waiting its turn.
 */
export class Notices {
  readonly element = h('div', { class: 'notices', 'aria-live': 'polite' });

  error(what: string, error: unknown): void {
    const { code, message } = asCommandError(error);
    if (code === 'canceled') return this.info(`${what}: cancelled.`);
    this.add('error', `${what}: ${message}`);
  }

  warn(message: string): void {
    this.add('warning', message);
  }

  info(message: string): void {
    this.add('info', message);
  }

  clear(): void {
    replace(this.element);
  }

  private add(kind: string, message: string): void {
    const notice = h(
      'div',
      { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : null },
      h('span', {}, message),
      h('button', { class: 'link', 'aria-label': 'Dismiss', onclick: () => notice.remove() }, '×'),
    );
    this.element.append(notice);
  }
}

let jobCounter = 0;
/** A fresh id for a cancellable backend job. */
export function newJob(prefix: string): string {
  jobCounter += 1;
  return `${prefix}-${Date.now()}-${jobCounter}`;
}
