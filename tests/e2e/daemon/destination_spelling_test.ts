/**
 * `remote_base_path` spelled another way (a trailing slash, two slashes, a `.`) is the same
 * destination folder: through the real CLI, with a local copy, a real vsftpd and a real OpenSSH
 * server (scp and rsync), the second and third runs send nothing again, the destination holds each
 * file once with its bytes, and the `on_transfer` hook ran once per file. A ledger an older
 * version wrote under a spelling with a trailing slash is taken over at start (one row per file,
 * the done or newer one where two spellings held one, the hooks owed run once; `status` and
 * `run --dry-run` read it so before), and a reload that
 * only respells the folder sends nothing again.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { reloadDaemon, runCli, startCli } from "../../helpers/cli.ts";
import { assertCopiesIntact, randomBytes, waitFor } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";
import { ftpDaemonSandbox, withVsftpdAndRoot } from "../../helpers/vsftpd.ts";
import { DueHooks } from "../../../src/ledger/due_hooks.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";

const NIGHT = new Date("2024-07-01T20:00:00Z"); // -> night folder 20240701

/** Files with random bytes in `watch`, written in one night; their bytes by relative path. */
async function writeNight(watch: string, rels: string[]): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (const [i, rel] of rels.entries()) {
    files.set(rel, randomBytes(20_000 + i));
    await Deno.mkdir(join(watch, rel, ".."), { recursive: true });
    await Deno.writeFile(join(watch, rel), files.get(rel)!);
    await Deno.utime(join(watch, rel), NIGHT, NIGHT);
  }
  return files;
}

/** A hook in `dir` that writes each arrival's relative path as a line of the file it returns. */
async function countingHook(
  dir: string,
): Promise<{ hook: string; calls: () => Promise<string[]> }> {
  const hook = join(dir, "hook.sh");
  const out = join(dir, "hook-calls");
  await Deno.writeTextFile(out, "");
  await Deno.writeTextFile(
    hook,
    `#!/bin/sh\nprintf '%s\\n' "$IMAGE_TRANSFER_RELATIVE_PATH" >> '${out}'\n`,
    { mode: 0o755 },
  );
  await Deno.chmod(hook, 0o755);
  const calls = async () =>
    (await Deno.readTextFile(out)).split("\n").filter((line) => line !== "").sort();
  return { hook, calls };
}

/** `config` with `remote_base_path` (and `keys`) set anew, the rest as it was. */
async function respell(config: string, base: string, keys: Record<string, string> = {}) {
  let text = (await Deno.readTextFile(config))
    .replace(/^remote_base_path: .*$/m, `remote_base_path: ${JSON.stringify(base)}`);
  for (const [key, value] of Object.entries(keys)) {
    text = text.replace(new RegExp(`^${key}: .*$`, "m"), `${key}: ${JSON.stringify(value)}`);
  }
  await Deno.writeTextFile(config, text);
}

/** `run --once`: asserts it ended well and sent `sent` file(s); its log. */
async function runOnce(config: string, env: Record<string, string>, sent: number) {
  const run = await runCli(["run", "--once", "-c", config], { env });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, new RegExp(`Stopped: ${sent} file\\(s\\) sent, 0 failed`), run.stderr);
  assert.doesNotMatch(run.stderr, /went to another destination before/);
  return run.stderr;
}

Deno.test("local: remote_base_path respelled (trailing slash, two slashes, a .) sends nothing again", async () => {
  await using box = await cliSandbox();
  const files = await writeNight(box.watch, ["a.fits", "sub/b.fits", "c.fits"]);
  const { hook, calls } = await countingHook(box.root);
  const keys = { on_transfer: [hook], night_date_source: "mtime", log_file: "" };
  for (const [i, base] of [box.dest, `${box.dest}/`, `${box.dest}//`, `${box.dest}/./`].entries()) {
    await box.rewrite({ ...keys, remote_base_path: base });
    await runOnce(box.config, box.env, i === 0 ? files.size : 0);
  }
  await assertCopiesIntact(box.dest, files, true);
  assert.deepEqual(await calls(), [...files.keys()].sort(), "one hook per file");
});

Deno.test("ftp: remote_base_path respelled sends nothing again", async () => {
  await withVsftpdAndRoot({}, "itx-spell-ftp-", async ({ server, root }) => {
    const { dest, config, watch } = await ftpDaemonSandbox(server, root, {
      night_date_source: "mtime",
    });
    const files = await writeNight(watch, ["a.fits", "sub/b.fits"]);
    const env = { HOME: root };
    for (const [i, base] of [dest, `${dest}/`, `${dest}//`].entries()) {
      await respell(config, base);
      await runOnce(config, env, i === 0 ? files.size : 0);
    }
    await assertCopiesIntact(dest, files, true);
  });
});

