/**
 * What the daemon remembers survives damage to its own state, through the
 * real CLI: a damaged ledger (cut in half, 0 bytes, garbage) is set aside and
 * rebuilt without sending again what already arrived; a ledger that cannot be
 * written (its tmpfs full) pauses the job instead of being ignored, and every
 * file then arrives once with its hook run once, with or without a restart,
 * for every method (a real sshd and vsftpd);
 * a trial run does not hide files from a configured destination; a wall clock
 * stepped back an hour does not hold a waiting retry (libfaketime).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { LEDGER_FILE } from "../../../src/ledger/ledger.ts";
import { type CliResult, runCli, startCli } from "../../helpers/cli.ts";
import { listFiles, randomBytes, waitFor } from "../../helpers/files.ts";
import { whileImmutable } from "../../helpers/immutable.ts";
import { freePort } from "../../helpers/net.ts";
import { cliSandbox, countingHook, type Sandbox } from "../../helpers/sandbox.ts";
import { steppedWallClock } from "../../helpers/fake_clock.ts";
import { startSshd } from "../../helpers/sshd.ts";
import { resizeTmpfs, withTmpfs } from "../../helpers/tmpfs.ts";
import { startVsftpd } from "../../helpers/vsftpd.ts";
import { getJson } from "../../helpers/status.ts";
import { ASTROPY_FITS_DATA } from "../../helpers/fits.ts";

const NIGHT_MTIME = new Date("2024-03-15T22:00:00Z");

/** Write `count` files named `<prefix>NNN.fits` into the watch folder; their bytes by name. */
async function writeFiles(
  box: Sandbox,
  prefix: string,
  count: number,
  size = 3000,
): Promise<Map<string, Uint8Array>> {
  const written = new Map<string, Uint8Array>();
  for (let i = 0; i < count; i++) {
    const name = `${prefix}${String(i).padStart(3, "0")}.fits`;
    const bytes = randomBytes(size);
    const path = join(box.watch, name);
    await Deno.writeFile(path, bytes);
    await Deno.utime(path, NIGHT_MTIME, NIGHT_MTIME);
    written.set(name, bytes);
  }
  return written;
}

/** The inode of every delivered file, by path below the destination. */
/**
 * Files a rebuilt ledger recorded as sent without sending them, by the summaries of a `-v` log
 * (the first batch's at INFO, the others' at DEBUG).
 */
function recognisedCount(log: string): number {
  const counts = log.matchAll(/(\d+) file\(s\) are at .* recorded as sent, not sent again/g);
  return [...counts].reduce((sum, match) => sum + Number(match[1]), 0);
}

async function inodes(dest: string): Promise<Map<string, number | null>> {
  const out = new Map<string, number | null>();
  for (const rel of await listFiles(dest)) out.set(rel, (await Deno.stat(join(dest, rel))).ino);
  return out;
}

/** Files below `dest` (none while it does not exist yet), temporary copies and upload folders left out. */
async function delivered(dest: string): Promise<string[]> {
  const files = await listFiles(dest).catch(() => []);
  return files.filter((rel) => !rel.split("/").some((part) => part.startsWith(".")));
}

async function assertDelivered(dest: string, files: Map<string, Uint8Array>): Promise<void> {
  for (const [name, bytes] of files) {
    assert.deepEqual(await Deno.readFile(join(dest, "20240315", name)), bytes, name);
  }
}

/** Remove the ledger (and its journal): the next run finds it lost and starts it anew, rebuilt. */
async function loseLedger(box: Sandbox): Promise<void> {
  for (const suffix of ["", "-wal", "-shm"]) {
    await Deno.remove(join(box.stateDir, LEDGER_FILE + suffix)).catch(() => {});
  }
}

/** `run --once` (with `flags` before it) in `box`, which must exit 0. */
async function runOnce(box: Sandbox, ...flags: string[]): Promise<CliResult> {
  const result = await runCli([...flags, "run", "--once", "-c", box.config], { env: box.env });
  assert.equal(result.code, 0, result.stderr);
  return result;
}

/** Wait until `count` files are at the destination under final names. */
function waitDelivered(box: Sandbox, count: number, what: string, timeoutMs = 60_000) {
  return waitFor(async () => (await delivered(box.dest)).length === count, timeoutMs, what);
}

/**
 * Assert that each of `sets` is delivered, and that every file of `before` (inodes by path) is
 * still the same file: none was sent again. The inodes now.
 */
async function assertNotSentAgain(
  dest: string,
  before: Map<string, number | null>,
  ...sets: Map<string, Uint8Array>[]
): Promise<Map<string, number | null>> {
  for (const files of sets) await assertDelivered(dest, files);
  const after = await inodes(dest);
  for (const [rel, ino] of before) assert.equal(after.get(rel), ino, `${rel} was sent again`);
  return after;
}

/** Overwrite the cells of one page of the ledger's `files` (one in the middle): only a look at every page finds it. */
async function damagePageOfFiles(path: string): Promise<void> {
  const db = new DatabaseSync(path, { readOnly: true });
  let page: number;
  let pageSize: number;
  try {
    const leaves = db.prepare(
      "SELECT pageno FROM dbstat WHERE name = 'files' AND pagetype = 'leaf'",
    )
      .all().map((row) => Number(row.pageno));
    page = leaves[Math.floor(leaves.length / 2)];
    pageSize = Number(db.prepare("PRAGMA page_size").get()!.page_size);
  } finally {
    db.close();
  }
  using file = await Deno.open(path, { write: true });
  await file.seek((page - 1) * pageSize + 8, Deno.SeekMode.Start);
  await file.write(new Uint8Array(pageSize - 8).fill(0xff));
}

const DAMAGE: Record<string, (path: string) => Promise<void>> = {
  "cut in half": async (path) => {
    const { size } = await Deno.stat(path);
    await Deno.truncate(path, Math.floor(size / 2));
  },
  "0 bytes": (path) => Deno.truncate(path, 0),
  "garbage": (path) => Deno.writeTextFile(path, "this is not a database\n".repeat(400)),
  "a page of its files overwritten": damagePageOfFiles,
};

