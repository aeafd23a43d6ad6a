/**
 * The `scp` transport. Per batch, over one shared SSH connection:
 * 1. one ssh call creates every destination folder (`mkdir -p`);
 * 2. one `scp` call per destination folder uploads the files under their
 *    temporary names (local symlinks named like the temporary files point at
 *    the sources, so one call can copy many files to one folder);
 * 3. one ssh call verifies and renames every copy (see `remote_verify.ts`).
 *
 * scp runs in its default SFTP mode (OpenSSH 9+; `-O` is never passed), so the
 * remote side opens the paths as given and no remote shell sees file names.
 *
 * @module
 */
import { join } from "node:path";
import { CommandError } from "../errors.ts";
import { runCommand } from "./run_command.ts";
import { SSH_ENV } from "./ssh.ts";
import { live, type Plan, SshTransport } from "./ssh_transport.ts";

/** Errors scp reports per file (it carries on with the other files). */
const PER_FILE_ERROR = /failed to upload|dest open|dest write|dest close|local open|local read/;

/** Delivers files with `scp` over a shared OpenSSH connection. */
export class ScpTransport extends SshTransport {
  readonly method = "scp" as const;
  readonly maxBatchFiles = 100;

  protected async upload(plans: Plan[], signal: AbortSignal): Promise<void> {
    const folders = [...new Set(plans.map((plan) => plan.folder))];
    await this.makeFolders(plans, folders, signal);
    const groups = new Map<string, Plan[]>();
    for (const plan of live(plans)) {
      const group = groups.get(plan.folder) ?? [];
      group.push(plan);
      groups.set(plan.folder, group);
    }
    // Windows has no unprivileged symlinks: one scp call per file there.
    const useLinks = Deno.build.os !== "windows" && [...groups.values()].some((g) => g.length > 1);
    const stage = useLinks ? await this.makeStageDir() : null;
    try {
      let groupNumber = 0;
      for (const [folder, group] of groups) {
        signal.throwIfAborted();
        if (stage === null || group.length === 1) {
          for (const plan of group) {
            await this.#copy([plan.item.source], plan.tempPath, [plan], signal);
          }
          continue;
        }
        const linkDir = join(stage, String(groupNumber++));
        // Synchronous: microseconds each, in a private local folder.
        Deno.mkdirSync(linkDir);
        const links: string[] = [];
        for (const plan of group) {
          const link = join(linkDir, plan.tempName);
          Deno.symlinkSync(plan.item.source, link);
          links.push(link);
        }
        await this.#copy(links, `${folder}/`, group, signal);
      }
    } finally {
      if (stage !== null) await Deno.remove(stage, { recursive: true }).catch(() => {});
    }
  }

  /** Run one scp call; record its failure on the plans it carried. */
  async #copy(sources: string[], target: string, group: Plan[], signal: AbortSignal) {
    try {
      const argv = await this.session.scpArgv(sources, target);
      await runCommand(argv, { timeoutMs: this.timeoutMs, signal, env: SSH_ENV });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      // Per-file errors (scp went on with the others): which copies arrived is
      // settled by the size check in the finishing step.
      const perFile = group.length > 1 && error instanceof CommandError &&
        !error.run.timedOut && PER_FILE_ERROR.test(error.run.stderr);
      for (const plan of group) {
        const failure = this.classify(
          error,
          `send ${plan.item.source} to ${this.describeTarget(plan.item.destination)}`,
        );
        if (perFile && failure.kind !== "fatal") plan.uncertain = failure;
        else plan.error = failure;
      }
    }
  }
}
