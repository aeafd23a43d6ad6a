/**
 * What every benchmark shares: the private sshd, the pre-generated data, the
 * daemon's config file, the argv of the raw tools with the same SSH settings,
 * progress output and small file-system helpers.
 *
 * @module
 */
import { randomFillSync } from "node:crypto";
import { basename, dirname, join, sep } from "node:path";
import { isTempName } from "../src/layout/destination.ts";
import { BLOCK_BYTES, card, headerBytes, imageCards } from "../tests/helpers/fits.ts";
import type { TestSshd } from "../tests/helpers/sshd.ts";

/** Files in a burst. */
export const BURST_FILES = 2000;
/**
 * Size of each burst file (and of the latency files), in bytes: a FITS file of
 * one header block and 70 blocks of 16-bit pixels (200 KiB, give or take).
 */
export const SMALL_FILE_BYTES = 71 * BLOCK_BYTES;
/** Size of the big file, in bytes. */
export const BIG_FILE_BYTES = 1024 * 1024 * 1024;
/** The cipher of the big-file benchmark (daemon and raw scp). */
export const BIG_FILE_CIPHER = "aes128-gcm@openssh.com";

/** Data generated once per run of the benchmark. */
export interface BenchData {
  /** Burst file names, in write order. */
  burstNames: string[];
  /**
   * Burst file contents, kept in memory so writing them costs no reads: FITS
   * files of {@linkcode SMALL_FILE_BYTES} (a 336 × 300 16-bit image of random pixels).
   */
  burstBytes: Uint8Array[];
  /** The 1 GiB file. */
  bigFile: string;
}

/** Everything a benchmark needs. */
export interface BenchContext {
  sshd: TestSshd;
  /** Private local folder of this run (removed at the end). */
  workDir: string;
  data: BenchData;
  /** Print a progress line to stderr. */
  progress(message: string): void;
}

const startedAtMs = performance.now();

/** Print `message` to stderr, prefixed with the time since the benchmark started. */
export function progress(message: string): void {
  const seconds = ((performance.now() - startedAtMs) / 1000).toFixed(1).padStart(6);
  console.error(`[${seconds} s] ${message}`);
}

/** `size` random bytes. */
export function randomBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  randomFillSync(out);
  return out;
}

/** A FITS file of {@linkcode SMALL_FILE_BYTES}: one header block, then random 16-bit pixels. */
export function smallFitsFile(): Uint8Array {
  const header = headerBytes([...imageCards(336, 300), card("BSCALE", 1), card("BZERO", 32768)]);
  const bytes = randomBytes(SMALL_FILE_BYTES);
  bytes.set(header);
  if (bytes.length !== header.length + 336 * 300 * 2) {
    throw new Error("Cannot build the benchmark's FITS file: its size does not add up");
  }
  return bytes;
}

/** Generate the burst files (in memory) and the big file under `dir`. */
export async function generateData(dir: string): Promise<BenchData> {
  await Deno.mkdir(dir, { recursive: true });
  const burstNames: string[] = [];
  const burstBytes: Uint8Array[] = [];
  for (let i = 0; i < BURST_FILES; i++) {
    burstNames.push(`burst_${String(i).padStart(4, "0")}.fits`);
    burstBytes.push(smallFitsFile());
  }
  const bigFile = join(dir, "big.bin");
  const chunk = 64 * 1024 * 1024;
  using file = await Deno.open(bigFile, { write: true, create: true, truncate: true });
  for (let offset = 0; offset < BIG_FILE_BYTES; offset += chunk) {
    const bytes = randomBytes(chunk);
    for (let written = 0; written < bytes.length;) {
      written += await file.write(bytes.subarray(written));
    }
  }
  return { burstNames, burstBytes, bigFile };
}

