/**
 * The `rsync` transport. Per batch, over one shared SSH connection:
 * 1. one `rsync` call uploads every file: a private local staging folder
 *    mirrors the destination folders and holds symlinks named like the
 *    temporary files, pointing at the sources; rsync reads that list with
 *    `--files-from=- --from0` and follows the links (`--copy-links`), so on
 *    the remote side only temporary names are ever written, even with
 *    `--partial` or `--inplace` in `rsync_options`;
 * 2. one ssh call verifies and renames every copy (see `remote_verify.ts`).
 *
 * Missing folders are created by rsync (`--no-implied-dirs`: with default
 * attributes, existing ones left untouched); the base folder is created with
 * `mkdir -p` once per connection.
 *
 * @module
 */
import { join, posix } from "node:path";
import { CommandError } from "../errors.ts";
import { runCommand } from "./run_command.ts";
import { SSH_ENV } from "./ssh.ts";
import { type Plan, SshTransport } from "./ssh_transport.ts";

/** rsync exit codes for "some files were not transferred" (the others were). */
const RSYNC_PARTIAL_CODES = new Set([23, 24]);

/** Delivers files with one `rsync` call per batch over a shared OpenSSH connection. */
export class RsyncTransport extends SshTransport {
  readonly method = "rsync" as const;
  readonly maxBatchFiles = 500;
  #baseReady = false;

  protected async upload(plans: Plan[], signal: AbortSignal): Promise<void> {
    if (!this.#baseReady) {
      this.#baseReady = await this.makeFolders(plans, [this.base], signal);
      if (!this.#baseReady) return;
    }
    const stage = await this.makeStageDir();
    try {
      // Synchronous on purpose: a few microseconds each in a private local folder,
      // where awaiting 1,000 small operations would queue behind watcher events.
      const list: string[] = [];
      const made = new Set<string>();
      for (const plan of plans) {
        const relativeFolder = posix.dirname(plan.item.destination);
        const entry = relativeFolder === "." ? plan.tempName : `${relativeFolder}/${plan.tempName}`;
        if (relativeFolder !== "." && !made.has(relativeFolder)) {
          Deno.mkdirSync(join(stage, ...relativeFolder.split("/")), { recursive: true });
          made.add(relativeFolder);
        }
        Deno.symlinkSync(plan.item.source, join(stage, ...entry.split("/")));
        list.push(entry);
      }
      const argv = [
        "rsync",
        "--protect-args",
        "--copy-links",
        "--ignore-times",
        "--no-implied-dirs",
        "--files-from=-",
        "--from0",
        ...(this.job.compression ? ["--compress"] : []),
        "-e",
        await this.session.rsyncRsh(),
        ...this.job.rsync_options,
        "--",
        `${stage}/`,
        this.session.remoteSpec(`${this.base}/`),
      ];
      await runCommand(argv, {
        stdin: list.map((entry) => `${entry}\0`).join(""),
        timeoutMs: this.timeoutMs,
        signal,
        env: SSH_ENV,
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      const partial = error instanceof CommandError && !error.run.timedOut &&
        error.run.code !== null && RSYNC_PARTIAL_CODES.has(error.run.code);
      for (const plan of plans) {
        const failure = this.classify(
          error,
          `send ${plan.item.source} to ${this.describeTarget(plan.item.destination)}`,
        );
        if (partial && failure.kind !== "fatal") plan.uncertain = failure;
        else plan.error = failure;
      }
      // The base folder may have gone; make sure of it again next time.
      this.#baseReady = false;
    } finally {
      await Deno.remove(stage, { recursive: true }).catch(() => {});
    }
  }
}