Deno.test("scp and rsync: remote_base_path respelled (and the method switched) sends nothing again", async () => {
  const sshd = await startSshd();
  const { root, watch, remote, config, env } = await sshSandbox(sshd, "scp", {
    stability_window_seconds: 0.2,
    night_date_source: "mtime",
  });
  try {
    const files = await writeNight(watch, ["a.fits", "sub/b.fits"]);
    const runs: Array<[string, string]> = [
      [remote, "scp"],
      [`${remote}/`, "rsync"],
      [`${remote}//.//`, "scp"],
    ];
    for (const [i, [base, method]] of runs.entries()) {
      await respell(config, base, { transfer_method: method });
      await runOnce(config, env, i === 0 ? files.size : 0);
    }
    await assertCopiesIntact(remote, files, true);
  } finally {
    await sshd.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a ledger written under a spelling with a trailing slash is taken over at start: nothing sent again, one row a file, the owed hook run once", async () => {
  await using box = await cliSandbox();
  const files = await writeNight(box.watch, ["a.fits", "b.fits", "c.fits", "d.fits"]);
  const { hook, calls } = await countingHook(box.root);
  // What an older version sent with `remote_base_path: <dest>/` (and, before, `<dest>//`).
  const [slash, twice] = [`local:${box.dest}/`, `local:${box.dest}//`];
  for (const rel of ["a.fits", "b.fits", "c.fits"]) {
    await Deno.mkdir(join(box.dest, "20240701"), { recursive: true });
    await Deno.writeFile(join(box.dest, "20240701", rel), files.get(rel)!);
  }
  const done = (rel: string, size = files.get(rel)!.length) => ({
    relPath: rel,
    size,
    mtimeMs: NIGHT.getTime(),
    destination: `20240701/${rel}`,
  });
  await Deno.mkdir(box.stateDir, { recursive: true });
  const ledger = Ledger.open(box.stateDir);
  try {
    const [bySlash, byTwo] = [slash, twice].map((t) => new FileRows(ledger, "default", t));
    // b.fits: an older version done under one spelling, the one there now under the other.
    byTwo.markDone([done("b.fits", 7)], 1_000);
    bySlash.markDone([done("a.fits"), done("b.fits"), done("c.fits")], 2_000);
    // a.fits: pending again under the other spelling, later: the done row wins.
    byTwo.enqueue("a.fits", done("a.fits"), 3_000);
    // c.fits arrived, its hook still owed (under both spellings: it runs once).
    for (const rows of [bySlash, byTwo]) DueHooks.of(rows).add([done("c.fits")]);
  } finally {
    ledger.close();
  }
  await box.rewrite({
    remote_base_path: `${box.dest}/`,
    on_transfer: [hook],
    night_date_source: "mtime",
    log_file: "",
  });
  // Before the start takes them over, run --dry-run and status read them as the run will.
  const dry = await runCli(["run", "--dry-run", "-c", box.config], { env: box.env });
  assert.match(dry.stdout + dry.stderr, /job default: 1 file\(s\) would be transferred/);
  const status = await runCli(["status", "-c", box.config], { env: box.env });
  assert.match(status.stdout, /Job default: pending 0, interrupted 0, done 3, failed 0/);
  const log = await runOnce(box.config, box.env, 1);
  assert.equal(
    log.split(/Job default: its \d+ file\(s\) in the ledger for local:\S+ are recorded for /)
      .length - 1,
    2,
    `each spelling taken over once:\n${log}`,
  );
  assert.match(log, new RegExp(`Successfully transferred ${join(box.watch, "d.fits")} ->`));
  assert.equal(log.match(/Successfully transferred/g)?.length, 1, log);
  await assertCopiesIntact(box.dest, files, true);
  assert.deepEqual(await calls(), ["c.fits", "d.fits"], "the owed hook once, the new file's");
  const db = new DatabaseSync(join(box.stateDir, "ledger.sqlite"), { readOnly: true });
  try {
    const rows = db.prepare("SELECT target, rel_path, size, state FROM files ORDER BY rel_path")
      .all().map((r) => Object.values(r));
    const target = `local:${box.dest}`;
    assert.deepEqual(
      rows,
      [...files].map(([rel, bytes]) => [target, rel, bytes.length, "done"]),
    );
    assert.equal(db.prepare("SELECT COUNT(*) AS n FROM hooks_due").get()?.n, 0);
  } finally {
    db.close();
  }
  // The next start finds nothing to take over.
  const again = await runOnce(box.config, box.env, 0);
  assert.doesNotMatch(again, /are recorded for/);
});

Deno.test("a reload that only respells remote_base_path sends nothing again", async () => {
  await using box = await cliSandbox();
  const files = await writeNight(box.watch, ["a.fits", "b.fits"]);
  const keys = { night_date_source: "mtime", log_file: "" };
  await box.rewrite({ ...keys, remote_base_path: box.dest });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  const sent = () => daemon.stderr().match(/Successfully transferred/g)?.length ?? 0;
  try {
    await waitFor(() => sent() === files.size, 60_000, "the files to arrive");
    await box.rewrite({ ...keys, remote_base_path: `${box.dest}//./` }, true);
    await reloadDaemon(daemon, 1);
    for (const [rel, bytes] of await writeNight(box.watch, ["c.fits"])) files.set(rel, bytes);
    const arrived = `Successfully transferred ${join(box.watch, "c.fits")} ->`;
    await waitFor(() => daemon.stderr().includes(arrived), 60_000, "the new file to arrive");
  } finally {
    assert.equal((await daemon.stop("SIGTERM")).code, 0, daemon.stderr());
  }
  assert.doesNotMatch(daemon.stderr(), /went to another destination before/);
  assert.equal(sent(), files.size, `each file sent once:\n${daemon.stderr()}`);
  await assertCopiesIntact(box.dest, files, true);
  // The reload's line says the folder is the same.
  assert.match(daemon.stderr(), /remote_base_path "[^"]+" -> "[^"]+\/\/\.\/" \(the same folder\)/);
});
