import { beforeEach, describe, expect, it } from 'vitest';
import { ENGINE_SETTINGS } from '../src/backend/engine-settings';
import { MOCK_SERVER_PIN, MOCK_SERVER_TOKEN } from '../src/backend/mock';
import { SETTINGS_KEY, Store } from '../src/store';
import { deviceClass, viewsBuiltOn } from '../src/screens/train/devices';
import { onTrainScreen, quickBackend, recordStarts, startTraining, stored, text, until } from './helpers';

beforeEach(() => localStorage.clear());

const picker = () => document.querySelector<HTMLSelectElement>('.settings [name="device"]')!;
const field = (id: string) => document.querySelector<HTMLInputElement>(`#${id}`)!;
/** A wss:// server's token file, as `spreadout serve` writes it: the token, then its key's pin. */
const TLS_TOKEN_FILE = `${MOCK_SERVER_TOKEN}\ntls-key ${MOCK_SERVER_PIN}\n`;

/** Picks "Another machine…", fills in the panel and connects. */
function connect(address: string, token: string): void {
  picker().value = 'connect';
  picker().dispatchEvent(new Event('change'));
  field('remote-address').value = address;
  field('remote-token').value = token;
  document.querySelector<HTMLButtonElement>('#remote-connect')!.click();
}

