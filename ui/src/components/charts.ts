// Chart.js wrappers for the three kinds of plot the app draws: curves (loss, kNN), overlapping
// histograms (similarity distributions) and a scatter map (PCA). Each keeps its data so it can be
// redrawn as events arrive, says in words what it shows (read by screen readers beside the
// canvas, and by the tests, which have no canvas), and takes its colours from the stylesheet's
// custom properties, so it follows the light or the dark palette.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LineController,
  LineElement,
  LinearScale,
  PointElement,
  ScatterController,
  Tooltip,
  type ChartConfiguration,
  type ChartDataset,
} from 'chart.js';
import { h } from '../dom';
import { count } from '../format';
import type { Histogram } from '../backend';
import { Decimator, type Point } from './decimate';

Chart.register(
  BarController,
  BarElement,
  CategoryScale,
  LineController,
  LineElement,
  LinearScale,
  PointElement,
  ScatterController,
  Tooltip,
  Legend,
);

/** The categorical palette: custom properties `--plot-1` … `--plot-10` in styles.css. */
const PALETTE_SIZE = 10;

/** The palette colour for series or group `index` (cycling), as a custom property name. */
export function paletteColor(index: number): string {
  return `--plot-${(index % PALETTE_SIZE) + 1}`;
}

/** The current value of a colour custom property; grey where no stylesheet sets it (unit tests). */
function color(property: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(property).trim() || '#808080';
}

/** A `#rrggbb` colour made translucent; any other notation is returned opaque. */
function translucent(hex: string, alpha: number): string {
  return /^#[0-9a-f]{6}$/i.test(hex) ? `${hex}${Math.round(alpha * 255).toString(16).padStart(2, '0')}` : hex;
}

/** A value in a summary: whole numbers as counts, others to four significant digits. */
function value(x: number): string {
  return Number.isInteger(x) ? count(x) : String(Number(x.toPrecision(4)));
}

/** Text and grid lines in the palette's muted ink and line colours. */
function themeDefaults(): void {
  Chart.defaults.color = color('--muted');
  Chart.defaults.borderColor = color('--line');
}

type AnyConfiguration = ChartConfiguration<'line'> | ChartConfiguration<'bar'> | ChartConfiguration<'scatter'>;

/** Every plot that has a chart, to repaint when the colour scheme changes. */
const painted = new Set<Plot>();
globalThis.matchMedia?.('(prefers-color-scheme: dark)').addEventListener('change', () => {
  themeDefaults();
  for (const plot of painted) plot.repaint();
});

let plotCount = 0;

abstract class Plot {
  readonly element: HTMLElement;
  private chart: Chart | null = null;
  private readonly canvas: HTMLCanvasElement;
  private readonly summary: HTMLElement;
  /** Refits the chart as it comes into view; it would keep the plot alive after `destroy`. */
  private observer: IntersectionObserver | null = null;

  constructor(title: string, className: string) {
    plotCount += 1;
    const summaryId = `plot-summary-${plotCount}`;
    this.canvas = h('canvas', { role: 'img', 'aria-label': title, 'aria-describedby': summaryId });
    this.summary = h('p', { class: 'visually-hidden plot-summary', id: summaryId });
    this.element = h('figure', { class: `plot ${className}` }, h('figcaption', {}, title), h('div', { class: 'plot-area' }, this.canvas), this.summary);
    // A chart measured while hidden (a tab not shown) has an empty box and draws nothing until it
    // is fitted again: do that whenever the plot comes into view.
    if (typeof IntersectionObserver !== 'undefined') {
      this.observer = new IntersectionObserver((entries) => {
        if (entries.some((entry) => entry.isIntersecting)) this.resize();
      });
      this.observer.observe(this.element);
    }
  }

  /** The whole chart configuration, in the current colours. */
  protected abstract configuration(): AnyConfiguration;

  /** How many values are drawn. */
  protected abstract drawnCount(): number;

  /** What the plot shows, in a sentence or two. */
  abstract describe(): string;

