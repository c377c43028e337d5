// Stale-response guard: each request takes a turn, and only the newest turn's answer is shown,
// so a slow answer to an earlier click never replaces a newer one.
export class Latest {
  private turn = 0;

  /** Starts a request; keep the number to check its answer with `is`. */
  next(): number {
    return ++this.turn;
  }

  /** Whether `turn` is still the newest request. */
  is(turn: number): boolean {
    return turn === this.turn;
  }
}
