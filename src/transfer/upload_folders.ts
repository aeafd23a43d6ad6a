/**
 * Book-keeping of the remote upload folders that concurrent batches of one
 * transport share: how many batches use each folder, and the one exclusive
 * step (sweeping it before its first use, removing it after its last) that the
 * others wait for. All of it happens on this side, so no remote locking is
 * needed.
 *
 * @module
 */

interface FolderState {
  users: number;
  /** Settles when the exclusive step under way on this folder ends. */
  busy: Promise<void> | null;
}

/** The upload folders of one transport; see the module doc. */
export class UploadFolders {
  #folders = new Map<string, FolderState>();

  /**
   * Take part in `folders`. Waits until none of them is being swept or
   * removed, then joins all of them at once (never holding one while waiting
   * for another, so two batches cannot wait on each other).
   */
  async claim(folders: string[]): Promise<UploadClaim> {
    while (true) {
      const busy = folders.map((folder) => this.#folders.get(folder)?.busy).find((b) => b);
      if (!busy) break;
      await busy;
    }
    return new UploadClaim(this.#folders, folders);
  }
}

/** One batch's part in its upload folders; {@linkcode UploadClaim.release} it when done. */
export class UploadClaim {
  /**
   * Folders no other batch was using: whatever is in them was left by an
   * interrupted run, so the batch may empty them. Others wait until
   * {@linkcode UploadClaim.prepared}.
   */
  readonly fresh: readonly string[];
  readonly #states: Map<string, FolderState>;
  readonly #folders: readonly string[];
  /** Exclusive steps this batch holds, by folder. */
  readonly #holding = new Map<string, () => void>();
  #released = false;

  constructor(states: Map<string, FolderState>, folders: string[]) {
    this.#states = states;
    this.#folders = [...new Set(folders)];
    const fresh: string[] = [];
    for (const folder of this.#folders) {
      let state = states.get(folder);
      if (state === undefined) {
        state = { users: 0, busy: null };
        states.set(folder, state);
      }
      if (state.users === 0) {
        fresh.push(folder);
        this.#hold(folder, state);
      }
      state.users++;
    }
    this.fresh = fresh;
  }

  /** The fresh folders are ready (or failed): other batches may use them. */
  prepared(): void {
    for (const folder of this.fresh) this.#let(folder);
  }

  /**
   * The folders this batch is now the only user of. They stay reserved until
   * {@linkcode UploadClaim.release}, so the batch may remove them meanwhile.
   */
  takeLast(): string[] {
    const last: string[] = [];
    for (const folder of this.#folders) {
      const state = this.#states.get(folder)!;
      if (state.users !== 1 || state.busy !== null) continue;
      this.#hold(folder, state);
      last.push(folder);
    }
    return last;
  }

  /** Leave every folder and end the steps still held. Only the first call counts. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const folder of this.#folders) {
      this.#let(folder);
      const state = this.#states.get(folder)!;
      state.users--;
      if (state.users === 0 && state.busy === null) this.#states.delete(folder);
    }
  }

  #hold(folder: string, state: FolderState): void {
    let end!: () => void;
    state.busy = new Promise((resolve) => end = resolve);
    this.#holding.set(folder, () => {
      state.busy = null;
      end();
    });
  }

  #let(folder: string): void {
    this.#holding.get(folder)?.();
    this.#holding.delete(folder);
  }
}
