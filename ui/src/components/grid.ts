// A virtualised thumbnail grid: only the rows in view exist in the DOM (TanStack Virtual), so
// 100 000 images scroll as smoothly as 100. Arrow keys, Page Up/Down, Home/End move the
// selection; Enter or a click activates an image. Focus stays on the grid itself and
// aria-activedescendant names the selected cell, because the cells come and go as rows scroll
// (ARIA grid pattern; rows carry their index among all rows, not only the drawn ones).
import {
  Virtualizer,
  elementScroll,
  observeElementOffset,
  observeElementRect,
} from '@tanstack/virtual-core';
import { baseName, h } from '../dom';

export interface GridItem {
  path: string;
  /** Label folder name, shown under the caption when present. */
  label?: string | null;
}

export interface GridOptions {
  thumbnailUrl: (path: string) => string;
  onActivate?: (index: number) => void;
  /** Cell size in CSS pixels (square thumbnail plus caption). */
  cell?: number;
  /** What the grid holds, for screen readers. */
  label?: string;
}

let gridCount = 0;

/** A transparent image, so that a thumbnail waiting to be asked for again shows its background. */
const WAITING = 'data:image/svg+xml,%3Csvg%20xmlns%3D%22http%3A%2F%2Fwww.w3.org%2F2000%2Fsvg%22%2F%3E';

/** Milliseconds before each new request of a thumbnail the server was too busy to answer. */
const RETRY_MS = [250, 500, 1000, 2000];

export class ThumbnailGrid {
  readonly element: HTMLDivElement;
  private readonly inner: HTMLDivElement;
  private items: GridItem[] = [];
  private columns = 1;
  private selected = -1;
  private readonly cell: number;
  private readonly virtualizer: Virtualizer<HTMLDivElement, HTMLDivElement>;
  private cleanup: (() => void) | null = null;
  /** Prefix of the cells' ids, unique per grid (a screen can hold two). */
  private readonly idPrefix: string;

  constructor(private readonly options: GridOptions) {
    gridCount += 1;
    this.idPrefix = `grid-${gridCount}-cell`;
    this.cell = options.cell ?? 112;
    this.inner = h('div', { class: 'grid-inner', role: 'rowgroup' });
    this.element = h('div', { class: 'grid', tabindex: '0', role: 'grid', 'aria-label': options.label ?? 'Images', 'aria-readonly': 'true' }, this.inner);
    this.element.addEventListener('keydown', (event) => this.onKey(event));
    this.virtualizer = new Virtualizer<HTMLDivElement, HTMLDivElement>({
      count: 0,
      getScrollElement: () => this.element,
      estimateSize: () => this.cell + 22,
      overscan: 4,
      scrollToFn: elementScroll,
      observeElementRect,
      observeElementOffset,
      onChange: () => this.render(),
    });
  }

  /** Starts measuring; call once the element is in the document. */
  attach(): void {
    if (this.cleanup) return;
    this.cleanup = this.virtualizer._didMount();
    this.virtualizer._willUpdate();
    new ResizeObserver(() => this.layout()).observe(this.element);
    this.layout();
  }

  setItems(items: GridItem[]): void {
    this.items = items;
    this.selected = items.length ? 0 : -1;
    this.layout();
  }

  get selection(): number {
    return this.selected;
  }

  select(index: number): void {
    if (!this.items.length) return;
    this.selected = Math.max(0, Math.min(this.items.length - 1, index));
    this.virtualizer.scrollToIndex(Math.floor(this.selected / this.columns), { align: 'auto' });
    this.render();
  }

  private layout(): void {
    // A cell is the thumbnail plus its 2 px border on each side; rows have 8 px gaps and padding.
    const width = (this.element.clientWidth || 800) - 16 - 12;
    this.columns = Math.max(1, Math.floor((width + 8) / (this.cell + 4 + 8)));
    this.virtualizer.setOptions({
      ...this.virtualizer.options,
      count: Math.ceil(this.items.length / this.columns),
    });
    this.virtualizer._willUpdate();
    this.virtualizer.measure();
    this.render();
  }

