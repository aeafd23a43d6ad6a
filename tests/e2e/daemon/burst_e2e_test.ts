/**
 * End to end through the real CLI: 20,000 files written in one burst, as fast
 * as the test can write them, must all arrive (count, sizes and bytes of
 * every file) long before the hourly rescan, with the `local` method and
 * with `rsync` over a real OpenSSH server. The watcher drops events under
 * such a load; the daemon must notice on its own.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import { waitFor } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { withTmpfs } from "../../helpers/tmpfs.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";

const FILES = 20_000;
const FOLDERS = 4;
/**
 * A ceiling, not a speed: a quarter of the hourly rescan, so files that arrive came without it.
 * (Alone on a 2-core machine the daemon needs about a minute; beside the rest of the suite, or on
 * a busy machine, several.)
 */
const DEADLINE_MS = 900_000;

/** The relative path of file `i`. */
function relOf(i: number): string {
  return `night/${i % FOLDERS}/burst ${String(i).padStart(5, "0")}.fits`;
}

/** The bytes of file `i`: 200–1,223 bytes, different for every file. */
function bytesOf(i: number): Uint8Array {
  const out = new Uint8Array(200 + (i * 7919) % 1024);
  let x = (i + 1) * 2654435761;
  for (let k = 0; k < out.length; k++) {
    x = (x ^ (x << 13) ^ (x >>> 17) ^ (x << 5)) >>> 0;
    out[k] = x & 0xff;
  }
  return out;
}

/** Write every file as fast as possible (synchronous calls, no pause). */
function writeBurst(watch: string): void {
  for (let f = 0; f < FOLDERS; f++) {
    Deno.mkdirSync(join(watch, "night", `${f}`), { recursive: true });
  }
  for (let i = 0; i < FILES; i++) {
    Deno.writeFileSync(join(watch, ...relOf(i).split("/")), bytesOf(i));
  }
}

/**
 * Every final file below `dest` by its path without the night folder
 * (`<night>/<rel>` → `<rel>`); temporary and hidden names are skipped.
 */
function arrivals(dest: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string, rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      return;
    }
    for (const entry of entries) {
      if (entry.name.startsWith(".")) continue;
      const childRel = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory) walk(join(dir, entry.name), childRel);
      else out.set(childRel.slice(childRel.indexOf("/") + 1), join(dir, entry.name));
    }
  };
  walk(dest, "");
  return out;
}

/** Wait until all files arrived; then check count, sizes and the bytes of every one. */
async function expectAllArrive(dest: string, daemonLog: () => string): Promise<void> {
  const started = Date.now();
  let arrived = arrivals(dest);
  while (arrived.size < FILES && Date.now() - started < DEADLINE_MS) {
    await new Promise((r) => setTimeout(r, 1000));
    arrived = arrivals(dest);
  }
  assert.equal(
    arrived.size,
    FILES,
    `${FILES - arrived.size} file(s) missing after ${DEADLINE_MS / 1000} s\n` +
      daemonLog().split("\n").filter((l) => !l.includes("Successfully")).slice(-30).join("\n"),
  );
  for (let i = 0; i < FILES; i++) {
    const path = arrived.get(relOf(i));
    assert.ok(path, `${relOf(i)} arrived`);
    const expected = bytesOf(i);
    assert.equal(Deno.statSync(path).size, expected.length, `size of ${relOf(i)}`);
    assert.deepEqual(Deno.readFileSync(path), expected, `bytes of ${relOf(i)}`);
  }
}

/** How many files the daemon logged as sent. */
function successes(daemonLog: string): number {
  return daemonLog.match(/Successfully transferred /g)?.length ?? 0;
}

/**
 * Wait until the daemon has taken in every arrival: a batch's files are under
 * their final names a moment before the daemon records and logs them.
 */
async function expectAllLogged(daemonLog: () => string): Promise<void> {
  await waitFor(() => successes(daemonLog()) >= FILES, 60_000, `${FILES} success lines`);
}

const DAEMON_KEYS = {
  stability_window_seconds: 1,
  max_concurrent_transfers: 4,
  verify_transfer: "size",
  // The default: an hourly rescan must not be what finds the files.
  rescan_interval_seconds: 3600,
};

/**
 * Start the daemon on `config`, write the burst into `watch` once it watches, and expect every
 * file at `dest` and in the log, each sent once; the daemon stops cleanly.
 */
async function burstThroughDaemon(
  config: string,
  env: Record<string, string>,
  watch: string,
  dest: string,
): Promise<void> {
  const daemon = startCli(["run", "-c", config], { env });
  try {
    await daemon.waitForOutput("Watching");
    writeBurst(watch);
    await expectAllArrive(dest, () => daemon.stderr());
    await expectAllLogged(daemon.stderr);
  } finally {
    const status = await daemon.stop("SIGTERM");
    assert.equal(status.code, 0, daemon.stderr().slice(-3000));
  }
  assert.equal(successes(daemon.stderr()), FILES, "each file sent exactly once");
}

Deno.test("burst (local): 20,000 files written at once all arrive, byte for byte", async () => {
  await using box = await cliSandbox({ log_file: "", ...DAEMON_KEYS });
  // The destination on tmpfs: the copies' fsyncs are not what this test measures.
  await withTmpfs(
    box.dest,
    "512m",
    (dest) => burstThroughDaemon(box.config, box.env, box.watch, dest),
  );
});

Deno.test("burst (rsync): 20,000 files written at once all arrive, byte for byte", async () => {
  const sshd = await startSshd();
  const { root, watch, remote, config, env } = await sshSandbox(sshd, "rsync", DAEMON_KEYS);
  try {
    await burstThroughDaemon(config, env, watch, remote);
  } finally {
    await Deno.remove(root, { recursive: true });
    await sshd.stop();
  }
});
