// A similarity histogram with a threshold the person drags (pointer) or steps (arrow keys): the
// near-duplicate finder's control. Drawn as SVG, so it needs no canvas and reads the same in tests;
// the handle is a `slider` for assistive tools, and a sentence under it says what the threshold
// means on the two distributions.
import { h } from '../dom';
import type { Histogram } from '../backend';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 600;
const HEIGHT = 160;
/** The x range shown ends at 1; it starts where the data does (at most at 0), so that a model
 * whose similarities crowd the top still spreads them across the plot. */
const HI = 1;

export interface ThresholdSeries {
  label: string;
  histogram: Histogram;
  /** CSS class of the bars (colours come from the stylesheet, so dark mode applies). */
  className: string;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attributes: Record<string, string | number>): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

/** Fraction of a histogram's values at or above `t` (bins split linearly where `t` falls inside one). */
export function fractionAbove(histogram: Histogram, t: number): number {
  const total = histogram.counts.reduce((a, b) => a + b, 0);
  if (!total) return 0;
  const width = (histogram.hi - histogram.lo) / histogram.counts.length;
  let above = 0;
  histogram.counts.forEach((count, i) => {
    const start = histogram.lo + i * width;
    const share = Math.min(1, Math.max(0, (start + width - t) / width));
    above += count * share;
  });
  return above / total;
}

/** Where the plot starts: a little below the lowest value any series holds, on a step of 0.01
 * (0.001 above 0.99), and never above 0.99 or below 0. */
export function startOf(series: ThresholdSeries[]): number {
  let lowest = HI;
  for (const { histogram } of series) {
    const width = (histogram.hi - histogram.lo) / histogram.counts.length;
    const first = histogram.counts.findIndex((c) => c > 0);
    if (first >= 0) lowest = Math.min(lowest, histogram.lo + first * width);
  }
  const margin = Math.max(0.002, (HI - lowest) * 0.1);
  const step = lowest > 0.99 ? 1000 : 100;
  return Math.max(0, Math.min(0.99, Math.floor((lowest - margin) * step) / step));
}

export class ThresholdHistogram {
  readonly element: HTMLElement;
  private readonly plot = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: 'none', class: 'threshold-plot' });
  private readonly bars = svg('g', {});
  private readonly line = svg('line', { y1: 0, y2: HEIGHT, class: 'threshold-line' });
  private readonly handle: HTMLElement;
  private readonly readout = h('p', { class: 'threshold-readout', 'aria-live': 'polite' });
  private series: ThresholdSeries[] = [];
  private value = 0.9;
  private lo = 0;
  private readonly axis = h('div', { class: 'threshold-axis', 'aria-hidden': 'true' });

  /** `onChange` fires when the person lets go (pointer up, or each key step). */
  constructor(
    title: string,
    private readonly onChange: (threshold: number) => void,
    private readonly describe: (threshold: number, series: ThresholdSeries[]) => string,
  ) {
    this.plot.append(this.bars, this.line);
    this.handle = h('div', {
      class: 'threshold-handle',
      role: 'slider',
      tabindex: '0',
      'aria-label': 'Near-duplicate threshold (cosine similarity)',
      'aria-valuemax': String(HI),
    });
    const area = h('div', { class: 'threshold-area' }, this.plot, this.handle);
    this.element = h(
      'figure',
      { class: 'plot threshold' },
      h('figcaption', {}, title),
      area,
      this.axis,
      this.readout,
    );
    const at = (event: PointerEvent) => {
      const box = area.getBoundingClientRect();
      return box.width ? this.lo + ((event.clientX - box.left) / box.width) * (HI - this.lo) : this.value;
    };
    let dragging = false;
    area.addEventListener('pointerdown', (event) => {
      dragging = true;
      area.setPointerCapture?.(event.pointerId);
      this.set(at(event));
    });
    area.addEventListener('pointermove', (event) => {
      if (dragging) this.set(at(event));
    });
    area.addEventListener('pointerup', () => {
      if (!dragging) return;
      dragging = false;
      this.onChange(this.value);
    });
    this.handle.addEventListener('keydown', (event) => {
      const steps: Record<string, number> = { ArrowLeft: -0.005, ArrowDown: -0.005, ArrowRight: 0.005, ArrowUp: 0.005, PageDown: -0.05, PageUp: 0.05 };
      const step = steps[event.key];
      if (step === undefined) return;
      event.preventDefault();
      this.set(this.value + step);
      this.onChange(this.value);
    });
  }

  get threshold(): number {
    return this.value;
  }

  /** The distributions drawn as overlapping bars, each normalised to its own total. */
  setSeries(series: ThresholdSeries[]): void {
    this.series = series;
    this.bars.replaceChildren();
    const fractions = series.map(({ histogram }) => {
      const total = histogram.counts.reduce((a, b) => a + b, 0) || 1;
      return histogram.counts.map((c) => c / total);
    });
    const peak = Math.max(1e-9, ...fractions.flat());
    this.lo = startOf(series);
    const LO = this.lo;
    this.axis.replaceChildren(...[0, 0.25, 0.5, 0.75, 1].map((f) => h('span', {}, (LO + f * (HI - LO)).toFixed(LO > 0.9 ? 3 : 2))));
    this.handle.setAttribute('aria-valuemin', LO.toFixed(3));
    series.forEach(({ histogram, className, label }, s) => {
      const width = (histogram.hi - histogram.lo) / histogram.counts.length;
      const group = svg('g', { class: className });
      group.append(svg('title', {}));
      group.firstElementChild!.textContent = label;
      fractions[s].forEach((fraction, i) => {
        const start = histogram.lo + i * width;
        if (start + width <= LO || start >= HI || fraction === 0) return;
        const x = ((Math.max(start, LO) - LO) / (HI - LO)) * WIDTH;
        const w = (Math.min(width, HI - start) / (HI - LO)) * WIDTH;
        const barHeight = (fraction / peak) * (HEIGHT - 4);
        group.append(svg('rect', { x, y: HEIGHT - barHeight, width: Math.max(w, 0.5), height: barHeight }));
      });
      this.bars.append(group);
    });
    this.set(this.value);
  }

  /** Moves the threshold without reporting it (the suggestion, a reset). */
  set(threshold: number): void {
    const LO = this.lo;
    this.value = Math.round(Math.min(HI, Math.max(LO, threshold)) * 1000) / 1000;
    const x = ((this.value - LO) / (HI - LO)) * WIDTH;
    this.line.setAttribute('x1', String(x));
    this.line.setAttribute('x2', String(x));
    this.handle.style.left = `${((this.value - LO) / (HI - LO)) * 100}%`;
    this.handle.setAttribute('aria-valuenow', this.value.toFixed(3));
    this.handle.setAttribute('aria-valuetext', `cosine ${this.value.toFixed(3)}`);
    this.readout.textContent = this.describe(this.value, this.series);
  }
}