/**
 * `status`, `status --json` and `run --dry-run` say what the next run does with a ledger that is
 * `kind` (lost or damaged): start a new one, recording the `recorded` files at the destination as
 * sent and sending `sent`. Before, they read a lost one as a first start ("nothing has been
 * transferred", every file "would be transferred") and a damaged one as it was, or failed bare.
 */
async function assertForetold(
  box: Sandbox,
  kind: "lost" | "damaged",
  sent: number,
  recorded: number,
): Promise<void> {
  const status = await runCli(["status", "-c", box.config], { env: box.env });
  // Neither can be read: said as the error that ends status (exit 1; before: exit 0, a lost one
  // said on stdout as if all were well).
  assert.equal(status.code, 1, status.stderr);
  const said = status.stderr;
  const anew = kind === "lost"
    ? /The ledger .*ledger\.sqlite is lost \(.+\): image-transfer run starts a new one; /
    : /The ledger .*ledger\.sqlite is damaged \(.+\): image-transfer run moves it to .*ledger\.sqlite\.damaged-<time> \(at its start, or when a query meets the damage\) and starts a new one; /;
  const then =
    /a file already at its destination with its size is recorded as sent there, not sent again/;
  assert.match(said, new RegExp(anew.source + then.source), status.stdout);
  assert.match(status.stderr, /^error: .*Until then status shows no files/);
  assert.doesNotMatch(status.stdout, /nothing has been transferred|Job default:/);
  const json = await runCli(["status", "--json", "-c", box.config], { env: box.env });
  assert.equal(json.code, 1, json.stderr);
  assert.equal(JSON.parse(json.stdout).found.kind, kind);
  const dry = await runCli(["run", "--dry-run", "-c", box.config], { env: box.env });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, new RegExp(anew.source + then.source));
  assert.match(
    dry.stdout,
    new RegExp(
      `job default: ${sent} file\\(s\\) would be transferred \\(local\\), 0 skipped, ` +
        `${recorded} recorded as sent \\(at the destination already\\)`,
    ),
    dry.stdout,
  );
  assert.equal(
    dry.stdout.match(/^would record .* as sent: .* is there already with its size$/gm)?.length,
    recorded,
  );
}

for (const [kind, damage] of Object.entries(DAMAGE)) {
  Deno.test(`a damaged ledger (${kind}) is set aside and rebuilt; nothing is sent again`, async () => {
    await using box = await cliSandbox();
    const first = await writeFiles(box, "old_", 40);
    await runOnce(box);
    await assertDelivered(box.dest, first);
    const before = await inodes(box.dest);

    const ledgerPath = join(box.stateDir, LEDGER_FILE);
    await damage(ledgerPath);
    const fresh = await writeFiles(box, "new_", 2);
    await assertForetold(box, "damaged", 2, 40);
    const again = await runOnce(box, "-v");
    const log = await Deno.readTextFile(box.logFile);
    // Said at INFO once, not once per batch.
    assert.equal(log.match(/INFO .*are at .* already with their size/g)?.length, 1, log);
    assert.match(log, /The ledger .*ledger\.sqlite is damaged \(.+\); it was moved to .*damaged-/);
    const copies = [...Deno.readDirSync(box.stateDir)].map((e) => e.name)
      .filter((name) => name.startsWith(`${LEDGER_FILE}.damaged-`) && !/-(wal|shm)$/.test(name));
    assert.equal(copies.length, 1, `one damaged copy kept: ${copies}`);
    assert.ok(log.includes(join(box.stateDir, copies[0])), "the damaged copy is named");

    // The files already there are recognised, not sent again (same inode); new ones arrive.
    const after = await assertNotSentAgain(box.dest, before, first, fresh);
    assert.equal(recognisedCount(again.stderr), 40);

    // A third run has nothing to do, and status says when and why the ledger was rebuilt.
    await runOnce(box);
    assert.deepEqual(await inodes(box.dest), after);
    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /rebuilt .*the old one was damaged .*it is kept as .*damaged-/);
    assert.match(status.stdout, /Job default: .*done 42/);
  });
}

Deno.test("a ledger removed between runs is started anew as rebuilt; nothing is sent again", async () => {
  await using box = await cliSandbox();
  const first = await writeFiles(box, "old_", 30);
  await runOnce(box);
  const before = await inodes(box.dest);
  await loseLedger(box);
  const fresh = await writeFiles(box, "new_", 2);
  await assertForetold(box, "lost", 2, 30);
  const again = await runOnce(box);
  assert.match(
    again.stderr,
    /The ledger .*ledger\.sqlite is lost \(it was missing, although the daemon ran with this state_dir before\)/,
  );
  await assertNotSentAgain(box.dest, before, first, fresh);
  const status = await runCli(["status", "-c", box.config], { env: box.env });
  assert.match(status.stdout, /started anew .*the old one was lost \(it was missing/);
});

Deno.test("a ledger of a newer image-transfer is refused with advice that holds: moved aside, what is at the destination is recorded, not sent again; only a copy gone from there is sent again", async () => {
  await using box = await cliSandbox();
  const first = await writeFiles(box, "old_", 3);
  await runOnce(box);
  const before = await inodes(box.dest);
  const ledgerPath = join(box.stateDir, LEDGER_FILE);
  const db = new DatabaseSync(ledgerPath);
  db.exec("PRAGMA user_version = 99");
  db.close();
  for (const args of [["run", "--once"], ["status"]]) {
    const refused = await runCli([...args, "-c", box.config], { env: box.env });
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /newer image-transfer .*move the ledger aside to start a new one/);
    assert.match(
      refused.stderr,
      /files found at their destination are then recorded as sent, not sent again; only files still in the watch folder whose copy is no longer at the destination would be sent again/,
    );
    assert.doesNotMatch(refused.stderr, /files already sent would then be sent again/);
  }
  // As advised: the ledger moved aside; one copy was removed at the destination meanwhile.
  for (const suffix of ["", "-wal", "-shm"]) {
    await Deno.rename(ledgerPath + suffix, `${ledgerPath}.newer${suffix}`).catch(() => {});
  }
  const gone = join("20240315", "old_002.fits");
  await Deno.remove(join(box.dest, gone));
  const again = await runOnce(box);
  assert.equal(recognisedCount(again.stderr), 2, again.stderr);
  await assertDelivered(box.dest, first);
  const after = await inodes(box.dest);
  for (const [rel, ino] of before) {
    if (rel !== gone) assert.equal(after.get(rel), ino, `${rel} was sent again`);
  }
});

