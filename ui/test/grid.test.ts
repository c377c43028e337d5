import { describe, expect, it } from 'vitest';
import { ThumbnailGrid } from '../src/components/grid';

describe('thumbnail grid', () => {
  it('keeps the DOM small at 100 000 images and activates with Enter', () => {
    const activated: number[] = [];
    const grid = new ThumbnailGrid({ thumbnailUrl: (path) => `thumb://${path}`, onActivate: (i) => activated.push(i) });
    document.body.replaceChildren(grid.element);
    grid.attach();
    grid.setItems(Array.from({ length: 100_000 }, (_, i) => ({ path: `/photos/${i}.jpg` })));
    expect(grid.element.querySelectorAll('.cell').length).toBeLessThan(200);
    expect(grid.element.querySelector<HTMLElement>('.grid-inner')!.style.height).not.toBe('0px');
    grid.select(99_999);
    expect(grid.selection).toBe(99_999);
    grid.element.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    expect(activated).toEqual([99_999]);
  });
});
