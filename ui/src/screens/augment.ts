// Augmentations screen: switch each of the paper's four operations and see two training views of
// several images, drawn by the same code training uses and built where training builds them (on
// the GPU by the training kernels, or on the CPU).
import { baseName, h, replace } from '../dom';
import type { AugmentOps } from '../backend';
import { Latest } from '../latest';
import { Notices, type Context, type Screen } from '../screen';

const OPERATIONS: { key: keyof AugmentOps; name: string; explain: string }[] = [
  { key: 'crop', name: 'Random resized crop', explain: 'a random 20–100 % area, aspect 3/4–4/3, resized back' },
  { key: 'color_jitter', name: 'Colour jitter', explain: 'brightness, contrast, saturation ±40 %, hue ±0.4, in random order' },
  { key: 'grayscale', name: 'Random greyscale', explain: 'one view in five loses its colour' },
  { key: 'flip', name: 'Horizontal flip', explain: 'mirrored half of the time' },
];

/** Images previewed at once. */
const SAMPLES = 6;

export class AugmentScreen implements Screen {
  readonly id = 'augment';
  readonly title = 'Augmentations';
  readonly element: HTMLElement;
  private readonly previews = h('div', { class: 'previews' });
  /** Where the views shown were built. */
  private readonly builtOn = h('p', { class: 'hint', id: 'views-built-on' });
  private readonly notices = new Notices();
  private seed = 0;
  /** Fast toggling asks for several draws: only the newest is shown. */
  private readonly latest = new Latest();

  constructor(private readonly context: Context) {
    const checkboxes = OPERATIONS.map(({ key }) =>
      h('input', {
        type: 'checkbox',
        name: key,
        onchange: (event: Event) => {
          const { augment } = context.store.shared.config;
          context.store.choose({ augment: { ...augment, [key]: (event.target as HTMLInputElement).checked } });
          void this.refresh();
        },
      }),
    );
    // The toggles show the store's augmentations, which a resumed run or a run's end can change.
    const sync = () => OPERATIONS.forEach(({ key }, i) => (checkboxes[i].checked = context.store.shared.config.augment[key]));
    context.store.subscribe(sync);
    sync();
    const toggles = OPERATIONS.map(({ name, explain }, i) =>
      h('label', { class: 'toggle' }, checkboxes[i], h('span', {}, h('strong', {}, name), h('small', {}, explain))),
    );
    this.element = h(
      'section',
      { class: 'screen augment' },
      h('div', { class: 'toggles' }, ...toggles, h('button', { class: 'secondary', onclick: () => ((this.seed += 1000), void this.refresh()) }, 'Draw new views')),
      h('p', { class: 'hint' }, 'Each row: the image as training loads it, then two random views of it. Training pulls the two views together and pushes every other image away; what the views have in common is what the embedding learns to keep.'),
      this.notices.element,
      this.builtOn,
      this.previews,
    );
  }

  shown(): void {
    void this.refresh();
  }

  private samples(): string[] {
    const folder = this.context.store.shared.folder;
    if (!folder) return [];
    const step = Math.max(1, Math.floor(folder.files.length / SAMPLES));
    return folder.files.filter((_, i) => i % step === 0).slice(0, SAMPLES);
  }

  private async refresh(): Promise<void> {
    const turn = this.latest.next();
    const paths = this.samples();
    if (!paths.length) {
      replace(this.previews, h('p', { class: 'empty' }, 'Open a folder on the Data screen first.'));
      return;
    }
    const { config, device } = this.context.store.shared;
    try {
      const { pairs, built_on } = await this.context.backend.augmentPreview(
        paths,
        config.augment,
        config.image_size,
        this.seed,
        device,
        config.augment_on ?? 'auto',
      );
      if (!this.latest.is(turn)) return;
      this.builtOn.textContent = `Views built on ${built_on}, as training with these settings builds them.`;
      replace(
        this.previews,
        ...pairs.map((pair) =>
          h(
            'figure',
            { class: 'pair' },
            h('img', { src: pair.original, alt: 'original', class: 'pixelated' }),
            h('span', { class: 'arrow' }, '→'),
            ...pair.views.map((view, i) => h('img', { src: view, alt: `view ${i + 1}`, class: 'pixelated' })),
            h('figcaption', {}, baseName(pair.path)),
          ),
        ),
      );
    } catch (error) {
      if (this.latest.is(turn)) this.notices.error('Could not draw the views', error);
    }
  }
}
