import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

// A stand-in for Chart.js's Chart that records what the plots ask of it: happy-dom has no canvas
// to draw on, and what matters here is how often a chart is made and updated, and with what.
const { FakeChart } = vi.hoisted(() => {
  class FakeChart {
    static made: FakeChart[] = [];
    static defaults = { color: '', borderColor: '' };
    static register(): void {}
    updates = 0;
    destroyed = false;
    data: { datasets: { data: unknown[]; borderColor?: string; backgroundColor?: string }[] };
    constructor(_canvas: unknown, config: { data: FakeChart['data'] }) {
      this.data = config.data;
      FakeChart.made.push(this);
    }
    update(): void {
      this.updates += 1;
    }
    destroy(): void {
      this.destroyed = true;
    }
  }
  return { FakeChart };
});
vi.mock('chart.js', async (original) => ({ ...(await original<typeof import('chart.js')>()), Chart: FakeChart }));

import { CurvePlot, HistogramPlot, MAX_DRAWN_POINTS, ScatterPlot, paletteColor } from '../src/components/charts';

beforeAll(() => {
  HTMLCanvasElement.prototype.getContext = (() => ({})) as unknown as HTMLCanvasElement['getContext'];
});

afterEach(() => {
  FakeChart.made = [];
  document.documentElement.style.removeProperty('--plot-1');
});

const summary = (plot: { element: HTMLElement }) => plot.element.querySelector('.plot-summary')!.textContent;

describe('curve plots', () => {
  it('draw a 200-epoch run with one chart, updated in place, at most 2000 points', () => {
    const plot = new CurvePlot('Training loss per step', { x: 'step', y: 'loss' }, [{ label: 'loss', color: paletteColor(0) }]);
    for (let step = 1; step <= 78_000; step++) plot.add(0, step, 5.5 - step / 78_000);
    expect(FakeChart.made.length).toBe(1);
    const chart = FakeChart.made[0];
    expect(chart.updates).toBe(78_000 - 1);
    // The chart holds the plot's own array, so nothing is rebuilt per step.
    expect(chart.data.datasets[0].data).toBe(plot.points());
    expect(plot.points().length).toBeLessThanOrEqual(2000);
    expect(Number(plot.element.dataset.points)).toBe(plot.points().length);
    expect(summary(plot)).toBe('loss: 78,000 values, step 1 to 78,000; latest 4.5, lowest 4.5 at step 78,000, highest 5.5 at step 1.');
  });

  it('are an image with a text alternative that follows the data', () => {
    const plot = new CurvePlot('kNN accuracy per epoch', { x: 'epoch', y: 'top-1 %' }, [{ label: 'kNN', color: paletteColor(2) }]);
    const canvas = plot.element.querySelector('canvas')!;
    expect(canvas.getAttribute('role')).toBe('img');
    expect(canvas.getAttribute('aria-label')).toBe('kNN accuracy per epoch');
    const described = plot.element.querySelector(`#${canvas.getAttribute('aria-describedby')}`)!;
    expect(described.classList.contains('visually-hidden')).toBe(true);
    expect(described.textContent).toBe('kNN: no values yet.');
    plot.set(0, [{ x: 1, y: 31.25 }, { x: 2, y: 52.5 }]);
    expect(summary(plot)).toBe('kNN (top-1 %): 2 values, epoch 1 to 2; latest 52.5, lowest 31.25 at epoch 1, highest 52.5 at epoch 2.');
    plot.set(0, []);
    expect(summary(plot)).toBe('kNN: no values yet.');
  });

  it('take their colours from the stylesheet, and repaint in a new scheme', () => {
    document.documentElement.style.setProperty('--plot-1', '#123456');
    const plot = new CurvePlot('Loss', { x: 'step', y: 'loss' }, [{ label: 'loss', color: paletteColor(0) }]);
    plot.add(0, 1, 2);
    const chart = FakeChart.made[0];
    expect(chart.data.datasets[0].borderColor).toBe('#123456');
    document.documentElement.style.setProperty('--plot-1', '#abcdef');
    plot.repaint();
    expect(chart.data.datasets[0].borderColor).toBe('#abcdef');
    plot.destroy();
    expect(chart.destroyed).toBe(true);
  });
});

describe('a destroyed plot', () => {
  it('lets go of its chart and of the observer that refits it', () => {
    const observers: { observed: number; disconnected: boolean }[] = [];
    vi.stubGlobal(
      'IntersectionObserver',
      class {
        private readonly record = { observed: 0, disconnected: false };
        constructor() {
          observers.push(this.record);
        }
        observe(): void {
          this.record.observed += 1;
        }
        disconnect(): void {
          this.record.disconnected = true;
        }
      },
    );
    try {
      const plot = new CurvePlot('kNN', { x: 'epoch', y: '%' }, [{ label: 'kNN', color: paletteColor(0) }]);
      plot.add(0, 1, 50);
      plot.destroy();
      expect(FakeChart.made[0].destroyed).toBe(true);
      expect(observers).toEqual([{ observed: 1, disconnected: true }]);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});

describe('histogram and scatter plots', () => {
  it('say what they show', () => {
    const histogram = new HistogramPlot('Similarity');
    expect(summary(histogram)).toBe('No pairs yet.');
    histogram.set([
      { label: 'same-label neighbours', histogram: { lo: -1, hi: 1, counts: [0, 0, 1, 3] } },
      { label: 'other-label neighbours', histogram: { lo: -1, hi: 1, counts: [2, 2, 0, 0] } },
    ]);
    expect(summary(histogram)).toBe(
      'same-label neighbours: mean cosine similarity 0.625, most pairs near 0.75. other-label neighbours: mean cosine similarity -0.5, most pairs near -0.75.',
    );
    const scatter = new ScatterPlot('Map', { onHover: () => {}, onClick: () => {} });
    expect(summary(scatter)).toBe('No points yet.');
    const groups = Array.from({ length: 14 }, (_, i) => `class-${i}`);
    scatter.set(groups.map((_, i) => [i, i]), groups.map((_, i) => i), groups);
    expect(summary(scatter)).toBe(
      '14 images in 14 groups: class-0 1, class-1 1, class-2 1, class-3 1, class-4 1, class-5 1, class-6 1, class-7 1, class-8 1, class-9 1 and 4 more.',
    );
  });

  it('draw an even sample of a million-point map, every group its share, while counting every image', () => {
    const scatter = new ScatterPlot('Map', { onHover: () => {}, onClick: () => {} });
    const n = 1_000_000;
    const points = Array.from({ length: n }, (_, i): [number, number] => [i % 1000, Math.floor(i / 1000)]);
    scatter.set(points, points.map((_, i) => (i < 900_000 ? 0 : 1)), ['most', 'few']);
    expect(scatter.groupSizes()).toEqual([900_000, 100_000]);
    expect(Number(scatter.element.dataset.points)).toBe(MAX_DRAWN_POINTS);
    expect(summary(scatter)).toBe('1,000,000 images in 2 groups: most 900,000, few 100,000. Every 20th image is drawn (50,000); each has its place.');
  });
});