Deno.test("a rebuilt ledger takes files it had sent whose mtime is in the future (an instrument's clock ahead) for its own: recorded as sent, as the others, not as another's", async () => {
  await using box = await cliSandbox();
  const first = await writeFiles(box, "old_", 3);
  const ahead = new Date(Date.now() + 3 * 3_600_000);
  for (let i = 0; i < 2; i++) {
    const path = join(box.watch, `ahead_${i}.fits`);
    await Deno.writeFile(path, randomBytes(3000));
    await Deno.utime(path, ahead, ahead);
  }
  await runOnce(box);
  assert.equal((await delivered(box.dest)).length, 5);
  const before = await inodes(box.dest);
  await loseLedger(box);
  const again = await runOnce(box, "-v");
  assert.doesNotMatch(again.stderr, /put there by another than this job/);
  assert.equal(recognisedCount(again.stderr), 5, again.stderr);
  await assertNotSentAgain(box.dest, before, first);
});

Deno.test("a folder in the ledger's place is named as such, with what to do, by every command; moved away, nothing is sent again", async () => {
  await using box = await cliSandbox();
  const first = await writeFiles(box, "old_", 5);
  await runOnce(box);
  const before = await inodes(box.dest);
  await loseLedger(box);
  await Deno.mkdir(join(box.stateDir, LEDGER_FILE));
  const fresh = await writeFiles(box, "new_", 2);
  const commands = [["status"], ["run", "--dry-run"], ["run", "--once"], ["resend", "--all"], [
    "doctor",
  ]];
  for (const args of commands) {
    const result = await runCli([...args, "-c", box.config], { env: box.env });
    assert.notEqual(result.code, 0, args.join(" "));
    assert.match(
      result.stderr,
      /ledger\.sqlite: it is a folder, not the ledger; move it out of .*state/,
      `${args.join(" ")}: ${result.stderr}`,
    );
    assert.doesNotMatch(result.stderr, /disk I\/O error|\n\s+at /);
  }
  assert.deepEqual(await inodes(box.dest), before, "nothing sent meanwhile");

  await Deno.rename(join(box.stateDir, LEDGER_FILE), join(box.root, "moved-away"));
  await runOnce(box);
  await assertNotSentAgain(box.dest, before, first, fresh);
});

Deno.test("a ledger removed while the daemon runs is started anew (private) at its next write; after a restart nothing is sent again", async () => {
  await using box = await cliSandbox();
  const first = await writeFiles(box, "old_", 20);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await waitDelivered(box, 20, "first files");
    const before = await inodes(box.dest);
    await loseLedger(box);
    // A second apart: the removal is looked for at most once a second.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const fresh = await writeFiles(box, "new_", 2);
    await daemon.waitForOutput(
      /The ledger .*ledger\.sqlite is lost \(it was removed while the daemon ran\)/,
      60_000,
    );
    await waitDelivered(box, 22, "new files");
    if (Deno.build.os !== "windows") {
      // Made private like the first (it names every file), not after the next start only.
      for (const suffix of ["", "-wal", "-shm"]) {
        const { mode } = await Deno.stat(join(box.stateDir, LEDGER_FILE + suffix));
        assert.equal(mode! & 0o077, 0, `ledger${suffix} mode ${mode!.toString(8)}`);
      }
    }
    assert.equal((await daemon.stop("SIGTERM")).code, 0, daemon.stderr());
    await runOnce(box);
    await assertNotSentAgain(box.dest, before, first, fresh);
  } finally {
    await daemon.stop("SIGTERM").catch(() => {});
  }
});

Deno.test("a ledger removed after the wall clock was set back an hour is found lost at the next write", async () => {
  await using box = await cliSandbox();
  await writeFiles(box, "old_", 3);
  const clock = await steppedWallClock(box.root, box.env);
  const daemon = startCli(["run", "-c", box.config], { env: clock.env });
  try {
    await waitDelivered(box, 3, "first files");
    // NTP corrects a clock an hour fast; then the ledger goes.
    await clock.step("-1h");
    await loseLedger(box);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await writeFiles(box, "new_", 2);
    // Before the fix the removal was looked for again only an hour later: the rows of that
    // hour went into the removed file.
    await daemon.waitForOutput(
      /The ledger .*ledger\.sqlite is lost \(it was removed while the daemon ran\)/,
      60_000,
    );
  } finally {
    await daemon.stop("SIGTERM").catch(() => {});
  }
});

Deno.test("a ledger's journal or its index removed while the daemon runs: status reads the ledger again after the next write, and a killed daemon forgot nothing", async () => {
  await using box = await cliSandbox();
  const first = await writeFiles(box, "old_", 5);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await waitDelivered(box, 5, "first files");
    await Deno.remove(join(box.stateDir, `${LEDGER_FILE}-wal`));
    // A second apart: the removal is looked for at most once a second.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const fresh = await writeFiles(box, "new_", 2);
    await waitDelivered(box, 7, "new files");
    // At the destination first, then recorded: the line comes once the ledger has them.
    const recorded = (n: number) =>
      waitFor(
        () => (daemon.stderr().match(/Successfully transferred/g) ?? []).length >= n,
        60_000,
        `${n} arrivals recorded`,
      );
    await recorded(7);
    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /done 7, failed 0/);
    assert.match(
      daemon.stderr(),
      /journal .*ledger\.sqlite-wal .*was removed while the daemon ran/,
    );
    // Its index removed: the daemon and the readers would each keep one of their own.
    await Deno.remove(join(box.stateDir, `${LEDGER_FILE}-shm`));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const last = await writeFiles(box, "last_", 1);
    await waitDelivered(box, 8, "last file");
    await recorded(8);
    await waitFor(
      () => daemon.stderr().split("was removed while the daemon ran").length === 3,
      60_000,
      "the index's removal said",
    );
    // Killed: what the journal held since its removal is in the ledger, not in the removed file.
    await daemon.stop("SIGKILL");
    const after = await runCli(["status", "-c", box.config], { env: box.env });
    assert.equal(after.code, 0, after.stderr);
    assert.match(after.stdout, /done 8, failed 0/);
    await assertDelivered(box.dest, last);
    assert.doesNotMatch(after.stdout, /started anew|damaged/);
    await assertDelivered(box.dest, first);
    await assertDelivered(box.dest, fresh);
  } finally {
    await daemon.stop("SIGTERM").catch(() => {});
  }
});

