// A row of retrieved images with their cosine scores, framed green (same label folder as the
// query) or red (another label) when labels exist, as in the paper's Fig. 4/7. The frame's
// meaning is also written under each image (✓ same / ✗ other) and spoken in its name, so it does
// not rest on colour alone. Arrow keys move between images; Enter (or a click) makes one the new
// query.
import { baseName, h } from '../dom';
import type { Neighbor } from '../backend';

export interface StripOptions {
  thumbnailUrl: (path: string) => string;
  onPick?: (path: string) => void;
  caption?: string;
}

const MARKS = {
  same: { text: '✓ same', spoken: 'same label as the query' },
  other: { text: '✗ other', spoken: 'another label than the query' },
};

export function neighborStrip(query: string | null, neighbors: Neighbor[], options: StripOptions): HTMLElement {
  const tiles = neighbors.map((neighbor, i) => {
    const frame = neighbor.same_label === null ? null : neighbor.same_label ? 'same' : 'other';
    const mark = frame ? MARKS[frame] : null;
    const score = neighbor.score.toFixed(3);
    return h(
      'button',
      {
        class: `neighbor ${frame ?? 'unknown'}`,
        title: `${neighbor.path}\ncosine ${score}`,
        'aria-label': `${i + 1}: ${baseName(neighbor.path)}, cosine ${score}${mark ? `, ${mark.spoken}` : ''}`,
        dataset: { rank: String(i + 1), path: neighbor.path },
        onclick: () => options.onPick?.(neighbor.path),
      },
      h('img', { src: options.thumbnailUrl(neighbor.path), alt: '', draggable: 'false' }),
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
