// A failed run as the app presents it: the engine's message says only what happened, and the
// remedy is each shell's to word in its own terms (here the app's settings, picker and screens,
// never a command-line flag); a run whose training folder changed also gets the offer to continue
// on the folder as it is now. The Train screen shows both.
import type { ErrorKind } from '../../backend';
import { h } from '../../dom';

/**
 * What to do about each kind of failure, where the app offers a way. A lower rate cannot help a
 * resume of the diverged run: a resume continues with the settings the run started with.
 */
const REMEDIES: Partial<Record<ErrorKind, string>> = {
  diverged: 'Lower the learning rate (or raise the temperature τ) in the training settings and start a new run; resuming this one would continue with its own settings.',
  device: 'Pick another device, or the CPU, in the Device picker.',
  no_gpu: 'Pick another device, or the CPU, in the Device picker.',
  precision: 'Choose f32 for “Precision” in the training settings, or pick a GPU with 16-bit matrix units.',
  data: 'Check that the folder can be read, and that its disk has space for the image cache.',
  cache: 'Check that the image cache\'s disk has space and that its folder can be written to.',
  files: 'Check that the run folder\'s disk has space and that the folder can be written to.',
  crashed: 'Resume the run from the Export screen: its last checkpoint is kept.',
  server_lost: 'Check that spreadout serve still runs on that machine and the network between you, then resume the run from the Export screen: its last checkpoint is kept.',
};

/**
 * The engine's `message` with the app's remedy for failures of kind `code`. A setting is named by
 * the label `form` shows it with, where the person would change it; one without a field there
 * keeps its configuration key and gets no remedy.
 */
export function failureMessage(code: ErrorKind, message: string, form: HTMLElement): string {
  let remedy = REMEDIES[code];
  if (code === 'config') {
    const setting = /^invalid setting (\w+):/.exec(message)?.[1];
    const label = setting && form.querySelector(`[name="${setting}"]`)?.closest('.field')?.querySelector('span')?.textContent;
    if (label) remedy = `Change “${label}” in the training settings.`;
  }
  return remedy ? `${message.replace(/\.$/, '')}. ${remedy}` : message;
}

/**
 * Offers, among `notices`, to continue a run that failed because its training folder changed;
 * `accept` resumes it on the folder as it is now. The offer goes once used, or with the notices
 * when another run starts.
 */
export function offerChangedFolder(notices: HTMLElement, accept: () => void): void {
  const offer: HTMLElement = h(
    'div',
    { class: 'notice info', id: 'changed-folder' },
    h('span', {}, 'Accepting continues the run on the folder as it is now: images still there keep what the run learned about them, and new ones start fresh.'),
    h('button', { class: 'secondary', id: 'accept-changed-folder', onclick: () => { offer.remove(); accept(); } }, 'Accept the changed folder and continue'),
  );
  notices.append(offer);
}
