/**
 * Book-keeping of the destination folders that concurrent batches of one SSH
 * transport upload into. Each batch has its own upload folder (see
 * `uploadFolderName`), but leftover upload folders of an interrupted run are
 * swept by name prefix, which must not happen while another batch of this
 * daemon has its upload folder in the same destination folder. So the first
 * batch to use a destination folder sweeps it, once, and others wait until
 * it is done. All of it happens on this side, so no remote locking is needed.
 *
 * @module
 */

interface FolderState {
  users: number;
  /** The upload folder names of the batches using it (never taken for leftovers). */
  uploads: Set<string>;
  /** Settles when the sweep under way in this folder ends. */
  busy: Promise<void> | null;
}

/** The destination folders of one transport; see the module doc. */
export class UploadFolders {
  #folders = new Map<string, FolderState>();
  /** Folders swept since this daemon started, where no upload folder was left behind since. */
  #swept = new Set<string>();

  /**
   * Take part in `folders`. Waits until none of them is being swept, then
   * joins all of them at once (never holding one while waiting for another,
   * so two batches cannot wait on each other).
   */
  async claim(folders: string[], uploadName = ""): Promise<UploadClaim> {
    while (true) {
      const busy = folders.map((folder) => this.#folders.get(folder)?.busy).find((b) => b);
      if (!busy) break;
      await busy;
    }
    return new UploadClaim(this.#folders, this.#swept, folders, uploadName);
  }
}

/** One batch's part in its destination folders; {@linkcode UploadClaim.release} it when done. */
export class UploadClaim {
  /**
   * Folders this batch must sweep before creating its upload folder in them:
   * no other batch is using them and they were not swept since the start
   * (or something was left behind since). Others wait until
   * {@linkcode UploadClaim.prepared}.
   */
  readonly toSweep: readonly string[];
  readonly #states: Map<string, FolderState>;
  readonly #swept: Set<string>;
  readonly #folders: readonly string[];
  readonly #uploadName: string;
  /** Sweeps this batch holds, by folder. */
  readonly #holding = new Map<string, () => void>();
  #released = false;

  constructor(
    states: Map<string, FolderState>,
    swept: Set<string>,
    folders: string[],
    uploadName: string,
  ) {
    this.#states = states;
    this.#swept = swept;
    this.#folders = [...new Set(folders)];
    this.#uploadName = uploadName;
    const toSweep: string[] = [];
    for (const folder of this.#folders) {
      let state = states.get(folder);
      if (state === undefined) {
        state = { users: 0, busy: null, uploads: new Set() };
        states.set(folder, state);
      }
      if (state.users === 0 && !swept.has(folder)) {
        toSweep.push(folder);
        this.#hold(folder, state);
      }
      state.users++;
      state.uploads.add(uploadName);
    }
    this.toSweep = toSweep;
  }

  /**
   * The sweeps are over (`swept`: whether they ran; when not, the next batch
   * in those folders sweeps them): other batches may use the folders.
   */
  prepared(swept: boolean): void {
    for (const folder of this.toSweep) {
      if (swept) this.#swept.add(folder);
      this.#let(folder);
    }
  }

  /** The upload folder names other batches of this daemon are using in `folder` now. */
  othersActive(folder: string): string[] {
    const uploads = this.#states.get(folder)?.uploads ?? new Set<string>();
    return [...uploads].filter((name) => name !== this.#uploadName && name !== "");
  }

  /** This batch could not remove its upload folders from `folders`: sweep them again. */
  leftBehind(folders: Iterable<string>): void {
    for (const folder of folders) this.#swept.delete(folder);
  }

  /** Leave every folder and end the sweeps still held. Only the first call counts. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const folder of this.#folders) {
      this.#let(folder);
      const state = this.#states.get(folder)!;
      state.users--;
      state.uploads.delete(this.#uploadName);
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