/** Fill the file system of `folder` with one file until it is full; returns that file. */
async function fill(folder: string): Promise<string> {
  const path = join(folder, "filler");
  using file = await Deno.open(path, { write: true, create: true });
  const chunk = new Uint8Array(64 * 1024);
  try {
    for (;;) await file.write(chunk);
  } catch (error) {
    if (!/no space|os error 28/i.test(String(error))) throw error;
  }
  // Whatever was left below one chunk.
  try {
    for (;;) await file.write(new Uint8Array(512));
  } catch { /* full */ }
  return path;
}

/** A destination for `method`: its config keys and the folder it writes to on this machine. */
async function destination(
  method: "local" | "scp" | "rsync" | "ftp",
  box: Sandbox,
): Promise<{ keys: Record<string, unknown>; dest: string; stop: () => Promise<void> }> {
  if (method === "local") {
    return { keys: {}, dest: box.dest, stop: () => Promise.resolve() };
  }
  if (method === "ftp") {
    const server = await startVsftpd();
    const dest = await server.makeRemoteDir();
    return {
      keys: { ...server.configKeys(), remote_base_path: dest },
      dest,
      stop: () => server.stop(),
    };
  }
  const sshd = await startSshd();
  const dest = await sshd.makeRemoteDir();
  return {
    keys: { ...sshd.configKeys(), transfer_method: method, remote_base_path: dest },
    dest,
    stop: () => sshd.stop(),
  };
}

/**
 * The message of a wait for the hooks (`error`) that timed out: the files whose hook did not run,
 * the hook log's lines (`ran`), and of each daemon's stderr (`stderrs`, by which daemon: the one
 * stopped for a restart, the one running) its WARNING and ERROR lines (hooks not run, or killed)
 * and its last lines, so that a failure says what happened.
 */
function hooksSaid(
  error: Error,
  ran: string[],
  files: string[],
  stderrs: Record<string, string>,
): string {
  const short = (lines: string[], between = "\n") =>
    lines.join(between).replace(/x{20,}/g, (xs) => `x{${xs.length}}`);
  const missing = files.filter((name) => !ran.includes(name)).sort();
  const said = Object.entries(stderrs).filter(([, text]) => text !== "").map(([which, text]) => {
    const lines = text.trimEnd().split("\n");
    const faults = lines.filter((line) => /^\S+ \S+ (WARNING|ERROR)/.test(line)).slice(0, 40);
    return `the stderr of ${which}: its WARNING and ERROR lines (${faults.length}):\n` +
      `${short(faults)}\nits last 40 lines:\n${short(lines.slice(-40))}`;
  });
  return [
    `${error.message}: ${ran.length} of ${files.length} ran; none for: ${short(missing, ", ")}`,
    `the hook log (${ran.length} line(s), sorted):\n${short(ran)}`,
    ...said,
  ].join("\n");
}

const FULL_STATE_CASES = [
  ["local", false],
  ["local", true],
  ["rsync", true],
  ["scp", false],
  ["ftp", true],
] as const;

for (const [method, restart] of FULL_STATE_CASES) {
  Deno.test(
    `a full state folder pauses sending; every file then arrives once, its hook run once (${method}, ${
      restart ? "with" : "without"
    } a restart)`,
    async () => {
      await using box = await cliSandbox();
      const target = await destination(method, box);
      const { hook, runs } = await countingHook(box.root);
      await box.rewrite({ ...target.keys, on_transfer: [hook], retry_delay_seconds: 0.2 });
      try {
        await withTmpfs(box.stateDir, "16m", async () => {
          const start = () => startCli(["run", "-c", box.config], { env: box.env });
          let daemon = start();
          // The stderr of the daemon stopped for the restart.
          let before = "";
          try {
            await daemon.waitForOutput("Watching", 60_000);
            const early = await writeFiles(box, "early_", 3);
            await waitFor(
              async () => (await delivered(target.dest)).length === 3,
              60_000,
              "early",
            );
            // Their hooks run before the disk fills: one still running at the stop below would be
            // killed, and not run again (by design, `ledger/due_hooks.ts`), which is not the
            // subject here.
            await waitFor(async () => (await runs()).length === 3, 60_000, "the early hooks");
            const filler = await fill(box.stateDir);
            // Long names make each row (and the ledger's journal) grow.
            const late = await writeFiles(box, `late_${"x".repeat(180)}_`, 40, 1000);
            await waitFor(
              async () =>
                (await Deno.readTextFile(box.logFile)).includes("Cannot write the ledger"),
              60_000,
              "the ledger error",
            );
            const log = await Deno.readTextFile(box.logFile);
            assert.match(
              log,
              /Cannot write the ledger .*ledger\.sqlite: .*(full|space).* free on its disk/,
            );
            if (restart) {
              const stopped = await daemon.stop("SIGTERM");
              assert.equal(stopped.code, 0, daemon.stderr());
              before = daemon.stderr();
            }
            await Deno.remove(filler);
            if (restart) daemon = start();
            const all = new Map([...early, ...late]);
            await waitFor(
              async () => (await delivered(target.dest)).length === all.size,
              120_000,
              "every file at the destination",
            );
            await assertDelivered(target.dest, all);
            // Every arrival recorded and announced once: its hook ran once.
            await waitFor(
              async () => (await runs()).length >= all.size,
              60_000,
              "a hook run per file",
            )
              .catch(async (error) => {
                const stderrs = { "the daemon stopped": before, "the daemon": daemon.stderr() };
                throw new Error(hooksSaid(error, await runs(), [...all.keys()], stderrs));
              });
            assert.deepEqual(await runs(), [...all.keys()].sort(), "one hook run per file");
            // The log file is written up to a second late.
            if (!restart) {
              await waitFor(
                async () => (await Deno.readTextFile(box.logFile)).includes("can be written again"),
                30_000,
                "the ledger said writable again",
              );
            }
            const finalLog = await Deno.readTextFile(box.logFile);
            assert.equal(
              (finalLog.match(/ERROR.*Cannot write the ledger/g) ?? []).length,
              1,
              "said once",
            );
            if (!restart) assert.match(finalLog, /can be written again; transfers go on/);
            if (!restart) {
              // Files found while nothing could be recorded were known, not missed.
              const unwritable = finalLog.slice(
                finalLog.indexOf("Cannot write the ledger"),
                finalLog.indexOf("can be written again"),
              );
              assert.doesNotMatch(unwritable, /The watcher missed/);
            }
          } finally {
            await daemon.stop("SIGTERM").catch(() => {});
          }
        });
      } finally {
        await target.stop();
      }
    },
  );
}