  /**
   * Shows changed data: the first time by creating the chart (where a canvas context exists),
   * afterwards by updating the same chart.
   */
  protected refresh(): void {
    this.summarize();
    if (this.chart) {
      this.sync(this.chart);
      this.chart.update('none');
      return;
    }
    if (!this.canvas.getContext?.('2d')) return;
    themeDefaults();
    const config = this.configuration();
    const options = { animation: false as const, maintainAspectRatio: false, ...config.options };
    this.chart = new Chart(this.canvas, { ...config, options } as ChartConfiguration);
    painted.add(this);
  }

  /** Writes what is drawn where it is readable without a canvas: by assistive tools, and tests. */
  protected summarize(): void {
    this.element.dataset.points = String(this.drawnCount());
    this.summary.textContent = this.describe();
  }

  /** Brings an existing chart's data up to date; by default, a fresh configuration's. */
  protected sync(chart: Chart): void {
    chart.data = this.configuration().data as Chart['data'];
  }

  /** Fits the chart to its box again and redraws it, on the next frame, once the box has its
   * size. */
  private resize(): void {
    requestAnimationFrame(() => {
      if (!this.chart) return;
      this.chart.resize();
      this.chart.update('none');
    });
  }

  /** Redraws in the current colour scheme. */
  repaint(): void {
    if (!this.chart) return;
    this.chart.data = this.configuration().data as Chart['data'];
    this.chart.update('none');
  }

  /** Releases the chart (Chart.js keeps every chart it made until it is destroyed) and its observer. */
  destroy(): void {
    this.observer?.disconnect();
    this.observer = null;
    this.chart?.destroy();
    this.chart = null;
    painted.delete(this);
  }
}

/**
 * One or more curves over a numeric x axis (steps, epochs). Each series is decimated (see
 * decimate.ts), so a long run keeps drawing at most `limit` points per curve, and a new point
 * updates the existing chart instead of rebuilding it.
 */
export class CurvePlot extends Plot {
  private readonly series: { label: string; color: string; points: Decimator }[];

  /** `series[].colour`: a colour custom property, e.g. `paletteColour(0)`. */
  constructor(
    title: string,
    private readonly axes: { x: string; y: string; yMin?: number; yMax?: number },
    series: { label: string; color: string }[],
    limit = 2000,
  ) {
    super(title, 'curve');
    this.series = series.map((s) => ({ ...s, points: new Decimator(limit) }));
    this.summarize();
  }

  add(series: number, x: number, y: number): void {
    this.series[series].points.push({ x, y });
    this.refresh();
  }

  set(series: number, points: Point[]): void {
    const decimator = this.series[series].points;
    decimator.clear();
    for (const point of points) decimator.push(point);
    this.refresh();
  }

  /** The drawn values of one series (all of them until there are more than the limit). */
  points(series = 0): readonly Point[] {
    return this.series[series].points.drawn;
  }

  describe(): string {
    const x = this.axes.x;
    return this.series
      .map(({ label, points }) => {
        const seen = points.extremes;
        if (!seen) return `${label}: no values yet.`;
        const { first, latest, lowest, highest } = seen;
        return (
          `${label}${label === this.axes.y ? '' : ` (${this.axes.y})`}: ${count(points.count)} value${points.count === 1 ? '' : 's'}, ${x} ${value(first.x)} to ${value(latest.x)}; ` +
          `latest ${value(latest.y)}, lowest ${value(lowest.y)} at ${x} ${value(lowest.x)}, highest ${value(highest.y)} at ${x} ${value(highest.x)}.`
        );
      })
      .join(' ');
  }

  protected drawnCount(): number {
    return this.series.reduce((sum, s) => sum + s.points.drawn.length, 0);
  }

  /** Dots on short curves (a few epochs); long ones read better as a plain line. */
  private radius(series: number): number {
    return this.series[series].points.drawn.length > 40 ? 0 : 3;
  }