/** Settings of one daemon run; every other key keeps its default. */
export interface DaemonSettings {
  watchPath: string;
  remoteBasePath: string;
  stateDir: string;
  logFile: string;
  method: "scp" | "rsync" | "local";
  verify?: "size" | "checksum";
  /** `remote_sync` (the daemon's default when absent: on). */
  remoteSync?: boolean;
  /** Extra `ssh_options` after the ones that pin the host key. */
  sshOptions?: string[];
  /** `file_patterns` (the daemon's default when absent). */
  filePatterns?: string[];
  /** `status_listen`; off (`""`) unless a benchmark opens the page. */
  statusListen?: string;
  /** `close_shortcut_patterns` (none when absent, the daemon's default). */
  closeShortcutPatterns?: string[];
  /** `ssh_port` (the sshd's own port when absent; a relay's port for the long-haul link). */
  sshPort?: number;
}

/**
 * Write a daemon config file for `settings` on the benchmark's sshd (no SSH
 * settings for `local`); returns its path.
 */
export async function writeDaemonConfig(
  ctx: BenchContext,
  dir: string,
  settings: DaemonSettings,
): Promise<string> {
  const sshd = ctx.sshd;
  const lines = [
    `watch_path: ${JSON.stringify(settings.watchPath)}`,
    `remote_base_path: ${JSON.stringify(settings.remoteBasePath)}`,
    `transfer_method: ${settings.method}`,
    // The login and SSH settings only where the method uses them (the daemon warns of the others).
    ...(settings.method === "local" ? [] : [
      `remote_host: "127.0.0.1"`,
      `remote_user: ${JSON.stringify(sshd.user)}`,
      `ssh_port: ${settings.sshPort ?? sshd.port}`,
      `ssh_identity_file: ${JSON.stringify(sshd.identityFile)}`,
      `ssh_options: ${JSON.stringify([...sshd.sshOptions, ...(settings.sshOptions ?? [])])}`,
    ]),
    `state_dir: ${JSON.stringify(settings.stateDir)}`,
    `log_file: ${JSON.stringify(settings.logFile)}`,
    `status_listen: ${JSON.stringify(settings.statusListen ?? "")}`,
  ];
  if (settings.verify) lines.push(`verify_transfer: ${settings.verify}`);
  if (settings.remoteSync !== undefined) lines.push(`remote_sync: ${settings.remoteSync}`);
  if (settings.filePatterns) lines.push(`file_patterns: ${JSON.stringify(settings.filePatterns)}`);
  if (settings.closeShortcutPatterns) {
    lines.push(`close_shortcut_patterns: ${JSON.stringify(settings.closeShortcutPatterns)}`);
  }
  const file = join(dir, "config.yaml");
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
  return file;
}

/** `-o`/`-i` options of a raw ssh/scp call to the benchmark's sshd (no port, no sharing). */
export function rawSshOptions(sshd: TestSshd, extra: string[] = []): string[] {
  const args = ["-o", "BatchMode=yes"];
  for (const option of [...sshd.sshOptions, ...extra]) args.push("-o", option);
  args.push("-i", sshd.identityFile, "-o", "IdentitiesOnly=yes");
  return args;
}

/** `user@127.0.0.1:path`. */
export function remoteSpec(sshd: TestSshd, path: string): string {
  return `${sshd.user}@127.0.0.1:${path}`;
}

/**
 * rsync's `-e` value for a fresh ssh connection, each word quoted for rsync's
 * own splitting; `port` and `extra` options for a relay in between.
 */
export function rawRsyncRsh(sshd: TestSshd, port = sshd.port, extra: string[] = []): string {
  const words = ["ssh", "-p", String(port), ...rawSshOptions(sshd, extra)];
  return words.map((word) => `'${word.replaceAll("'", "''")}'`).join(" ");
}

/**
 * Run `argv` to completion and return its wall time in milliseconds.
 *
 * @throws {Error} when it exits non-zero
 */