Deno.test("a FITS file found complete (its close seen) while the ledger could not be written goes once it can, without the grace a file found by a scan waits (astropy's double_ext.fits: NEXTEND 36, 1 extension)", async () => {
  const base = `http://127.0.0.1:${freePort()}`;
  await using box = await cliSandbox({ status_listen: base.slice("http://".length) });
  type Queue = { observing: number; planning: number; unrecorded: number };
  const queue = async () =>
    (await getJson<{ jobs: Array<{ queue: Queue }> }>(base, "/api/status")).jobs[0].queue;
  await withTmpfs(box.stateDir, "16m", async () => {
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput("Watching", 60_000);
      await writeFiles(box, "early_", 3);
      await waitFor(async () => (await delivered(box.dest)).length === 3, 60_000, "early");
      const filler = await fill(box.stateDir);
      await writeFiles(box, `late_${"x".repeat(180)}_`, 40, 1000);
      await waitFor(
        async () => (await Deno.readTextFile(box.logFile)).includes("Cannot write the ledger"),
        60_000,
        "the ledger error",
      );
      const settled = async () => {
        const q = await queue();
        return q.observing === 0 && q.planning === 0 ? q.unrecorded : -1;
      };
      await waitFor(async () => await settled() > 0, 60_000, "the late files unrecorded");
      const before = await settled();
      const name = "double $(id) 'ext\".fits";
      await Deno.copyFile(join(ASTROPY_FITS_DATA, "double_ext.fits"), join(box.watch, name));
      await waitFor(async () => await settled() === before + 1, 60_000, "it found complete");
      await Deno.remove(filler);
      await waitFor(
        async () => (await delivered(box.dest)).some((rel) => rel.endsWith(`/${name}`)),
        120_000,
        "its arrival",
      );
      const log = await Deno.readTextFile(box.logFile);
      assert.doesNotMatch(log, /ext".fits has not changed .* but its FITS structure is incomplete/);
      assert.doesNotMatch(log, /Sending .*ext".fits although its FITS structure is incomplete/);
    } finally {
      await daemon.stop("SIGTERM").catch(() => {});
    }
  });
});

Deno.test("a first start on a full state disk leaves no sign of a run, and doctor fails it: status says nothing of a lost ledger, and the first run once there is room starts a new one, not a rebuilt one", async () => {
  await using box = await cliSandbox();
  const files = await writeFiles(box, "a", 2);
  await withTmpfs(box.stateDir, "256k", async () => {
    const filler = await fill(box.stateDir);
    const refused = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /disk is full \(0 B free on its disk\): free space there/);
    // doctor fails it too, instead of saying every job will work.
    const doctor = await runCli(["doctor", "-c", box.config], { env: box.env });
    assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
    assert.match(
      doctor.stdout,
      /FAIL {2}ledger disk: 0 B free on its disk: .*give another state_dir/,
    );
    for (const args of [["status"], ["run", "--dry-run"]]) {
      const out = await runCli([...args, "-c", box.config], { env: box.env });
      assert.equal(out.code, 0, out.stderr);
      assert.doesNotMatch(out.stdout + out.stderr, /lost|daemon ran with this state_dir/, args[0]);
    }
    await Deno.remove(filler);
    const healthy = await runCli(["doctor", "-c", box.config], { env: box.env });
    assert.doesNotMatch(healthy.stdout, /ledger disk/);
    const sent = await runOnce(box);
    assert.doesNotMatch(sent.stderr, /is lost|rebuilt/);
    await assertDelivered(box.dest, files);
    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.doesNotMatch(status.stdout, /started anew|lost/);
    assert.match(status.stdout, /done 2, failed 0/);
  });
});

Deno.test("a state disk with room for the lock but not for a new ledger (64 KiB): run says the disk is full and what to do, not SQLite's failed rollback", async () => {
  await using box = await cliSandbox();
  await writeFiles(box, "a", 1);
  await withTmpfs(box.stateDir, "64k", async () => {
    const refused = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(
      refused.stderr,
      /Cannot open the ledger .*ledger\.sqlite: database or disk is full \(\d+ (KiB|B) free on its disk\): free space there, or give another state_dir/,
    );
    assert.doesNotMatch(refused.stderr, /cannot rollback|no transaction is active/);
    assert.deepEqual(await delivered(box.dest), []);
  });
});

Deno.test("a state folder on a tiny disk that another writer leaves nearly full: one ERROR, no flapping; sending goes on by itself once there is room", async () => {
  await using box = await cliSandbox();
  await box.rewrite({ stability_window_seconds: 1, retry_delay_seconds: 2 });
  const files = await writeFiles(box, "a", 550, 5000);
  await withTmpfs(box.stateDir, "1m", async () => {
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput("Watching", 60_000);
      // Another writer leaves the disk nearly full: a few rows fit, no batch's worth.
      const filler = await fill(box.stateDir);
      await Deno.truncate(filler, (await Deno.stat(filler)).size - 12 * 1024);
      await waitFor(
        async () => (await Deno.readTextFile(box.logFile)).includes("Cannot write the ledger"),
        120_000,
        "the ledger error",
      );
      // More files while it cannot be written. Before, when the ledger's own journal filled such a
      // disk (it no longer grows past an eighth of the room), a write of a few rows that succeeded
      // said "writable" again, the jobs' writes failed at once, hundreds of times a second, until
      // the rescans overflowed the stack and the daemon stopped sending for good.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      for (const [name, bytes] of await writeFiles(box, "b", 100, 5000)) files.set(name, bytes);
      await new Promise((resolve) => setTimeout(resolve, 5000));
      await resizeTmpfs(box.stateDir, "16m");
      await waitDelivered(box, files.size, "every file at the destination", 120_000);
      await assertDelivered(box.dest, files);
      const log = await Deno.readTextFile(box.logFile);
      assert.doesNotMatch(log, /Maximum call stack/);
      const said = (pattern: RegExp) => (log.match(pattern) ?? []).length;
      const errors = said(/ERROR.*Cannot write the ledger/g);
      assert.ok(errors >= 1 && errors <= 3, `${errors} ERROR lines`);
      assert.ok(said(/can be written again; transfers go on/g) <= errors, "no flapping");
    } finally {
      await daemon.stop("SIGTERM").catch(() => {});
    }
  });
});

