import { afterEach, describe, expect, it, vi } from 'vitest';
import { ThumbnailGrid } from '../src/components/grid';

afterEach(() => vi.useRealTimers());

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

  it('asks again for a thumbnail the server was too busy for, and never calls the file unreadable', () => {
    vi.useFakeTimers();
    const asked: string[] = [];
    const grid = new ThumbnailGrid({ thumbnailUrl: (path) => (asked.push(path), `thumb://${path}`) });
    document.body.replaceChildren(grid.element);
    grid.setItems([{ path: '/photos/a.jpg' }]);
    const image = grid.element.querySelector('img')!;
    const drawn = asked.length;
    image.dispatchEvent(new Event('error'));
    expect(grid.element.textContent).not.toContain('cannot be read');
    expect(grid.element.querySelector('img')).toBe(image);
    expect(image.getAttribute('src')).toMatch(/^data:image\/svg\+xml,/);
    vi.advanceTimersByTime(250);
    expect(image.getAttribute('src')).toBe('thumb:///photos/a.jpg');
    // Each wait doubles: the second try comes 500 ms after the second failure.
    image.dispatchEvent(new Event('error'));
    vi.advanceTimersByTime(499);
    expect(asked.length).toBe(drawn + 1);
    vi.advanceTimersByTime(1);
    expect(asked.length).toBe(drawn + 2);
    // A cell scrolled out of view asks no more.
    image.dispatchEvent(new Event('error'));
    document.body.replaceChildren();
    vi.advanceTimersByTime(10_000);
    expect(asked.length).toBe(drawn + 2);
  });
});
