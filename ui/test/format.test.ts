import { describe, expect, it } from 'vitest';
import { duration, eta, percent, rate } from '../src/format';

describe('format', () => {
  it('reads durations at every scale', () => {
    expect(duration(42)).toBe('42 s');
    expect(duration(125)).toBe('2 min 05 s');
    expect(duration(3 * 3600 + 120)).toBe('3 h 02 min');
    expect(duration(Number.NaN)).toBe('—');
  });

  it('estimates the time left from the remaining steps', () => {
    // Epoch 2 of 3, step 4 of 10: 6 steps left in this epoch and 10 in the last.
    expect(eta(2, 4, 10, 3, 0.5)).toBe(8);
    expect(eta(3, 10, 10, 3, 0.5)).toBe(0);
  });

  it('shows rates and percentages', () => {
    expect(rate(1234.4)).toBe('1234 img/s');
    expect(rate(12.34)).toBe('12.3 img/s');
    expect(rate(0)).toBe('—');
    expect(percent(null)).toBe('—');
    expect(percent(42.123)).toBe('42.1 %');
  });
});