Deno.test("a state disk filled by another writer and then freed: sending goes on by itself, the ledger's journal does not take the room back", async () => {
  await using box = await cliSandbox();
  await box.rewrite({ stability_window_seconds: 1, retry_delay_seconds: 2 });
  const files = await writeFiles(box, "a", 50, 5000);
  await withTmpfs(box.stateDir, "2m", async () => {
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput("Watching", 60_000);
      await waitDelivered(box, 50, "the first");
      const filler = await fill(box.stateDir);
      for (const [name, bytes] of await writeFiles(box, `b_${"x".repeat(120)}_`, 300, 5000)) {
        files.set(name, bytes);
      }
      await waitFor(
        async () => (await Deno.readTextFile(box.logFile)).includes("Cannot write the ledger"),
        120_000,
        "the ledger error",
      );
      // About 1.8 MB freed: far more than the ledger needs. Before, its journal grew into all of
      // it within seconds and could not be copied into the database again: stuck for good.
      await Deno.remove(filler);
      await waitDelivered(box, files.size, "every file at the destination", 120_000);
      await assertDelivered(box.dest, files);
    } finally {
      await daemon.stop("SIGTERM").catch(() => {});
    }
  });
});

for (const method of ["local", "scp"] as const) {
  Deno.test(`a rebuilt ledger with checksums does not take a file of the right size with other bytes for the copy: it sends the file beside it (${method})`, async () => {
    await using box = await cliSandbox();
    const target = await destination(method, box);
    try {
      await box.rewrite({ ...target.keys, verify_transfer: "checksum" });
      const files = await writeFiles(box, "sum_", 4);
      await runOnce(box);
      await assertDelivered(target.dest, files);
      // The same size, other bytes: only its checksum tells.
      const other = randomBytes(3000);
      await Deno.writeFile(join(target.dest, "20240315", "sum_000.fits"), other);
      await Deno.truncate(join(box.stateDir, LEDGER_FILE), 0);
      const again = await runOnce(box, "-v");
      await assertDelivered(
        target.dest,
        new Map([...files].filter(([name]) => name !== "sum_000.fits")),
      );
      // Whose that file is, the lost ledger no longer tells: it is kept, the copy goes beside it.
      assert.deepEqual(await Deno.readFile(join(target.dest, "20240315", "sum_000.fits")), other);
      assert.deepEqual(
        await Deno.readFile(join(target.dest, "20240315", "sum_000~2.fits")),
        files.get("sum_000.fits"),
      );
      assert.equal(recognisedCount(again.stderr), 3);
      const log = await Deno.readTextFile(box.logFile);
      // Sent by the first run, and again by the second.
      assert.equal(log.match(/Successfully transferred \S*sum_000\.fits /g)?.length, 2, log);
    } finally {
      await target.stop();
    }
  });
}

for (const method of ["local", "scp"] as const) {
  Deno.test(`a rebuilt ledger writes no file over another at its name: it finds the copy beside it, or puts it there (${method})`, async () => {
    await using box = await cliSandbox();
    const target = await destination(method, box);
    try {
      await box.rewrite({ ...target.keys });
      // The night folder, made by the daemon (and owned by the login user over scp).
      await writeFiles(box, "seed_", 1);
      await runOnce(box);
      // v.fits was sent, then replaced by a new file that went beside it (v~2.fits); the
      // destination also holds a w.fits that is not the w.fits in the watch folder now.
      const night = join(target.dest, "20240315");
      const earlier = randomBytes(3000);
      const other = randomBytes(3500);
      const sources = await writeFiles(box, "v", 1, 4000);
      const later = await writeFiles(box, "w", 1, 4500);
      await Deno.writeFile(join(night, "v000.fits"), earlier, { mode: 0o644 });
      await Deno.writeFile(join(night, "v000~2.fits"), sources.get("v000.fits")!, { mode: 0o644 });
      await Deno.writeFile(join(night, "w000.fits"), other, { mode: 0o644 });
      const before = await inodes(target.dest);
      await loseLedger(box);
      const again = await runOnce(box, "-v");
      assert.deepEqual(await Deno.readFile(join(night, "v000.fits")), earlier, "v000.fits kept");
      assert.deepEqual(await Deno.readFile(join(night, "w000.fits")), other, "w000.fits kept");
      assert.deepEqual(await Deno.readFile(join(night, "v000~2.fits")), sources.get("v000.fits"));
      assert.deepEqual(await Deno.readFile(join(night, "w000~2.fits")), later.get("w000.fits"));
      const after = await inodes(target.dest);
      assert.equal(after.get("20240315/v000~2.fits"), before.get("20240315/v000~2.fits"));
      assert.match(again.stderr, /w000\.fits would go to .*w000\.fits, which holds another file/);
      // Sent again on purpose: it goes, to where its copy is.
      const resend = await runCli(["resend", "--name", "v000.fits", "-c", box.config], {
        env: box.env,
      });
      assert.equal(resend.code, 0, resend.stderr);
      const third = await runOnce(box);
      assert.match(third.stderr, /Successfully transferred \S*v000\.fits -> \S*v000~2\.fits/);
      assert.deepEqual(await Deno.readFile(join(night, "v000.fits")), earlier, "v000.fits kept");
      assert.notEqual(
        (await inodes(target.dest)).get("20240315/v000~2.fits"),
        before.get("20240315/v000~2.fits"),
        "sent again",
      );
    } finally {
      await target.stop();
    }
  });
}

