// Streaming decimation of a curve. A 200-epoch run reports ~78 000 steps; redrawing every one of
// them on every step would make the loss chart slower as the run goes on. Points (arriving in x
// order) are gathered into equal buckets of consecutive points, and each bucket draws only its
// first, lowest, highest and last point (M4 aggregation, Jugel et al. 2014): a line through those
// looks like the line through all of them, spikes and dips included, and starts and ends exactly
// where the curve does. When there are too many buckets, neighbouring pairs merge and the bucket
// size doubles. A new point therefore changes only the last bucket's few drawn points, and a whole
// run never draws more than `limit` of them.

export interface Point {
  x: number;
  y: number;
}

interface Bucket {
  first: Point;
  min: Point;
  max: Point;
  last: Point;
  count: number;
}

export class Decimator {
  /**
   * The points to draw, in x order. The same array for the decimator's life, changed only by
   * `splice`, so a chart can hold it and see each change (Chart.js watches its data arrays).
   */
  readonly drawn: Point[] = [];
  private buckets: Bucket[] = [];
  /** Points per full bucket: 1 until the limit is first reached, then doubling. */
  private size = 1;
  /** Where the last (still filling) bucket's points start in `drawn`. */
  private lastStart = 0;
  private seen = 0;
  private first: Point | null = null;
  private latest: Point | null = null;
  private lowest: Point | null = null;
  private highest: Point | null = null;

  /** `limit`: the most points drawn at once (at least 8: two buckets of four). */
  constructor(readonly limit = 2000) {
    if (limit < 8) throw new RangeError(`a decimation limit of ${limit} leaves too few buckets to draw a curve`);
  }

  /** How many points arrived (drawn or not). */
  get count(): number {
    return this.seen;
  }

  /** What a summary of the whole curve needs, over every point that arrived. */
  get extremes(): { first: Point; latest: Point; lowest: Point; highest: Point } | null {
    const { first, latest, lowest, highest } = this;
    return first && latest && lowest && highest ? { first, latest, lowest, highest } : null;
  }

  push(point: Point): void {
    this.seen += 1;
    this.first ??= point;
    this.latest = point;
    if (!this.lowest || point.y < this.lowest.y) this.lowest = point;
    if (!this.highest || point.y > this.highest.y) this.highest = point;
    let last = this.buckets[this.buckets.length - 1];
    if (!last || last.count === this.size) {
      // A new bucket will draw up to min(size, 4) points: make room for them first.
      while (this.drawn.length + Math.min(this.size, 4) > this.limit) this.merge();
      last = this.buckets[this.buckets.length - 1];
    }
    if (last && last.count < this.size) {
      last.count += 1;
      last.last = point;
      if (point.y < last.min.y) last.min = point;
      if (point.y > last.max.y) last.max = point;
    } else {
      last = { first: point, min: point, max: point, last: point, count: 1 };
      this.buckets.push(last);
      this.lastStart = this.drawn.length;
    }
    this.drawn.splice(this.lastStart, this.drawn.length - this.lastStart, ...extremesOf(last));
  }

  clear(): void {
    this.buckets = [];
    this.size = 1;
    this.lastStart = 0;
    this.seen = 0;
    this.first = this.latest = this.lowest = this.highest = null;
    this.drawn.splice(0, this.drawn.length);
  }

  /**
   * Merges neighbouring buckets pairwise and redraws. Merges come once per doubling of the points
   * (after the first, which can take a few rounds), so their O(limit) cost is amortised.
   */
  private merge(): void {
    const merged: Bucket[] = [];
    for (let i = 0; i < this.buckets.length; i += 2) {
      const a = this.buckets[i];
      const b = this.buckets[i + 1];
      merged.push(
        b
          ? { first: a.first, min: b.min.y < a.min.y ? b.min : a.min, max: b.max.y > a.max.y ? b.max : a.max, last: b.last, count: a.count + b.count }
          : a,
      );
    }
    this.buckets = merged;
    this.size *= 2;
    const drawn: Point[] = [];
    for (const bucket of merged) {
      this.lastStart = drawn.length;
      drawn.push(...extremesOf(bucket));
    }
    this.drawn.splice(0, this.drawn.length, ...drawn);
  }
}

/** A bucket's first, lowest, highest and last point, each once, in x order. */
function extremesOf(bucket: Bucket): Point[] {
  const { first, min, max, last } = bucket;
  const [low, high] = min.x <= max.x ? [min, max] : [max, min];
  return [first, low, high, last].filter((point, i, all) => all.indexOf(point) === i);
}
