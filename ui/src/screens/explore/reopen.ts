// Explore's calls on an embedding, made to survive the backend dropping it. The backend keeps the
// embeddings opened last (8, `KEPT_COLLECTIONS`) and answers `not_found` for an older one; comparing
// snapshots opens one per snapshot, so the embedding on screen can be dropped under the person.
// Such a call embeds it again (with the screen's progress bar) and is made once more, instead of
// asking the person to open the run again.
import { asCommandError, type Backend } from '../../backend';

/** The calls Explore makes whose first argument is an embedding's key. */
const KEYED = ['neighbors', 'queryFile', 'distributions', 'embeddingMap', 'duplicateThreshold', 'readiness', 'findDuplicates', 'saveDuplicates', 'clusterCollection', 'saveClusters'] as const;

/**
 * `backend`, with each keyed call repeated once after `reopen(key)` when the embedding was no
 * longer loaded. `reopen` resolves to false for a key it cannot open again; the call's error then
 * stands.
 */
export function reopening(backend: Backend, reopen: (key: string) => Promise<boolean>): Backend {
  const wrapped: Backend = { ...backend };
  for (const name of KEYED) {
    const call = backend[name] as (key: string, ...rest: unknown[]) => Promise<unknown>;
    (wrapped as unknown as Record<string, unknown>)[name] = async (key: string, ...rest: unknown[]) => {
      try {
        return await call(key, ...rest);
      } catch (error) {
        if (asCommandError(error).code !== 'not_found' || !(await reopen(key))) throw error;
        return call(key, ...rest);
      }
    };
  }
  return wrapped;
}
