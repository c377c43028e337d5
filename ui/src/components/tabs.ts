// The keys of a `tablist`: Left/Right (wrapping), Home and End move the focus between its tabs
// (a roving tabindex keeps only the selected one in the Tab order). What else a move does is the
// caller's: the app's screen tabs only move the focus, because opening a screen can start work;
// Explore's views open as the focus reaches them.

/** Handles a keydown on a tablist of `tabs`: moves the focus and reports the tab it moved to. */
export function onTablistKey(event: KeyboardEvent, tabs: HTMLElement[], moved: (index: number) => void = () => undefined): void {
  const index = tabs.indexOf(document.activeElement as HTMLElement);
  if (index < 0) return;
  const last = tabs.length - 1;
  const targets: Record<string, number> = {
    ArrowRight: index === last ? 0 : index + 1,
    ArrowLeft: index === 0 ? last : index - 1,
    Home: 0,
    End: last,
  };
  if (!(event.key in targets)) return;
  event.preventDefault();
  tabs[targets[event.key]].focus();
  moved(targets[event.key]);
}
