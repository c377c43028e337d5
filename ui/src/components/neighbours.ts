// A row of retrieved images with their cosine scores, framed green (same label folder as the
// query) or red (another label) when labels exist, as in the paper's Fig. 4/7. The frame's
// meaning is also written under each image (✓ same / ✗ other) and spoken in its name, so it does
// not rest on colour alone. Arrow keys move between images; Enter (or a click) makes one the new
// query.
import { baseName, h } from '../dom';
import type { Neighbour } from '../backend';

export interface StripOptions {
  thumbnailUrl: (path: string) => string;
  onPick?: (path: string) => void;
  caption?: string;
}

const MARKS = {
  same: { text: '✓ same', spoken: 'same label as the query' },
  other: { text: '✗ other', spoken: 'another label than the query' },
};

export function neighbourStrip(query: string | null, neighbours: Neighbour[], options: StripOptions): HTMLElement {
  const tiles = neighbours.map((neighbour, i) => {
    const frame = neighbour.same_label === null ? null : neighbour.same_label ? 'same' : 'other';
    const mark = frame ? MARKS[frame] : null;
    const score = neighbour.score.toFixed(3);
    return h(
      'button',
      {
        class: `neighbour ${frame ?? 'unknown'}`,
        title: `${neighbour.path}\ncosine ${score}`,
        'aria-label': `${i + 1}: ${baseName(neighbour.path)}, cosine ${score}${mark ? `, ${mark.spoken}` : ''}`,
        dataset: { rank: String(i + 1), path: neighbour.path },
        onclick: () => options.onPick?.(neighbour.path),
      },
      h('img', { src: options.thumbnailUrl(neighbour.path), alt: '', draggable: 'false' }),
      h('span', { class: 'score' }, score),
      mark ? h('span', { class: 'label-mark' }, mark.text) : null,
    );
  });
  const strip = h(
    'div',
    { class: 'strip', role: 'group', 'aria-label': options.caption ?? 'Nearest neighbours' },
    query
      ? h('div', { class: 'query', title: query }, h('img', { src: options.thumbnailUrl(query), alt: `query: ${baseName(query)}` }), h('span', { class: 'score' }, 'query'))
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
