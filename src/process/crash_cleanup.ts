/**
 * What must be undone even when the program ends on a crash (a bug that
 * escaped every handler: see `main.ts`), which skips the stops that undo it
 * otherwise: the SSH masters that would live on for `ControlPersist`, the
 * daemon's runtime folder.
 *
 * @module
 */

const cleanups = new Set<() => Promise<void>>();
const folders = new Set<string>();

/**
 * Have `cleanup` run should the program crash, until the function returned
 * is called (once it was undone the usual way).
 */
export function onCrash(cleanup: () => Promise<void>): () => void {
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

/**
 * Have `folder` removed should the program crash (after the cleanups, which
 * may need what is in it).
 *
 * @returns the function that removes it now, once it is no longer needed (the usual way)
 */
export function removeAfterCrash(folder: string): () => Promise<void> {
  folders.add(folder);
  return async () => {
    folders.delete(folder);
    await Deno.remove(folder, { recursive: true }).catch(() => {});
  };
}

/**
 * Run the cleanups given to {@linkcode onCrash}, all at once, for at most
 * `timeoutMs` (a crash never hangs on one), then remove the folders given to
 * {@linkcode removeAfterCrash}. Never throws.
 */
export async function cleanUpAfterCrash(timeoutMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs));
  const all = Promise.allSettled([...cleanups].map((cleanup) => cleanup()));
  await Promise.race([all, deadline]);
  clearTimeout(timer);
  for (const folder of folders) await Deno.remove(folder, { recursive: true }).catch(() => {});
}