export async function timeCommand(argv: string[]): Promise<number> {
  const start = performance.now();
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const elapsedMs = performance.now() - start;
  if (!out.success) {
    throw new Error(
      `Cannot run ${argv.join(" ")}: exit ${out.code}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return elapsedMs;
}

/** Run `argv` and return its stdout and stderr (stderr first: `ssh -V` prints there). */
export async function commandText(argv: string[]): Promise<string> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return decoder.decode(out.stderr) + decoder.decode(out.stdout);
}

/** Flush dirty pages so one benchmark's writeback does not land in the next. */
export async function sync(): Promise<void> {
  await new Deno.Command("sync", { stdout: "null", stderr: "null" }).output();
}

/** Files below `root` (recursive, `/`-separated relative paths) with their sizes. */
export async function listSizes(root: string, prefix = ""): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const entry of Deno.readDir(join(root, prefix))) {
    const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory) {
      for (const [path, size] of await listSizes(root, rel)) out.set(path, size);
    } else {
      out.set(rel, (await Deno.lstat(join(root, rel))).size);
    }
  }
  return out;
}

/** A fresh destination folder owned by the login user, and a function removing it. */
export async function freshRemoteDir(
  ctx: BenchContext,
  prefix: string,
): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await ctx.sshd.makeRemoteDir(prefix);
  return { path, remove: () => Deno.remove(path, { recursive: true }).catch(() => {}) };
}

/** A benchmark daemon's folders and config, and a fresh remote folder. */
export interface DaemonSandbox {
  dir: string;
  watch: string;
  remote: string;
  config: string;
  /** Remove the local folder and the remote one. */
  remove(): Promise<void>;
}

/**
 * Make a watch folder, state and log paths under a new folder in the work
 * folder, a fresh remote folder, and a config file with `settings`.
 */
export async function daemonSandbox(
  ctx: BenchContext,
  name: string,
  settings: Omit<DaemonSettings, "watchPath" | "remoteBasePath" | "stateDir" | "logFile">,
): Promise<DaemonSandbox> {
  const dir = await Deno.makeTempDir({ dir: ctx.workDir, prefix: `${name}-` });
  const watch = join(dir, "watch");
  await Deno.mkdir(watch);
  const remote = await freshRemoteDir(ctx, `itx-bench-${name}-`);
  const config = await writeDaemonConfig(ctx, dir, {
    ...settings,
    watchPath: watch,
    remoteBasePath: remote.path,
    stateDir: join(dir, "state"),
    logFile: join(dir, "image_transfer.log"),
  });
  return {
    dir,
    watch,
    remote: remote.path,
    config,
    remove: async () => {
      await remote.remove();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Sleep for `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A recursive watch (inotify) on a destination folder: resolves when a file
 * named `name` of `size` bytes appears under its final name (a copy in an
 * upload folder, under the same name, does not count).
 */
export class DestinationWatch {
  #watcher: Deno.FsWatcher;
  #waiters = new Map<string, { size: number; resolve: (atMs: number) => void }>();
  #loop: Promise<void>;

  constructor(root: string) {
    this.#watcher = Deno.watchFs(root, { recursive: true });
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    try {
      for await (const event of this.#watcher) {
        const atMs = performance.now();
        for (const path of event.paths) {
          const waiter = this.#waiters.get(basename(path));
          if (!waiter || dirname(path).split(sep).some(isTempName)) continue;
          const size = (await Deno.stat(path).catch(() => null))?.size;
          if (size !== waiter.size) continue;
          this.#waiters.delete(basename(path));
          waiter.resolve(atMs);
        }
      }
    } catch { /* closed */ }
  }

  /** A promise of the moment `name` appears complete (register before writing the source). */
  arrival(name: string, size: number, timeoutMs: number): Promise<number> {
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    const timer = setTimeout(() => {
      this.#waiters.delete(name);
      reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${name} at the destination`));
    }, timeoutMs);
    this.#waiters.set(name, {
      size,
      resolve: (atMs) => {
        clearTimeout(timer);
        resolve(atMs);
      },
    });
    return promise;
  }

  async close(): Promise<void> {
    this.#watcher.close();
    await this.#loop;
  }
}
