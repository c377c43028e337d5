// How the app words a failed run: the engine's message says only what happened, and the remedy
// is each shell's to word in its own terms (here the app's settings, picker and screens, never a
// command-line flag). The Train screen shows the result.
import type { Failure } from '../backend';

/**
 * What to do about each kind of failure, where the app offers a way. A diverged run is not to be
 * resumed with a lower rate: a resume continues with the settings the run started with.
 */
const REMEDIES: Partial<Record<Failure, string>> = {
  diverged: 'Lower the learning rate (or raise the temperature τ) in the training settings and start a new run; resuming this one would continue with its own settings.',
  device: 'Pick another device, or the CPU, in the Device picker.',
  data: 'Check that the folder can be read, and that its disk has space for the image cache.',
  files: 'Check that the run folder\'s disk has space and that the folder can be written to.',
  crashed: 'Resume the run from the Export screen: its last checkpoint is kept.',
};

/**
 * The engine's `message` with the app's remedy for failures of kind `code`. A setting is named by
 * the label `form` shows it with, where the person would change it; one without a field there
 * keeps its configuration key and gets no remedy.
 */
export function failureMessage(code: Failure, message: string, form: HTMLElement): string {
  let remedy = REMEDIES[code];
  if (code === 'config') {
    const setting = /^invalid setting (\w+):/.exec(message)?.[1];
    const label = setting && form.querySelector(`[name="${setting}"]`)?.closest('.field')?.querySelector('span')?.textContent;
    if (label) remedy = `Change “${label}” in the training settings.`;
  }
  return remedy ? `${message.replace(/\.$/, '')}. ${remedy}` : message;
}