  /** The id of cell `index` (present in the DOM only while its row is drawn). */
  private cellId(index: number): string {
    return `${this.idPrefix}-${index}`;
  }

  private render(): void {
    this.inner.style.height = `${this.virtualizer.getTotalSize()}px`;
    this.element.setAttribute('aria-rowcount', String(Math.ceil(this.items.length / this.columns)));
    this.element.setAttribute('aria-colcount', String(this.columns));
    const rows = this.virtualizer.getVirtualItems();
    // Without layout (tests, hidden tab) no rows are measured: draw the first rows instead.
    const visible = rows.length
      ? rows.map((row) => ({ index: row.index, start: row.start }))
      : Array.from({ length: Math.min(3, Math.ceil(this.items.length / this.columns)) }, (_, index) => ({
          index,
          start: index * (this.cell + 22),
        }));
    this.inner.replaceChildren(
      ...visible.map(({ index, start }) => {
        const cells = [];
        for (let column = 0; column < this.columns; column++) {
          const i = index * this.columns + column;
          if (i >= this.items.length) break;
          cells.push(this.cellFor(i));
        }
        return h('div', { class: 'grid-row', role: 'row', 'aria-rowindex': String(index + 1), style: `transform: translateY(${start}px)` }, ...cells);
      }),
    );
    const active = this.selected >= 0 ? this.inner.querySelector(`#${this.cellId(this.selected)}`) : null;
    if (active) this.element.setAttribute('aria-activedescendant', active.id);
    else this.element.removeAttribute('aria-activedescendant');
  }

  private cellFor(index: number): HTMLElement {
    const item = this.items[index];
    return h(
      'button',
      {
        class: index === this.selected ? 'cell selected' : 'cell',
        role: 'gridcell',
        id: this.cellId(index),
        'aria-selected': String(index === this.selected),
        'aria-colindex': String((index % this.columns) + 1),
        tabindex: '-1',
        title: item.path,
        dataset: { index: String(index) },
        style: `width: ${this.cell}px`,
        onclick: () => {
          this.selected = index;
          this.render();
          this.element.focus();
          this.options.onActivate?.(index);
        },
      },
      this.thumbnail(item.path),
      h('span', { class: 'caption' }, item.label ? `${item.label} · ${baseName(item.path)}` : baseName(item.path)),
    );
  }

  /**
   * The thumbnail of `path`. The server draws a file it cannot read as an image that says so, so a
   * failed load means only that its queue was full (HTTP 503): the cell shows its plain background
   * and asks again, later each time, while it is on screen. A cell drawn again starts afresh.
   */
  private thumbnail(path: string): HTMLImageElement {
    let tries = 0;
    let waiting = false;
    const image = h('img', {
      src: this.options.thumbnailUrl(path),
      // The caption below names the image; the same name twice would only be read twice.
      alt: '',
      loading: 'lazy',
      width: String(this.cell),
      height: String(this.cell),
      draggable: 'false',
      onerror: () => {
        if (waiting) return;
        waiting = true;
        image.src = WAITING;
        const wait = RETRY_MS[tries++];
        if (wait === undefined) return;
        setTimeout(() => {
          if (!image.isConnected) return;
          waiting = false;
          image.src = this.options.thumbnailUrl(path);
        }, wait);
      },
    });
    return image;
  }

  private onKey(event: KeyboardEvent): void {
    const page = this.columns * Math.max(1, Math.floor(this.element.clientHeight / (this.cell + 22)));
    const moves: Record<string, number> = {
      ArrowRight: 1,
      ArrowLeft: -1,
      ArrowDown: this.columns,
      ArrowUp: -this.columns,
      PageDown: page,
      PageUp: -page,
    };
    if (event.key in moves) this.select(this.selected + moves[event.key]);
    else if (event.key === 'Home') this.select(0);
    else if (event.key === 'End') this.select(this.items.length - 1);
    else if (event.key === 'Enter' && this.selected >= 0) this.options.onActivate?.(this.selected);
    else return;
    event.preventDefault();
  }
}
