import { describe, expect, it } from 'vitest';
import { Decimator, type Point } from '../src/components/decimate';

/** A falling loss over `steps` steps with one spike and one dip, as a long run might report it. */
function lossCurve(steps: number, spikeAt: number, dipAt: number): Point[] {
  return Array.from({ length: steps }, (_, i) => {
    const step = i + 1;
    const y = step === spikeAt ? 50 : step === dipAt ? -5 : 5.5 - step / steps + 0.01 * Math.sin(step);
    return { x: step, y };
  });
}

describe('decimation of a curve', () => {
  it('keeps every point while there are fewer than the limit', () => {
    const decimator = new Decimator(100);
    const points = lossCurve(80, 0, 0);
    points.forEach((p) => decimator.push(p));
    expect(decimator.drawn).toEqual(points);
    expect(decimator.count).toBe(80);
  });

  it('draws a 200-epoch run in at most the limit, in order, with its spikes and both ends', () => {
    const decimator = new Decimator(2000);
    const points = lossCurve(78_000, 41_234, 60_001);
    points.forEach((p) => decimator.push(p));
    const drawn = decimator.drawn;
    expect(drawn.length).toBeLessThanOrEqual(2000);
    expect(drawn.length).toBeGreaterThan(500);
    expect(drawn.every((p, i) => i === 0 || p.x > drawn[i - 1].x)).toBe(true);
    expect(drawn).toContainEqual({ x: 41_234, y: 50 });
    expect(drawn).toContainEqual({ x: 60_001, y: -5 });
    expect(drawn[0]).toBe(points[0]);
    expect(drawn[drawn.length - 1]).toBe(points[77_999]);
    expect(decimator.count).toBe(78_000);
    expect(decimator.extremes).toEqual({ first: points[0], latest: points[77_999], lowest: { x: 60_001, y: -5 }, highest: { x: 41_234, y: 50 } });
  });

  it('changes only the last drawn points when one arrives, in the same array', () => {
    const decimator = new Decimator(64);
    const array = decimator.drawn;
    const points = lossCurve(10_000, 0, 0);
    let merges = 0;
    for (const point of points) {
      const before = [...decimator.drawn];
      decimator.push(point);
      const after = decimator.drawn;
      // Either the drawn prefix is untouched (all but the last bucket's ≤ 4 points) or buckets merged.
      const untouched = before.slice(0, -4).every((p, i) => after[i] === p);
      if (!untouched) merges += 1;
      expect(after.length).toBeLessThanOrEqual(64);
    }
    expect(decimator.drawn).toBe(array);
    expect(decimator.drawn[decimator.drawn.length - 1]).toBe(points[9_999]);
    // 10 000 points through 16 buckets of 1, 2, 4 … points: one merge per doubling.
    expect(merges).toBeGreaterThan(0);
    expect(merges).toBeLessThanOrEqual(Math.ceil(Math.log2(10_000 / 16)));
  });

  it('starts afresh after clear, and refuses a limit too small to draw a line', () => {
    const decimator = new Decimator(8);
    lossCurve(100, 0, 0).forEach((p) => decimator.push(p));
    decimator.clear();
    expect(decimator.drawn).toEqual([]);
    expect(decimator.count).toBe(0);
    expect(decimator.extremes).toBeNull();
    decimator.push({ x: 1, y: 2 });
    expect(decimator.drawn).toEqual([{ x: 1, y: 2 }]);
    expect(() => new Decimator(7)).toThrow(RangeError);
  });
});
