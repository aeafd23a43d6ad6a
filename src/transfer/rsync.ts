/**
 * The `rsync` transport. Per batch, over one shared SSH connection:
 * 1. one ssh call creates, in every destination folder of the batch, this
 *    daemon's hidden upload folder (see `uploadFolderName`), as for scp;
 * 2. one `rsync` call per destination folder uploads the sources, under their
 *    own names, into that upload folder (`--files-from=- --from0
 *    --no-relative`), so even `--partial` or `--inplace` in `rsync_options`
 *    never write a final name, and no local staging is needed;
 * 3. one ssh call verifies each copy, renames it into the destination folder
 *    (see `remote_verify.ts`) and removes upload folders no other batch uses.
 *
 * @module
 */
import { dirname, isAbsolute, posix, relative, sep } from "node:path";
import { CommandError } from "../errors.ts";
import { byTempFolder, type Plan, SshTransport } from "./ssh_transport.ts";

/** rsync exit codes for "some files were not transferred" (the others were). */
const RSYNC_PARTIAL_CODES = new Set([23, 24]);

/** Delivers files with one `rsync` call per destination folder over a shared OpenSSH connection. */
export class RsyncTransport extends SshTransport {
  readonly method = "rsync" as const;
  readonly maxBatchFiles = 500;

  protected async upload(plans: Plan[], signal: AbortSignal): Promise<void> {
    // rsync names each copy after its source, and a destination keeps the source's name.
    await this.uploadEach(byTempFolder(plans), (group) => this.#copy(group, signal));
  }

  /** Run one rsync call of the sources of `group` into their upload folder; record its failure on them. */
  async #copy(group: Plan[], signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const target = `${posix.dirname(group[0].tempPath)}/`;
    const root = commonFolder(group.map((plan) => plan.item.source));
    // "./" first: rsync skips list entries that start with "#" or ";" as comments.
    const list = group.map((plan) =>
      `./${relative(root, plan.item.source).split(sep).join("/")}\0`
    );
    try {
      const argv = [
        "rsync",
        "--protect-args",
        "--copy-links",
        "--ignore-times",
        "--no-relative",
        "--files-from=-",
        "--from0",
        ...(this.job.compression ? ["--compress"] : []),
        "-e",
        await this.session.rsyncRsh(),
        ...this.job.rsync_options,
        "--",
        root.endsWith(sep) ? root : `${root}${sep}`,
        this.session.remoteSpec(target),
      ];
      await this.session.run(argv, { stdin: list.join(""), timeoutMs: this.timeoutMs, signal });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      // Some files were not sent (rsync went on with the others): which copies
      // arrived is settled by the size check in the finishing step.
      const partial = error instanceof CommandError && !error.run.timedOut &&
        error.run.code !== null && RSYNC_PARTIAL_CODES.has(error.run.code);
      for (const plan of group) {
        const failure = this.classify(
          error,
          `send ${plan.item.source} to ${this.describeTarget(plan.item.destination)}`,
        );
        if (partial && failure.kind !== "fatal") plan.uncertain = failure;
        else plan.error = failure;
      }
    }
  }
}

/** The deepest folder that holds every one of `paths` (absolute local paths). */
export function commonFolder(paths: string[]): string {
  let root = dirname(paths[0]);
  for (const path of paths.slice(1)) {
    while (!isInside(root, path)) {
      const parent = dirname(root);
      if (parent === root) return root;
      root = parent;
    }
  }
  return root;
}

/** Whether `path` lies below the folder `root`. */
function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== "" && rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}
