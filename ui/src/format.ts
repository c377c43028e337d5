// Formatting of the numbers the app shows; every number comes from the backend, these only
// decide how it reads.

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

export function rate(imagesPerSecond: number): string {
  if (!Number.isFinite(imagesPerSecond) || imagesPerSecond <= 0) return '—';
  return imagesPerSecond >= 100 ? `${Math.round(imagesPerSecond)} img/s` : `${imagesPerSecond.toFixed(1)} img/s`;
}

export function percent(value: number | null | undefined): string {
  return value === null || value === undefined ? '—' : `${value.toFixed(1)} %`;
}

/** Disk space in MiB (the unit file managers on Linux and Windows use). */
export function mebibytes(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** Bytes in KiB below a MiB, else in MiB: network traffic per step spans both. */
export function bytes(value: number): string {
  return value < 1048576 ? `${(value / 1024).toFixed(1)} KiB` : mebibytes(value);
}

export function count(value: number): string {
  return value.toLocaleString('en-US');
}

/**
 * Seconds left in a run from the recent throughput: the remaining steps of this epoch and of the
 * later ones, at the measured step time.
 */
export function eta(
  epoch: number,
  step: number,
  stepsPerEpoch: number,
  epochs: number,
  secondsPerStep: number,
): number {
  const remaining = (epochs - epoch) * stepsPerEpoch + (stepsPerEpoch - step);
  return remaining * secondsPerStep;
}