  protected configuration(): ChartConfiguration<'line'> {
    return {
      type: 'line',
      data: {
        // Each dataset holds its decimator's array, which the chart watches for changes.
        datasets: this.series.map((s, i): ChartDataset<'line'> => {
          const line = color(s.color);
          return { label: s.label, data: s.points.drawn, borderColor: line, backgroundColor: line, pointRadius: this.radius(i), borderWidth: 2 };
        }),
      },
      options: {
        parsing: false,
        scales: {
          x: { type: 'linear', title: { display: true, text: this.axes.x } },
          y: { title: { display: true, text: this.axes.y }, min: this.axes.yMin, max: this.axes.yMax },
        },
        plugins: { legend: { display: this.series.length > 1 } },
      },
    };
  }

  protected sync(chart: Chart): void {
    chart.data.datasets.forEach((dataset, i) => {
      (dataset as ChartDataset<'line'>).pointRadius = this.radius(i);
    });
  }
}

/** Overlapping histograms on the cosine-similarity axis [-1, 1], as fractions of each total. */
export class HistogramPlot extends Plot {
  private shown: { label: string; histogram: Histogram }[] = [];

  constructor(title: string) {
    super(title, 'histogram');
    this.summarize();
  }

  set(histograms: { label: string; histogram: Histogram }[]): void {
    this.shown = histograms;
    this.refresh();
  }

  /** Mean similarity of each histogram (bin centres weighted by counts). */
  means(): { label: string; mean: number }[] {
    return this.shown.map(({ label, histogram }) => {
      const total = histogram.counts.reduce((a, b) => a + b, 0);
      const sum = histogram.counts.reduce((acc, c, i) => acc + c * binCenter(histogram, i), 0);
      return { label, mean: total ? sum / total : NaN };
    });
  }

  describe(): string {
    if (!this.shown.length) return 'No pairs yet.';
    const means = this.means();
    return this.shown
      .map(({ label, histogram }, i) => {
        const peak = histogram.counts.indexOf(Math.max(...histogram.counts));
        return `${label}: mean cosine similarity ${value(means[i].mean)}, most pairs near ${value(binCenter(histogram, peak))}.`;
      })
      .join(' ');
  }

  protected drawnCount(): number {
    return this.shown.reduce((sum, { histogram }) => sum + histogram.counts.length, 0);
  }

  protected configuration(): ChartConfiguration<'bar'> {
    const first = this.shown[0]?.histogram;
    const labels = first ? first.counts.map((_, i) => (Math.round(binCenter(first, i) * 10) / 10 || 0).toFixed(1)) : [];
    const colors = ['--plot-positive', '--plot-negative', '--plot-neutral'].map(color);
    return {
      type: 'bar',
      data: {
        labels,
        datasets: this.shown.map(({ label, histogram }, i) => {
          const total = histogram.counts.reduce((a, b) => a + b, 0) || 1;
          const edge = colors[i % colors.length];
          return {
            label,
            data: histogram.counts.map((c) => c / total),
            backgroundColor: translucent(edge, 0.6),
            borderColor: edge,
            borderWidth: 1,
            barPercentage: 1,
            categoryPercentage: 1,
            grouped: false,
          };
        }),
      },
      options: {
        scales: { x: { title: { display: true, text: 'cosine similarity' }, ticks: { maxTicksLimit: 9 } }, y: { title: { display: true, text: 'fraction of pairs' } } },
      },
    };
  }
}

function binCenter(histogram: Histogram, bin: number): number {
  return histogram.lo + ((bin + 0.5) * (histogram.hi - histogram.lo)) / histogram.counts.length;
}

/** Groups named one by one in the summary; the rest are counted. */
const NAMED_GROUPS = 10;

/** A 2-D scatter with one colour per group; hover and click report the point's index. */
/**
 * Points a map draws at most. Chart.js draws and hit-tests every point on each frame and hover, so
 * a million would take seconds a frame; past this an even sample is drawn (every k-th image, so
 * that every region keeps its share), while every image keeps its place, which the neighbour
 * lists and the grid use.
 */
