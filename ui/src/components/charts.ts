// Chart.js wrappers for the three kinds of plot the app draws: curves (loss, kNN), overlapping
// histograms (similarity distributions) and a scatter map (PCA). Each keeps its data so it can be
// redrawn as events arrive, and draws only where a canvas context exists (not in unit tests).
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
import type { Histogram } from '../backend';

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

const POSITIVE = '#2a9d8f';
const NEGATIVE = '#e76f51';

type AnyConfiguration = ChartConfiguration<'line'> | ChartConfiguration<'bar'> | ChartConfiguration<'scatter'>;

abstract class Plot {
  readonly element: HTMLElement;
  private chart: Chart | null = null;
  private readonly canvas: HTMLCanvasElement;

  constructor(title: string, className: string) {
    this.canvas = h('canvas');
    this.element = h('figure', { class: `plot ${className}` }, h('figcaption', {}, title), h('div', { class: 'plot-area' }, this.canvas));
  }

  protected draw(config: AnyConfiguration): void {
    // The number of drawn values, readable without a canvas (tests, assistive tools).
    const datasets = config.data.datasets as { data: unknown[] }[];
    this.element.dataset.points = String(datasets.reduce((sum, set) => sum + set.data.length, 0));
    if (this.chart) {
      this.chart.data = config.data as Chart['data'];
      this.chart.update('none');
      return;
    }
    if (!this.canvas.getContext?.('2d')) return;
    const options = { animation: false as const, maintainAspectRatio: false, ...config.options };
    this.chart = new Chart(this.canvas, { ...config, options } as ChartConfiguration);
  }
}

/** One or more curves over a numeric x axis (steps, epochs). */
export class CurvePlot extends Plot {
  private series: { label: string; colour: string; points: { x: number; y: number }[] }[];

  constructor(
    title: string,
    private readonly axes: { x: string; y: string; yMin?: number; yMax?: number },
    series: { label: string; colour: string }[],
  ) {
    super(title, 'curve');
    this.series = series.map((s) => ({ ...s, points: [] }));
  }

  add(series: number, x: number, y: number): void {
    this.series[series].points.push({ x, y });
    this.redraw();
  }

  set(series: number, points: { x: number; y: number }[]): void {
    this.series[series].points = points;
    this.redraw();
  }

  /** The drawn values, for tests and for the accessible text beside the chart. */
  points(series = 0): { x: number; y: number }[] {
    return this.series[series].points;
  }

  private redraw(): void {
    this.draw({
      type: 'line',
      data: {
        datasets: this.series.map(
          (s): ChartDataset<'line'> => ({ label: s.label, data: s.points, borderColor: s.colour, backgroundColor: s.colour, pointRadius: s.points.length > 40 ? 0 : 3, borderWidth: 2 }),
        ),
      },
      options: {
        parsing: false,
        scales: {
          x: { type: 'linear', title: { display: true, text: this.axes.x } },
          y: { title: { display: true, text: this.axes.y }, min: this.axes.yMin, max: this.axes.yMax },
        },
        plugins: { legend: { display: this.series.length > 1 } },
      },
    });
  }
}

/** Overlapping histograms on the cosine-similarity axis [-1, 1], as fractions of each total. */
export class HistogramPlot extends Plot {
  private shown: { label: string; histogram: Histogram }[] = [];

  constructor(title: string) {
    super(title, 'histogram');
  }

  set(histograms: { label: string; histogram: Histogram }[]): void {
    this.shown = histograms;
    const first = histograms[0]?.histogram;
    if (!first) return;
    const width = (first.hi - first.lo) / first.counts.length;
    const labels = first.counts.map((_, i) => (Math.round((first.lo + (i + 0.5) * width) * 10) / 10 || 0).toFixed(1));
    const colours = [POSITIVE, NEGATIVE, '#6c757d'];
    this.draw({
      type: 'bar',
      data: {
        labels,
        datasets: histograms.map(({ label, histogram }, i) => {
          const total = histogram.counts.reduce((a, b) => a + b, 0) || 1;
          return {
            label,
            data: histogram.counts.map((c) => c / total),
            backgroundColor: `${colours[i % colours.length]}99`,
            borderColor: colours[i % colours.length],
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
    });
  }

  /** Mean similarity of each histogram (bin centres weighted by counts). */
  means(): { label: string; mean: number }[] {
    return this.shown.map(({ label, histogram }) => {
      const width = (histogram.hi - histogram.lo) / histogram.counts.length;
      const total = histogram.counts.reduce((a, b) => a + b, 0);
      const sum = histogram.counts.reduce((acc, c, i) => acc + c * (histogram.lo + (i + 0.5) * width), 0);
      return { label, mean: total ? sum / total : NaN };
    });
  }
}

/** A 2-D scatter with one colour per group; hover and click report the point's index. */
export class ScatterPlot extends Plot {
  private indices: number[][] = [];

  constructor(
    title: string,
    private readonly handlers: { onHover: (index: number | null, x: number, y: number) => void; onClick: (index: number) => void },
  ) {
    super(title, 'scatter');
  }

  set(points: [number, number][], groups: (number | null)[], groupNames: string[]): void {
    const names = groupNames.length ? groupNames : ['images'];
    this.indices = names.map(() => []);
    points.forEach((_, i) => this.indices[groups[i] ?? 0].push(i));
    const palette = ['#e76f51', '#2a9d8f', '#e9c46a', '#264653', '#f4a261', '#8ab17d', '#9b5de5', '#00bbf9', '#f15bb5', '#6c757d'];
    const resolve = (datasetIndex: number, index: number) => this.indices[datasetIndex][index];
    this.draw({
      type: 'scatter',
      data: {
        datasets: names.map((name, g) => ({
          label: name,
          data: this.indices[g].map((i) => ({ x: points[i][0], y: points[i][1] })),
          backgroundColor: palette[g % palette.length],
          pointRadius: points.length > 5000 ? 1.5 : 3,
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
        scales: { x: { title: { display: true, text: 'PC 1' } }, y: { title: { display: true, text: 'PC 2' } } },
      },
    });
  }

  /** Number of points per group, for tests and the legend text. */
  groupSizes(): number[] {
    return this.indices.map((group) => group.length);
  }
}
