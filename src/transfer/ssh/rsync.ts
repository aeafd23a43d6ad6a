/**
 * The `rsync` transport: batches delivered as `ssh/batch.ts` describes, each
 * upload one `rsync` call per destination folder into the batch's upload
 * folder there, under the files' own names (`--files-from=- --from0
 * --no-relative`), so even `--partial` or `--inplace` in `rsync_options`
 * never write a final name, and no local staging is needed. `--times --perms
 * --chmod=go-w` give each copy the source's mtime and permission bits without
 * group and other write.
 *
 * rsync checks every file it writes against the whole-file checksum of what
 * it read from the source, and retries or reports the file when they differ:
 * with `verify_transfer: checksum`, a copy of a call that exited 0 is not
 * hashed again on either side (only its size is checked); copies of a call
 * that failed are compared by SHA-256.
 *
 * @module
 */
import { dirname, isAbsolute, join, posix, relative, sep } from "node:path";
import type { CommandError } from "../../errors.ts";
import { posixWord } from "../../shell_words.ts";
import { classifyFailure } from "../classify.ts";
import { tempNameFor } from "../temp_name.ts";
import { rsyncBwlimit } from "../../config/sizes.ts";
import type { JobConfig } from "../../config/types.ts";
import type { Ledger } from "../../ledger/ledger.ts";
import { logger } from "../../log/logging.ts";
import { byUploadFolder, renamedOnUpload, type SshDelivery } from "./method.ts";
import { SshTransport } from "./transport.ts";
import type { PartSent, ProbeCheck, TransferItem } from "../transport.ts";

/** rsync exit codes for "some files were not transferred" (the others were). */
const RSYNC_PARTIAL_CODES = new Set([23, 24]);

/** rsync's closing lines after per-file errors (they name no file). */
const RSYNC_SUMMARY =
  /^rsync (?:error: some files\/attrs were not transferred|warning: some files vanished)/;

/** Delivers files with one `rsync` call per destination folder over a shared OpenSSH connection. */
export class RsyncTransport extends SshTransport {
  readonly method = "rsync" as const;
  readonly maxBatchFiles = 250;
  override readonly uploadVerifiesCopies = true;
  override readonly resumesCopies: boolean;
  #log = logger("transfer");

  constructor(job: JobConfig, runtimeDir: string, ledger: Ledger | null, fromTo: boolean) {
    super(job, runtimeDir, ledger, fromTo);
    this.resumesCopies = job.resume_partial_hours > 0;
    // The user's rsync_options hold for every file: none goes in one call without rsync.
    if (job.rsync_options.length > 0) this.oneCallFiles = 0;
  }

