// The Train screen's device picker: its options (automatic, each adapter, the CPU, a device
// served by another machine and the way to one), their values, the note under it, and whether
// the chosen device trains as a GPU, which decides the defaults the screen offers. Apart from the
// screen so that it stays within its 600 lines.
import type { Adapter, AugmentOn, DeviceChoice, Devices, RemoteDevice, RemoteTarget } from '../../backend';
import { h, replace } from '../../dom';
import type { DeviceClass } from '../../store';
import { RemotePanel } from './remote';
import type { Context, Notices } from '../../screen';

/** The picker's value for the served device, and for "Another machine…", which asks for one. */
export const REMOTE_VALUE = 'remote';
export const CONNECT_VALUE = 'connect';

/** The choice a device picker value stands for; `served` is the picker's served device. */
export function parseDevice(value: string, served: RemoteTarget | null): DeviceChoice {
  if (value === 'auto' || value === 'cpu' || value === 'gpu') return value;
  if (value === REMOTE_VALUE && served) return { remote: served };
  return { adapter: Number(value) };
}

/** The device picker's value for a choice. */
export function deviceValue(device: DeviceChoice): string {
  if (typeof device === 'string') return device;
  return 'remote' in device ? REMOTE_VALUE : String(device.adapter);
}

/** Where a run on `device` builds its views, as the Train screen words it (`viewsOn` from its start). */
export function viewsBuiltOn(viewsOn: AugmentOn, device: DeviceChoice): string {
  if (viewsOn !== 'device') return 'CPU';
  return typeof device === 'object' && 'remote' in device ? 'server, from the images kept there' : 'GPU';
}

/** Adapter kinds that train as a GPU does; a software rasteriser is slower than the CPU backend. */
const GPU_KINDS: readonly Adapter['kind'][] = ['discrete', 'integrated', 'virtual'];

/**
 * Whether `device` trains on a GPU. Automatic is a GPU unless the backend's notice says it falls
 * back to the CPU; without the adapter list (still loading, or failed) it counts as the CPU, whose
 * defaults are the safe ones. A served device is what its server said when the app connected
 * (`served`); one remembered from an earlier launch, not yet asked, counts as a GPU, since a GPU
 * is what people serve.
 */
export function deviceClass(device: DeviceChoice, devices: Devices | null, served: RemoteDevice | null = null): DeviceClass {
  if (device === 'cpu' || device === 'gpu') return device;
  if (device === 'auto') return devices && devices.auto_notice === null ? 'gpu' : 'cpu';
  if ('remote' in device) return served?.target.address !== device.remote.address || served.gpu ? 'gpu' : 'cpu';
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

export class DevicePicker {
  readonly select = h('select', { id: 'device', name: 'device' });
  /** Under the picker: what training on the chosen device means. */
  readonly note = h('small', { class: 'device-note' });
  readonly panel: RemotePanel;
  private devices: Devices | null = null;
  /** The served device the person connected to in this session ("Another machine…"). */
  private served: RemoteDevice | null = null;

  /** `changed` is told after every choice of device, once the store holds it. */
  constructor(
    private readonly context: Context,
    private readonly notices: Notices,
    private readonly changed: () => void,
  ) {
    this.panel = new RemotePanel(context.backend, (device) => this.connected(device), () => this.select.focus());
    this.select.addEventListener('change', () => {
      const { store } = this.context;
      if (this.select.value === CONNECT_VALUE) {
        // The picker keeps showing the device in use until another machine has answered.
        this.select.value = deviceValue(store.shared.device);
        this.panel.show(this.servedTarget()?.address ?? null);
        return;
      }
      store.chooseDevice(parseDevice(this.select.value, this.servedTarget()));
      this.changed();
    });
  }

  /** Lists the adapters and shows the remembered device, unless it is gone. */
  async load(): Promise<void> {
    const { store } = this.context;
    replace(this.select, h('option', { value: 'auto' }, 'Looking for GPUs…'));
    try {
      this.devices = await this.context.backend.listDevices();
    } catch (error) {
      this.notices.error('Could not list graphics adapters', error);
    }
    this.renderOptions();
    // The remembered device, unless it is gone (an unplugged GPU): then automatic, for this
    // session only, so that the GPU is chosen again once it is back.
    if (this.select.value !== deviceValue(store.shared.device)) store.update({ device: 'auto' });
    this.changed();
  }

  deviceClass(): DeviceClass {
    return deviceClass(this.context.store.shared.device, this.devices, this.served);
  }

  renderNote(): void {
    const device = this.context.store.shared.device;
    replace(
      this.note,
      device === 'cpu'
        ? 'every computer has one, but training is much slower than on a GPU'
        : device === 'auto' && this.devices?.auto_notice
          ? this.devices.auto_notice
          : typeof device === 'object' && 'remote' in device
            ? `training runs on ${device.remote.address}; the images are read here; where the server builds the views (a GPU, or training views built on the device) they cross the network once and stay there for the run, each step sending its views' draws, otherwise each step's batch crosses it (${transportNote(device.remote.address)})`
            : `training runs on the GPU through wgpu (${this.devices?.graphics_apis ?? 'Vulkan, Metal or DX12'})`,
    );
  }

  /** The served device the picker offers: the one connected to now, else the one remembered. */
  private servedTarget(): RemoteTarget | null {
    const device = this.context.store.shared.device;
    return this.served?.target ?? (typeof device === 'object' && 'remote' in device ? device.remote : null);
  }

  /** Another machine answered: its device becomes the one to train on. */
  private connected(device: RemoteDevice): void {
    this.served = device;
    this.context.store.chooseDevice({ remote: device.target });
    this.renderOptions();
    this.changed();
  }

  private renderOptions(): void {
    const devices = this.devices;
    const served = this.servedTarget();
    const servedLabel = this.served && served?.address === this.served.target.address
      ? `${this.served.served} at ${served.address}`
      : `Served by ${served?.address}`;
    replace(
      this.select,
      h('option', { value: 'auto' }, `Automatic: ${devices?.auto_name ?? 'best available'}`),
      ...(devices?.adapters ?? []).map((adapter) =>
        h('option', { value: String(adapter.index) }, adapterLabel(adapter)),
      ),
      h('option', { value: 'cpu' }, 'CPU (Burn flex backend)'),
      served ? h('option', { value: REMOTE_VALUE }, servedLabel) : null,
      h('option', { value: CONNECT_VALUE }, 'Another machine…'),
    );
    const wanted = deviceValue(this.context.store.shared.device);
    if ([...this.select.options].some((option) => option.value === wanted)) this.select.value = wanted;
  }
}

/** What the connection to a server at `address` protects, by its kind. */
function transportNote(address: string): string {
  if (address.startsWith('wss://')) return "encrypted, to the server whose key the token file pins";
  if (address.startsWith('iroh://')) return "encrypted, to the holder of the server's key";
  return 'unencrypted: loopback or an SSH tunnel';
}
