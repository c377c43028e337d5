// "Another machine…": the device picker's way to a GPU that `spreadout serve` serves elsewhere.
// The person gives the address and the token `serve` printed; the backend keeps the token in a
// file readable by this user only (never in the web view's storage) and asks the server what it
// serves before the picker offers it. Apart from the Train screen so that it stays within its
// 600 lines.
import type { Backend, RemoteDevice } from '../backend';
import { asCommandError } from '../backend';
import { h, replace } from '../dom';

export class RemotePanel {
  readonly element: HTMLElement;
  private readonly address = h('input', {
    id: 'remote-address',
    name: 'remote-address',
    type: 'text',
    placeholder: 'ws://gpu-box:7800 or iroh://ID@gpu-box:7800',
    autocomplete: 'off',
    spellcheck: false,
  });
  private readonly token = h('input', {
    id: 'remote-token',
    name: 'remote-token',
    type: 'password',
    autocomplete: 'off',
    placeholder: 'kept from before, if left empty',
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
    for (const input of [this.address, this.token]) {
      input.addEventListener('keydown', (event: KeyboardEvent) => {
        if (event.key === 'Enter') {
          event.preventDefault();
          void this.submit();
        }
      });
    }
    this.element = h(
      'fieldset',
      { id: 'remote-panel', class: 'remote-panel', hidden: true },
      h('legend', {}, 'Another machine'),
      h(
        'small',
        {},
        'Train on a GPU that another computer serves: run ',
        h('code', {}, 'spreadout serve'),
        ' there and copy the address and token it prints. The images stay on this computer; each step sends its batch over the network. A ws:// address is unencrypted: use a network you trust or an SSH tunnel (',
        h('code', {}, 'ssh -L 7800:localhost:7800 gpu-box'),
        ', then ws://localhost:7800). An iroh:// address (',
        h('code', {}, 'spreadout serve --iroh'),
        ') is encrypted, and only that server can answer it.',
      ),
      h('label', { class: 'field' }, h('span', {}, 'Address'), this.address),
      h('label', { class: 'field' }, h('span', {}, 'Token'), this.token),
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
      replace(this.status, 'Give the address `spreadout serve` printed, e.g. ws://gpu-box:7800.');
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