describe('another machine', () => {
  it('is offered by the picker, and a refused token says so without changing the device', async () => {
    const app = await onTrainScreen();
    expect([...picker().options].map((o) => o.textContent)).toContain('Another machine…');
    connect('ws://gpu-box', '0'.repeat(64));
    await until(() => text('#remote-status').includes('refused'));
    expect(text('#remote-status')).toContain('the training server at ws://gpu-box:7800 refused the token');
    expect(document.querySelector<HTMLElement>('#remote-panel')!.hidden).toBe(false);
    expect(app.store.shared.device).toBe('auto');
    expect(picker().value).toBe('auto');
  });

  it('becomes the device once connected, trains there and shows the bytes per step', async () => {
    const backend = quickBackend();
    const requests = recordStarts(backend);
    const app = await onTrainScreen(backend);
    connect('ws://gpu-box', MOCK_SERVER_TOKEN);
    await until(() => picker().value === 'remote');
    expect(picker().selectedOptions[0].textContent).toBe('Mock server GPU (Vulkan, discrete GPU) at ws://gpu-box:7800');
    expect(document.querySelector<HTMLElement>('#remote-panel')!.hidden).toBe(true);
    expect(text('.device-note')).toContain('training runs on ws://gpu-box:7800');
    // The choice is remembered; the token is not kept in the web view's storage.
    const device = { remote: { address: 'ws://gpu-box:7800', token_file: '/mock/data/servers/ws-gpu-box-7800.token' } };
    expect(stored().device).toEqual(device);
    expect(localStorage.getItem(SETTINGS_KEY)).not.toContain(MOCK_SERVER_TOKEN);
    // A served GPU gets the GPU's defaults.
    expect(app.store.shared.config.width).toBe(64);

    await startTraining(app, { epochs: 1, batch_size: 10, image_size: 32 });
    await until(() => app.store.shared.run?.status === 'finished');
    expect(requests[0].device).toEqual(device);
    // The served GPU builds the views from the images kept there: a step sends their draws.
    expect(viewsBuiltOn('device', device)).toBe('server, from the images kept there');
    expect(text('#train-numbers')).toContain('network 5.9 KiB sent, 0.5 KiB received per step');
  });

  it('is offered again after a restart, and the kept token connects without being typed again', async () => {
    let app = await onTrainScreen();
    connect('ws://gpu-box:9000', MOCK_SERVER_TOKEN);
    await until(() => picker().value === 'remote');
    app.element.remove();

    const backend = quickBackend();
    app = await onTrainScreen(backend);
    expect(picker().value).toBe('remote');
    expect(picker().selectedOptions[0].textContent).toBe('Served by ws://gpu-box:9000');
    // Asking again fills in the address; an empty token asks for one, as none was kept by this backend.
    picker().value = 'connect';
    picker().dispatchEvent(new Event('change'));
    expect(field('remote-address').value).toBe('ws://gpu-box:9000');
    document.querySelector<HTMLButtonElement>('#remote-connect')!.click();
    await until(() => text('#remote-status').includes('needs the server\'s token'));
    expect(app.store.shared.device).toEqual(stored().device);
  });

  it('takes an Iroh address, and says its connection is encrypted', async () => {
    const app = await onTrainScreen();
    const id = 'ab'.repeat(32);
    connect(`iroh://${id}@gpu-box`, MOCK_SERVER_TOKEN);
    await until(() => picker().value === 'remote');
    expect(app.store.shared.device).toMatchObject({ remote: { address: `iroh://${id}@gpu-box:7800` } });
    expect(text('.device-note')).toContain('encrypted, to the holder of the server\'s key');
    connect('iroh://not-an-id@gpu-box', MOCK_SERVER_TOKEN);
    await until(() => text('#remote-status').includes('is not a server\'s address'));
  });

  it('says that the images go to the server and that its token holders share its GPU', async () => {
    await onTrainScreen();
    const said = text('#remote-explained');
    expect(said).toContain('The training images go to that computer');
    expect(said).toContain('keeps them there for the run');
    expect(said).toContain('everyone holding the server\'s token can use its GPU fully');
    expect(said).not.toContain('stay on this computer');
    expect(said).toMatch(/wss:\/\/ address is encrypted and checks the server's key/);
    expect(said).toMatch(/iroh:\/\/ address .* is encrypted and checks the server's id/);
    expect(said).toMatch(/ws:\/\/ address is unencrypted, for this computer or an SSH tunnel only/);
    for (const kind of ['wss://gpu-box:7800', 'ws://localhost:7800 (through an SSH tunnel)', 'iroh://ID@gpu-box:7800']) {
      expect(field('remote-address').placeholder).toContain(kind);
    }
  });

  it('sends the pasted token file whole, both its lines, and keeps it only once it connected', async () => {
    const backend = quickBackend();
    const sent: (string | null)[] = [];
    const connectRemote = backend.connectRemote;
    backend.connectRemote = (address, token) => (sent.push(token), connectRemote(address, token));
    const app = await onTrainScreen(backend);
    expect(field('remote-token').tagName).toBe('TEXTAREA');
    connect('wss://gpu-box', `  ${TLS_TOKEN_FILE}  `);
    await until(() => picker().value === 'remote');
    expect(sent).toEqual([TLS_TOKEN_FILE.trim()]);
    expect(app.store.shared.device).toMatchObject({ remote: { address: 'wss://gpu-box:7800' } });
    expect(field('remote-token').value).toBe('');
    expect(localStorage.getItem(SETTINGS_KEY)).not.toContain(MOCK_SERVER_TOKEN);

    // The token alone: a wss:// server's key is not pinned, so nothing is sent to it.
    connect('wss://gpu-box', MOCK_SERVER_TOKEN);
    await until(() => text('#remote-status').includes('does not pin the server\'s key'));
    // Another token that the server refuses: the one kept still connects.
    connect('wss://gpu-box', `${'0'.repeat(64)}\ntls-key ${MOCK_SERVER_PIN}`);
    await until(() => text('#remote-status').includes('refused the token'));
    connect('wss://gpu-box', '');
    await until(() => picker().value === 'remote' && document.querySelector<HTMLElement>('#remote-panel')!.hidden);
    expect(sent.at(-1)).toBeNull();
  });

  it('connects with Ctrl+Enter in the token, where Enter starts its second line', async () => {
    const backend = quickBackend();
    const sent: (string | null)[] = [];
    const connectRemote = backend.connectRemote;
    backend.connectRemote = (address, token) => (sent.push(token), connectRemote(address, token));
    await onTrainScreen(backend);
    picker().value = 'connect';
    picker().dispatchEvent(new Event('change'));
    field('remote-address').value = 'wss://gpu-box';
    field('remote-token').value = TLS_TOKEN_FILE;
    const enter = (ctrlKey: boolean) => new KeyboardEvent('keydown', { key: 'Enter', ctrlKey, cancelable: true });
    const plain = enter(false);
    field('remote-token').dispatchEvent(plain);
    expect(plain.defaultPrevented).toBe(false);
    expect(sent).toEqual([]);
    field('remote-token').dispatchEvent(enter(true));
    await until(() => picker().value === 'remote');
    expect(sent).toEqual([TLS_TOKEN_FILE.trim()]);
  });

  it('remembers a wss:// and an iroh:// server across a restart, as a ws:// one', async () => {
    const id = 'ab'.repeat(32);
    for (const [address, token, kept] of [
      ['wss://gpu-box', TLS_TOKEN_FILE, 'wss://gpu-box:7800'],
      [`iroh://${id}@gpu-box:9000`, MOCK_SERVER_TOKEN, `iroh://${id}@gpu-box:9000`],
      ['ws://localhost', MOCK_SERVER_TOKEN, 'ws://localhost:7800'],
    ]) {
      let app = await onTrainScreen();
      connect(address, token);
      await until(() => picker().value === 'remote');
      app.element.remove();

      app = await onTrainScreen();
      expect(app.store.shared.device).toMatchObject({ remote: { address: kept } });
      expect(picker().value).toBe('remote');
      expect(picker().selectedOptions[0].textContent).toBe(`Served by ${kept}`);
      app.element.remove();
    }
    // What the store reads back, and what it does not: another scheme is forgotten.
    for (const address of ['wss://a:1', `iroh://${id}@a:1`, 'ws://a:1']) {
      localStorage.setItem(SETTINGS_KEY, JSON.stringify({ config: {}, device: { remote: { address, token_file: null } } }));
      expect(new Store(ENGINE_SETTINGS).shared.device).toEqual({ remote: { address, token_file: null } });
    }
    localStorage.setItem(SETTINGS_KEY, JSON.stringify({ config: {}, device: { remote: { address: 'http://a:1', token_file: null } } }));
    expect(new Store(ENGINE_SETTINGS).shared.device).toBe('auto');
  });

  it('counts as the GPU or the CPU its server said', () => {
    const target = { address: 'ws://a:7800', token_file: null };
    expect(deviceClass({ remote: target }, null)).toBe('gpu');
    expect(deviceClass({ remote: target }, null, { target, served: 'CPU', gpu: false })).toBe('cpu');
    expect(deviceClass({ remote: target }, null, { target: { ...target, address: 'ws://b:7800' }, served: 'CPU', gpu: false })).toBe('gpu');
  });
});