for (const verify of ["checksum", "size"] as const) {
  Deno.test(`a file changed in place (same size) whose sending was cut short is sent after a restart, not taken for the earlier copy (${verify})`, async () => {
    await using box = await cliSandbox();
    await box.rewrite({ verify_transfer: verify });
    const files = await writeFiles(box, "frame_", 2);
    await runOnce(box);
    // Rewritten in place with as many bytes; the daemon took it and stopped (killed) while
    // sending it: its row is the new version, `transferring`, its earlier copy still there.
    const changed = randomBytes(3000);
    const source = join(box.watch, "frame_000.fits");
    await Deno.writeFile(source, changed);
    const mtime = new Date(NIGHT_MTIME.getTime() + 60_000);
    await Deno.utime(source, mtime, mtime);
    const db = new DatabaseSync(join(box.stateDir, LEDGER_FILE));
    try {
      const updated = db.prepare(
        "UPDATE files SET state = 'transferring', mtime_ms = ? WHERE rel_path = 'frame_000.fits'",
      ).run(mtime.getTime());
      assert.equal(Number(updated.changes), 1);
    } finally {
      db.close();
    }
    await runOnce(box);
    await assertDelivered(box.dest, new Map([...files, ["frame_000.fits", changed]]));
  });
}
Deno.test("a ledger that cannot be written when the daemon starts (chattr +i): sending goes on by itself once it can, nothing found meanwhile is lost", async () => {
  await using box = await cliSandbox();
  await box.rewrite({ stability_window_seconds: 1 });
  const early = await writeFiles(box, "early_", 3);
  await runOnce(box);
  const ledgerPath = join(box.stateDir, LEDGER_FILE);
  let late = new Map<string, Uint8Array>();
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await whileImmutable(ledgerPath, async () => {
      const log = () => Deno.readTextFile(box.logFile);
      await daemon.waitForOutput("Watching", 60_000);
      late = await writeFiles(box, "late_", 5);
      await waitFor(
        async () => /Cannot write the ledger .*readonly database.*tried every/.test(await log()),
        60_000,
        "the ledger error",
      );
      await new Promise((resolve) => setTimeout(resolve, 3000));
      assert.deepEqual((await delivered(box.dest)).length, 3, "nothing sent unrecorded");
    });
    // Before, the daemon kept SQLite's read-only connection: stuck until a restart.
    await daemon.waitForOutput(/can be written again; transfers go on/, 60_000);
    const all = new Map([...early, ...late]);
    await waitDelivered(box, all.size, "every file at the destination");
    await assertDelivered(box.dest, all);
  } finally {
    await daemon.stop("SIGTERM").catch(() => {});
  }
  const status = await runCli(["status", "-c", box.config], { env: box.env });
  assert.match(status.stdout, /Job default: .*done 8/, status.stdout);
});

Deno.test("run --once gives up with an error when the ledger cannot be written", async () => {
  await using box = await cliSandbox();
  const { hook, hookLog } = await countingHook(box.root);
  await box.rewrite({ on_transfer: [hook] });
  await withTmpfs(box.stateDir, "16m", async () => {
    const early = await writeFiles(box, "early_", 3);
    await runOnce(box);
    const filler = await fill(box.stateDir);
    const full = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(full.code, 1, full.stderr);
    assert.match(full.stderr, /Cannot open the ledger .*ledger\.sqlite: .* free on its disk/);
    assert.doesNotMatch(full.stderr, /Starting|Stopped:/, "a start-up error: no job started");
    // Room to open the ledger, not to record the files.
    await Deno.truncate(filler, (await Deno.stat(filler)).size - 64 * 1024);
    const late = await writeFiles(box, `late_${"x".repeat(180)}_`, 40, 1000);
    const stuck = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(stuck.code, 1, stuck.stderr);
    assert.match(
      stuck.stderr,
      /run --once gave up: the ledger .*ledger\.sqlite could not be written/,
    );
    // What the next run does with arrivals it could not record: finds them there, not sends them.
    assert.doesNotMatch(stuck.stderr, /are sent again by the next run/);
    assert.match(
      stuck.stderr,
      /Files it could not record were not sent, or arrived: the next run looks for those at the destination and records each found there with its bytes, not sending it again; make room/,
    );
    assert.doesNotMatch(stuck.stderr, /^\s+at /m, "no stack trace");
    // Its jobs had started: what they did is said, then the error (before: no Stopped line).
    const stopped = stuck.stderr.search(/Stopped: \d+ file\(s\) sent, \d+ failed in this run/);
    assert.ok(stopped > stuck.stderr.indexOf("Starting"), stuck.stderr);
    assert.ok(stopped < stuck.stderr.indexOf("run --once gave up"), stuck.stderr);
    await Deno.remove(filler);
    await runOnce(box);
    const all = new Map([...early, ...late]);
    await assertDelivered(box.dest, all);
    assert.equal((await delivered(box.dest)).length, all.size);
    const runs = (await Deno.readTextFile(hookLog)).trim().split("\n").sort();
    assert.deepEqual(runs, [...all.keys()].sort(), "one hook run per file");
  });
});

Deno.test("a trial run does not hide files from a configured destination", async () => {
  await using box = await cliSandbox();
  const files = await writeFiles(box, "cam_", 2);
  const trial = join(box.root, "trial");
  const trialRun = await runCli(
    ["run", "--once", "--watch", box.watch, "--to", trial, "--set", `state_dir=${box.stateDir}`],
    { env: box.env },
  );
  assert.equal(trialRun.code, 0, trialRun.stderr);
  await assertDelivered(trial, files);
  // The configured job shares the state folder and sends to its own destination.
  const dry = await runCli(["run", "--dry-run", "-c", box.config], { env: box.env });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /2 file\(s\) would be transferred/);
  await runOnce(box);
  await assertDelivered(box.dest, files);
  const status = await runCli(["status", "-c", box.config], { env: box.env });
  assert.match(status.stdout, /Job default: .*done 2\b/);
});

