// "Another machine…": the device picker's way to a GPU that `spreadout serve` serves elsewhere.
// The person gives the address `serve` printed and pastes the token file it wrote (the token, and
// for a wss:// server the pin of its key); the backend keeps that in a file of the app's data
// folder readable by this user only (never in the web view's storage), once the server has
// answered, and asks it what it serves before the picker offers it. Apart from the Train screen
// so that it stays within its 600 lines.
import type { Backend, RemoteDevice } from '../../backend';
import { asCommandError } from '../../backend';
import { h, replace } from '../../dom';

export class RemotePanel {
  readonly element: HTMLElement;
  private readonly address = h('input', {
    id: 'remote-address',
    name: 'remote-address',
    type: 'text',
    placeholder: 'wss://gpu-box:7800, ws://localhost:7800 (through an SSH tunnel) or iroh://ID@gpu-box:7800',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  // A text area: a wss:// server's token file holds two lines, its token and its key's pin.
  private readonly token = h('textarea', {
    id: 'remote-token',
    name: 'remote-token',
    rows: 2,
    // As `.field input` in styles.css, in a fixed-width face: a token is 64 hex digits.
    style: 'width: 100%; min-width: 0; padding: 4px 6px; font-family: monospace; resize: vertical',
    autocomplete: 'off',
    autocapitalize: 'off',
    spellcheck: 'false',
    placeholder: 'Paste the content of the token file `spreadout serve` wrote (left empty: the token kept from before)',
  });
  private readonly connect = h('button', { type: 'button', id: 'remote-connect' }, 'Connect');
  private readonly status = h('p', { id: 'remote-status', class: 'status', role: 'status' });

  /**
   * `connected` gets the served device once the server has answered; `closed` is told when the
   * person gives up, so the picker can go back to the device it showed.
   */
  constructor(
    private readonly backend: Backend,
    private readonly connected: (device: RemoteDevice) => void,
    closed: () => void,
  ) {
    this.connect.addEventListener('click', () => void this.submit());
    // Enter connects from the address; in the token's text area it starts the pin's line, and
    // Ctrl+Enter (⌘+Enter) connects.
    const connectOnEnter = (input: HTMLElement, withModifier: boolean) =>
      input.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' && (!withModifier || event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          void this.submit();
        }
      });
    connectOnEnter(this.address, false);
    connectOnEnter(this.token, true);
    this.element = h(
      'fieldset',
      { id: 'remote-panel', class: 'remote-panel', hidden: true },
      h('legend', {}, 'Another machine'),
      h(
        'small',
        { id: 'remote-explained' },
        'Train on a GPU that another computer serves: run ',
        h('code', {}, 'spreadout serve'),
        ' there, then give the address it prints and paste the token file it writes. ',
        h(
          'strong',
          {},
          'The training images go to that computer: a served GPU receives them and keeps them there for the run (each step then sends only its views\' draws), and everyone holding the server\'s token can use its GPU fully.',
        ),
        ' A wss:// address is encrypted and checks the server\'s key; an iroh:// address (',
        h('code', {}, 'spreadout serve --iroh'),
        ') is encrypted and checks the server\'s id; a ws:// address is unencrypted, for this computer or an SSH tunnel only (',
        h('code', {}, 'ssh -L 7800:localhost:7800 gpu-box'),
        ', then ws://localhost:7800).',
      ),
      h('label', { class: 'field' }, h('span', {}, 'Address'), this.address),
      h('label', { class: 'field' }, h('span', {}, 'Token file'), this.token),
      h(
        'div',
        { class: 'field-buttons' },
        this.connect,
        h('button', { type: 'button', class: 'secondary', id: 'remote-cancel', onclick: () => { this.hide(); closed(); } }, 'Cancel'),
      ),
      this.status,
    );
  }

  /** Opens the panel, with `address` filled in (the server chosen before, if any). */
  show(address: string | null): void {
    if (address !== null) this.address.value = address;
    this.token.value = '';
    replace(this.status);
    this.element.hidden = false;
    this.address.focus();
  }

  hide(): void {
    this.element.hidden = true;
  }

  private async submit(): Promise<void> {
    const address = this.address.value.trim();
    if (!address) {
      replace(this.status, 'Give the address `spreadout serve` printed, e.g. wss://gpu-box:7800.');
      return;
    }
    this.connect.disabled = true;
    replace(this.status, `Connecting to ${address}…`);
    try {
      const device = await this.backend.connectRemote(address, this.token.value.trim() || null);
      this.token.value = '';
      replace(this.status);
      this.hide();
      this.connected(device);
    } catch (error) {
      replace(this.status, h('span', { role: 'alert' }, asCommandError(error).message));
    } finally {
      this.connect.disabled = false;
    }
  }
}
