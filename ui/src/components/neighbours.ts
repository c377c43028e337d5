// A row of retrieved images with their cosine scores, framed green (same label folder as the
// query) or red (another label) when labels exist, as in the paper's Fig. 4/7. Arrow keys move
// between images; Enter (or a click) makes one the new query.
import { baseName, h } from '../dom';
import type { Neighbour } from '../backend';

export interface StripOptions {
  thumbnailUrl: (path: string) => string;
  onPick?: (path: string) => void;
  caption?: string;
}

export function neighbourStrip(query: string | null, neighbours: Neighbour[], options: StripOptions): HTMLElement {
  const tiles = neighbours.map((neighbour, i) => {
    const frame = neighbour.same_label === null ? 'unknown' : neighbour.same_label ? 'same' : 'other';
    return h(
      'button',
      {
        class: `neighbour ${frame}`,
        title: `${neighbour.path}\ncosine ${neighbour.score.toFixed(3)}`,
        dataset: { rank: String(i + 1), path: neighbour.path },
        onclick: () => options.onPick?.(neighbour.path),
      },
      h('img', { src: options.thumbnailUrl(neighbour.path), alt: baseName(neighbour.path), draggable: 'false' }),
      h('span', { class: 'score' }, neighbour.score.toFixed(3)),
    );
  });
  const strip = h(
    'div',
    { class: 'strip', role: 'list', 'aria-label': options.caption ?? 'Nearest neighbours' },
    query
      ? h('div', { class: 'query', title: query }, h('img', { src: options.thumbnailUrl(query), alt: baseName(query) }), h('span', { class: 'score' }, 'query'))
      : null,
    ...tiles,
  );
  strip.addEventListener('keydown', (event) => {
    const index = tiles.indexOf(document.activeElement as HTMLButtonElement);
    if (index < 0) return;
    if (event.key === 'ArrowRight' && index + 1 < tiles.length) tiles[index + 1].focus();
    else if (event.key === 'ArrowLeft' && index > 0) tiles[index - 1].focus();
    else return;
    event.preventDefault();
  });
  return options.caption ? h('section', { class: 'strip-block' }, h('h4', {}, options.caption), strip) : strip;
}
