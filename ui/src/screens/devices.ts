// The device picker's values, and whether a device trains as a GPU, which decides the defaults
// the Train screen offers. Apart from the screen so that it stays within its 600 lines.
import type { Adapter, DeviceChoice, Devices } from '../backend';
import type { DeviceClass } from '../store';

/** The choice a device picker value stands for. */
export function parseDevice(value: string): DeviceChoice {
  if (value === 'auto' || value === 'cpu' || value === 'gpu') return value;
  return { adapter: Number(value) };
}

/** The device picker's value for a choice. */
export function deviceValue(device: DeviceChoice): string {
  return typeof device === 'string' ? device : String(device.adapter);
}

/** Adapter kinds that train as a GPU does; a software rasteriser is slower than the CPU backend. */
const GPU_KINDS: readonly Adapter['kind'][] = ['discrete', 'integrated', 'virtual'];

/**
 * Whether `device` trains on a GPU. Automatic is a GPU unless the backend's notice says it falls
 * back to the CPU; without the adapter list (still loading, or failed) it counts as the CPU, whose
 * defaults are the safe ones.
 */
export function deviceClass(device: DeviceChoice, devices: Devices | null): DeviceClass {
  if (device === 'cpu' || device === 'gpu') return device;
  if (device === 'auto') return devices && devices.auto_notice === null ? 'gpu' : 'cpu';
  const adapter = devices?.adapters.find((a) => a.index === device.adapter);
  return adapter && GPU_KINDS.includes(adapter.kind) ? 'gpu' : 'cpu';
}

/** One line per adapter: name, API, kind, and what Burn compiles for it. */
export function adapterLabel(adapter: Adapter): string {
  const kind = adapter.kind === 'software' ? 'software rasteriser: very slow' : adapter.kind;
  const compute = adapter.compute;
  const fast = compute === null
    ? 'could not be opened'
    : `${compute.compiler}, ${compute.matrix_units.length > 0 ? `matrix units ${compute.matrix_units.join(' ')}` : 'no matrix units'}${compute.f16 ? ', f16' : ''}`;
  return `${adapter.name} (${adapter.api}, ${kind}; ${fast})`;
}