export const MAX_DRAWN_POINTS = 50_000;

/** 2nd, 3rd, 4th, 11th, 21st… */
function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : ({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th';
  return `${count(n)}${suffix}`;
}

export class ScatterPlot extends Plot {
  private points: [number, number][] = [];
  private names: string[] = [];
  /** The drawn images of each group, by row. */
  private indices: number[][] = [];
  /** Images per group, drawn or not. */
  private sizes: number[] = [];
  /** Every `stride`-th image is drawn. */
  private stride = 1;
  /** What the two coordinates are (PCA's components, or UMAP's unitless axes). */
  private axes: [string, string] = ['PC 1', 'PC 2'];

  constructor(
    title: string,
    private readonly handlers: { onHover: (index: number | null, x: number, y: number) => void; onClick: (index: number) => void },
  ) {
    super(title, 'scatter');
    this.summarize();
  }

  set(points: [number, number][], groups: (number | null)[], groupNames: string[], axes: [string, string] = ['PC 1', 'PC 2']): void {
    this.points = points;
    this.axes = axes;
    this.names = groupNames.length ? groupNames : ['images'];
    this.indices = this.names.map(() => []);
    this.sizes = this.names.map(() => 0);
    this.stride = Math.ceil(points.length / MAX_DRAWN_POINTS) || 1;
    points.forEach((_, i) => {
      const group = groups[i] ?? 0;
      this.sizes[group] += 1;
      if (i % this.stride === 0) this.indices[group].push(i);
    });
    this.refresh();
  }

  /** The axis titles follow the map's method, so they are brought up to date with the data. */
  protected override sync(chart: Chart): void {
    super.sync(chart);
    const scales = chart.options.scales as Record<'x' | 'y', { title?: { text?: string } }> | undefined;
    if (scales?.x?.title && scales.y?.title) [scales.x.title.text, scales.y.title.text] = this.axes;
  }

  /** Number of images per group (drawn or not), for tests and the summary. */
  groupSizes(): number[] {
    return [...this.sizes];
  }

  describe(): string {
    if (!this.points.length) return 'No points yet.';
    const sizes = this.groupSizes().map((size, g) => `${this.names[g]} ${count(size)}`);
    const rest = sizes.length - NAMED_GROUPS;
    const drawn = this.stride > 1 ? ` Every ${ordinal(this.stride)} image is drawn (${count(this.drawnCount())}); each has its place.` : '';
    return `${count(this.points.length)} images in ${count(sizes.length)} group${sizes.length === 1 ? '' : 's'}: ${sizes.slice(0, NAMED_GROUPS).join(', ')}${rest > 0 ? ` and ${count(rest)} more` : ''}.${drawn}`;
  }

  protected drawnCount(): number {
    return this.indices.reduce((sum, group) => sum + group.length, 0);
  }

  protected configuration(): ChartConfiguration<'scatter'> {
    const resolve = (datasetIndex: number, index: number) => this.indices[datasetIndex][index];
    return {
      type: 'scatter',
      data: {
        datasets: this.names.map((name, g) => ({
          label: name,
          data: this.indices[g].map((i) => ({ x: this.points[i][0], y: this.points[i][1] })),
          backgroundColor: color(paletteColor(g)),
          pointRadius: this.drawnCount() > 5000 ? 1.5 : 3,
        })),
      },
      options: {
        onHover: (event, elements) => {
          const hit = elements[0];
          this.handlers.onHover(hit ? resolve(hit.datasetIndex, hit.index) : null, event.x ?? 0, event.y ?? 0);
        },
        onClick: (_event, elements) => {
          const hit = elements[0];
          if (hit) this.handlers.onClick(resolve(hit.datasetIndex, hit.index));
        },
        plugins: { tooltip: { enabled: false } },
        scales: { x: { title: { display: true, text: this.axes[0] } }, y: { title: { display: true, text: this.axes[1] } } },
      },
    };
  }
}
