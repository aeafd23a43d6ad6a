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
import { dirname, isAbsolute, relative, sep } from "node:path";
import type { CommandError } from "../errors.ts";
import { type Plan, SshTransport } from "./ssh_transport.ts";

/** rsync exit codes for "some files were not transferred" (the others were). */
const RSYNC_PARTIAL_CODES = new Set([23, 24]);

/** Delivers files with one `rsync` call per destination folder over a shared OpenSSH connection. */
export class RsyncTransport extends SshTransport {
  readonly method = "rsync" as const;
  readonly maxBatchFiles = 500;

  /** One rsync call of the sources of `group` into `folder`. */
  protected async copy(group: Plan[], folder: string, signal: AbortSignal): Promise<void> {
    const root = commonFolder(group.map((plan) => plan.item.source));
    // "./" first: rsync skips list entries that start with "#" or ";" as comments.
    const list = group.map((plan) =>
      `./${relative(root, plan.item.source).split(sep).join("/")}\0`
    );
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
      this.session.remoteSpec(`${folder}/`),
    ];
    await this.session.run(argv, { stdin: list.join(""), timeoutMs: this.timeoutMs, signal });
  }

  /** rsync exits 23 or 24 when it skipped some files and sent the others. */
  protected someMayHaveArrived(error: CommandError): boolean {
    return error.run.code !== null && RSYNC_PARTIAL_CODES.has(error.run.code);
  }
}

/** The deepest folder that holds every one of `paths` (absolute local paths). */
function commonFolder(paths: string[]): string {
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