  /**
   * See `Transport.probe`. With `rsync_options`, a test file is also sent with them into the
   * destination folder (under a temporary name, removed after), so that an option the local or
   * remote rsync refuses shows here rather than at the first transfer.
   */
  override async probe(): Promise<ProbeCheck[]> {
    let checks = await super.probe();
    // An rsync off the PATH, named by --rsync-path: the test file below tries it.
    if (this.job.rsync_options.some((option) => /^--rsync-path(?:=|$)/.test(option))) {
      checks = checks.map((check) =>
        check.check === "remote rsync" && check.verdict === "fail"
          ? { ...check, verdict: "skip", detail: "not on the PATH; rsync_options names it" }
          : check
      );
    }
    if (this.job.rsync_options.length === 0 || checks.some((c) => c.verdict === "fail")) {
      return checks;
    }
    // No folder is made for the test: a share not mounted would get it on the disk below.
    const folder = checks.find((check) => check.check === "destination folder");
    if (folder?.verdict !== "ok") {
      const detail = "not tried: the destination folder does not exist yet";
      return [...checks, { check: "rsync options", verdict: "warn", detail }];
    }
    return [...checks, await this.#probeOptions()];
  }

  async #probeOptions(): Promise<ProbeCheck> {
    const options = this.job.rsync_options.map(posixWord).join(" ");
    const dir = await Deno.makeTempDir({ prefix: "image-transfer-probe-" });
    const source = join(dir, "rsync-options-probe");
    const target = posix.join(this.base, tempNameFor("rsync-options-probe", this.owner));
    try {
      await Deno.writeTextFile(source, "image-transfer doctor: a test of rsync_options\n");
      const argv = ["rsync", "--protect-args", "--times", "--perms", "--chmod=go-w", "-e"];
      argv.push(await this.session.rsyncRsh(), ...this.job.rsync_options, "--", source);
      await this.session.run([...argv, this.session.remoteSpec(target)], {
        timeoutMs: this.timeoutMs,
      });
      return { check: "rsync options", verdict: "ok", detail: `sent a test file with ${options}` };
    } catch (error) {
      const failure = classifyFailure(error, `send a test file with ${options}`, this.context);
      const refused = firstRsyncLine(error);
      const detail = refused && !failure.message.includes(refused)
        ? `${failure.message}; rsync said: ${refused}`
        : failure.message;
      return { check: "rsync options", verdict: "fail", detail };
    } finally {
      await this.session.runScript(`rm -f -- ${posixWord(target)}\n`, {
        timeoutMs: this.timeoutMs,
      }).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }

  /** See `Transport.sendPart`: rsync `--append-verify` into the kept copy. */
  sendPart(item: TransferItem, signal: AbortSignal): Promise<PartSent> {
    return this.sendPartOf(item, signal);
  }

  /**
   * One call per upload folder, and items whose links may be followed (see
   * `TransferItem.followLink`) in calls of their own.
   */
  override uploadCalls(deliveries: SshDelivery[]): SshDelivery[][] {
    return byUploadFolder(deliveries).flatMap((group) =>
      [
        group.filter((plan) => !plan.item.followLink),
        group.filter((plan) => plan.item.followLink),
      ].filter((part) => part.length > 0)
    );
  }

  /**
   * One rsync call of the sources of `group` into `folder`. Links are never
   * followed (nor copied as links) unless the group's items allow following.
   */
  upload(group: SshDelivery[], folder: string, signal: AbortSignal): Promise<void> {
    return this.limitedCalls.during((limit) => this.#upload(group, folder, limit, signal), signal);
  }

  async #upload(
    group: SshDelivery[],
    folder: string,
    limit: number | null,
    signal: AbortSignal,
  ): Promise<void> {
    const root = commonFolder(group.map((plan) => plan.item.source));
    // "./" first: rsync skips list entries that start with "#" or ";" as comments.
    const list = group.map((plan) =>
      `./${relative(root, plan.item.source).split(sep).join("/")}\0`
    );
    // A copy named otherwise than its source goes alone, to its own path.
    const renamed = group.length === 1 && renamedOnUpload(group[0]);
    const argv = [
      "rsync",
      "--protect-args",
      ...(group[0].item.followLink ? ["--copy-links"] : []),
      "--ignore-times",
      "--times",
      "--perms",
      "--chmod=go-w",
      ...(renamed ? [] : ["--no-relative", "--files-from=-", "--from0"]),
      // Continues an earlier copy moved into the upload folder (a new one is written whole),
      // and checks the whole copy, the earlier part included, sending it again if it differs.
      ...(this.resumesCopies ? ["--append-verify"] : []),
      "--stats",
      ...(this.job.compression ? ["--compress"] : []),
      ...(limit === null ? [] : [`--bwlimit=${rsyncBwlimit(limit)}`]),
      "-e",
      await this.session.rsyncRsh(),
      ...this.job.rsync_options,
      "--",
      ...(renamed ? [group[0].item.source, this.session.remoteSpec(group[0].tempPath)] : [
        root.endsWith(sep) ? root : `${root}${sep}`,
        this.session.remoteSpec(`${literalForRemoteGlob(folder)}/`),
      ]),
    ];
    const run = await this.runUpload(argv, group, { stdin: renamed ? "" : list.join(""), signal });
    const sent = new TextDecoder().decode(run.stdout).match(/^Total bytes sent: ([\d,.]+)/m);
    this.#log.debug("rsync sent {bytes} bytes for {files} file(s) into {folder}", {
      job: this.job.name,
      bytes: sent ? Number(sent[1].replaceAll(/[,.]/g, "")) : null,
      files: group.length,
      folder,
    });
  }

  /**
   * rsync exits 23 or 24 when it skipped some files and sent the others; each
   * error line quotes the path of its file (the source, the copy or rsync's
   * own temporary file next to it). A line that names no file of `group`
   * fails the whole call.
   */
  failedInCall(error: CommandError, group: SshDelivery[]): Set<SshDelivery> | null {
    if (error.run.code === null || !RSYNC_PARTIAL_CODES.has(error.run.code)) return null;
    const named = new Set<SshDelivery>();
    for (const line of error.run.stderr.split(/\r?\n/)) {
      if (line.trim() === "" || RSYNC_SUMMARY.test(line)) continue;
      const found = group.filter((plan) => {
        const rsyncTemp = posix.join(
          posix.dirname(plan.tempPath),
          `.${posix.basename(plan.tempPath)}.`,
        );
        return line.includes(`"${plan.item.source}"`) || line.includes(`"${plan.tempPath}"`) ||
          line.includes(`"${rsyncTemp}`);
      });
      if (found.length === 0) return null;
      for (const plan of found) named.add(plan);
    }
    return named.size > 0 ? named : null;
  }
}

/**
 * An upload folder (it exists) as rsync's receiver reads it: with `--protect-args` it expands
 * `*`, `?` and `[` itself, so a folder named `*` would stand for every folder beside it that
 * holds an upload folder of the same name (those of one batch), and the copies land in another
 * one. With such a character the path is escaped, matching only itself; without, it is taken as
 * written (backslashes too), so it is left alone.
 */
export function literalForRemoteGlob(path: string): string {
  return /[*?[]/.test(path) ? path.replace(/[\\*?[\]]/g, "\\$&") : path;
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

/** rsync's first complaint (`--bogus: unknown option` of `rsync: --bogus: unknown option`). */
function firstRsyncLine(error: unknown): string | null {
  const stderr = (error as { run?: { stderr?: string } }).run?.stderr ?? "";
  const line = stderr.split(/\r?\n/).find((line) => /^rsync: /.test(line));
  return line === undefined ? null : line.slice("rsync: ".length).trim();
}