Deno.test("a wall clock stepped back an hour does not hold a waiting retry, nor make the uptime negative", async () => {
  await using box = await cliSandbox();
  const port = freePort();
  await box.rewrite({
    retry_delay_seconds: 2,
    retry_max_delay_seconds: 4,
    retry_attempts: 50,
    status_listen: `127.0.0.1:${port}`,
  });
  const clock = await steppedWallClock(box.root, box.env);
  // A plain file where the night folder goes: every attempt fails until it is gone.
  await Deno.mkdir(box.dest);
  await Deno.writeTextFile(join(box.dest, "20240315"), "in the way");
  const daemon = startCli(["run", "-c", box.config], { env: clock.env });
  try {
    await daemon.waitForOutput("Watching", 60_000);
    const files = await writeFiles(box, "retry_", 1);
    await waitFor(
      async () =>
        /Attempt 2 of .*retry_000\.fits failed/.test(await Deno.readTextFile(box.logFile)),
      60_000,
      "the second failed attempt",
    );
    await clock.step("-1h");
    await Deno.remove(join(box.dest, "20240315"));
    // Before the fix the retry waited for the wall clock to catch up: an hour.
    await waitFor(
      async () => (await delivered(box.dest)).includes("20240315/retry_000.fits"),
      90_000,
      "the file after the obstacle is gone",
    );
    await assertDelivered(box.dest, files);
    const api = await (await fetch(`http://127.0.0.1:${port}/api/status`)).json();
    assert.ok(api.uptimeSeconds >= 0, `uptime ${api.uptimeSeconds} s`);
  } finally {
    await daemon.stop("SIGTERM");
  }
});

Deno.test("resend: chosen files are sent again on purpose; --dry-run changes nothing", async () => {
  await using box = await cliSandbox();
  const files = await writeFiles(box, "frame_", 3);
  await runOnce(box);
  const before = await inodes(box.dest);

  const none = await runCli(["resend", "-c", box.config], { env: box.env });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /say which files with --night YYYYMMDD, --date YYYY-MM-DD/);
  const dry = await runCli(["resend", "--night", "20240315", "--dry-run", "-c", box.config], {
    env: box.env,
  });
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal((dry.stdout.match(/^would send again /gm) ?? []).length, 3);
  assert.match(dry.stdout, /job default: 3 file\(s\) would be sent again/);
  await runOnce(box);
  assert.deepEqual(await inodes(box.dest), before, "a dry run changes nothing");
  // --name given twice: a file matching either (before, only the last one counted).
  const both = await runCli(
    [
      "resend",
      "--name",
      "frame_000.fits",
      "--name",
      "frame_002.fits",
      "--dry-run",
      "-c",
      box.config,
    ],
    { env: box.env },
  );
  assert.equal(both.code, 0, both.stderr);
  assert.deepEqual(
    both.stdout.match(/^would send again \S+/gm)?.map((line) => line.split("/").pop()).sort(),
    ["frame_000.fits", "frame_002.fits"],
  );
  assert.match(both.stdout, /job default: 2 file\(s\) would be sent again/);
  const help = await runCli(["resend", "--help"], { env: box.env });
  assert.match(
    help.stdout,
    /--name <pattern> +the files whose path .*\n.*absolute path \(may be repeated: any\n *of them\)/,
  );
  assert.match(help.stdout, /--name may be given more than once/);

  await Deno.remove(join(box.watch, "frame_002.fits"));
  const chosen = await runCli(["resend", "--name", "frame_00[12].fits", "-c", box.config], {
    env: box.env,
  });
  assert.equal(chosen.code, 0, chosen.stderr);
  assert.match(
    chosen.stdout,
    /job default: 1 file\(s\) will be sent again; 1 chosen file\(s\) are no longer in the watch folder/,
  );
  assert.match(chosen.stdout, /sent at the next start/);
  await runOnce(box);
  const after = await inodes(box.dest);
  assert.notEqual(after.get("20240315/frame_001.fits"), before.get("20240315/frame_001.fits"));
  assert.equal(after.get("20240315/frame_000.fits"), before.get("20240315/frame_000.fits"));
  await assertDelivered(
    box.dest,
    new Map([...files].filter(([name]) => name !== "frame_002.fits")),
  );
});

Deno.test("resend with a job renamed in the config (before the daemon took its former name's rows): the files are sent again, as status counts them", async () => {
  await using box = await cliSandbox();
  const files = await writeFiles(box, "frame_", 2);
  await runOnce(box);
  const before = await inodes(box.dest);
  await box.rewrite({ name: "cam_renamed" });
  const status = await runCli(["status", "-c", box.config], { env: box.env });
  assert.match(status.stdout, /Job cam_renamed: .*done 2/);
  // Before: "0 file(s) would be sent again": the rows were still under the former name.
  const dry = await runCli(["resend", "--all", "--dry-run", "-c", box.config], { env: box.env });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /job cam_renamed: 2 file\(s\) would be sent again/);
  const resend = await runCli(["resend", "--all", "-c", box.config], { env: box.env });
  assert.equal(resend.code, 0, resend.stderr);
  assert.match(resend.stdout, /job cam_renamed: 2 file\(s\) will be sent again/);
  await runOnce(box);
  await assertDelivered(box.dest, files);
  const after = await inodes(box.dest);
  for (const [rel, ino] of before) assert.notEqual(after.get(rel), ino, `${rel} not sent again`);
});

Deno.test("a state_dir removed whole while the daemon runs: it is made again at the next write, the ledger goes on, and status, stop and run find the daemon", async () => {
  await using box = await cliSandbox();
  const first = await writeFiles(box, "old_", 5);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await waitDelivered(box, 5, "first files");
    const before = await inodes(box.dest);
    await Deno.remove(box.stateDir, { recursive: true });
    // A second apart: the removal is looked for at most once a second.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const fresh = await writeFiles(box, "new_", 2);
    await waitDelivered(box, 7, "new files");
    await waitFor(
      async () => {
        const out = await runCli(["status", "-c", box.config], { env: box.env });
        return /^Daemon: running/.test(out.stdout) && /done 7, failed 0/.test(out.stdout);
      },
      60_000,
      "status of the running daemon",
    );
    // Before: "database is not open" for every file, and no lock: a second daemon could start.
    assert.doesNotMatch(daemon.stderr(), /database is not open|unable to open database/);
    const second = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(second.code, 3, second.stderr);
    const stopped = await runCli(["stop", "-c", box.config], { env: box.env });
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /Stopped the daemon/);
    assert.equal((await daemon.process.status).code, 0);
    await runOnce(box);
    await assertNotSentAgain(box.dest, before, first, fresh);
  } finally {
    await daemon.stop("SIGTERM").catch(() => {});
  }
});
