/**
 * `local` and `ftp`: a file whose attempt was cut off with its copy in place (the daemon killed
 * while sending: its row still `transferring`), rewritten while the daemon was down, replaces that
 * copy of its own at the next start (the destination's size and mtime are the version that attempt
 * sent), never going beside it as `~2`; a file of another size and mtime there is left as it is.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { listFiles, randomBytes, sha256Of, sha256OfFile } from "../../helpers/files.ts";
import { ftpDaemonSandbox, withVsftpdAndRoot } from "../../helpers/vsftpd.ts";
import { LEDGER_FILE } from "../../../src/ledger/ledger.ts";

const NIGHT = new Date("2024-07-01T20:00:00Z"); // -> 20240701

/** A config sending `watch` to `dest`, its ledger in `stateDir`. */
interface Setup {
  watch: string;
  dest: string;
  stateDir: string;
  config: string;
  env?: Record<string, string>;
}

/** As a crash in the middle of its attempt leaves it: the copy in place, the row `transferring`. */
function cutOff(stateDir: string): void {
  const db = new DatabaseSync(join(stateDir, LEDGER_FILE));
  try {
    db.prepare("UPDATE files SET state = 'transferring', transferred_at = NULL").run();
  } finally {
    db.close();
  }
}

/** Send a.fits (20 kB, of `NIGHT`), then cut its attempt off; the source's path. */
async function sentThenCutOff(box: Setup): Promise<string> {
  const source = join(box.watch, "a.fits");
  await Deno.writeFile(source, randomBytes(20_000));
  await Deno.utime(source, NIGHT, NIGHT);
  const first = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(first.code, 0, first.stderr);
  cutOff(box.stateDir);
  return source;
}

/** The instrument writes `source` again (`size` bytes, a minute later) while the daemon is down. */
async function writeAgain(source: string, size: number) {
  const rewritten = randomBytes(size);
  await Deno.writeFile(source, rewritten);
  const later = new Date(NIGHT.getTime() + 60_000);
  await Deno.utime(source, later, later);
  return { rewritten, later };
}

/** Send a.fits, cut its attempt off, rewrite it: the new version replaces that copy. */
async function rewrittenReplacesCopy(box: Setup, sameSize: boolean): Promise<void> {
  const source = await sentThenCutOff(box);
  const { rewritten, later } = await writeAgain(source, sameSize ? 20_000 : 30_000);

  const second = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(await listFiles(box.dest), ["20240701/a.fits"], "one copy, none beside");
  assert.equal(await sha256OfFile(join(box.dest, "20240701/a.fits")), sha256Of(rewritten));
  assert.equal((await Deno.stat(join(box.dest, "20240701/a.fits"))).mtime?.getTime(), +later);
  assert.doesNotMatch(second.stderr, /put there by another/);
}

for (const sameSize of [true, false]) {
  const size = sameSize ? "the same size" : "another size";
  Deno.test(`local: a file rewritten (${size}) while the daemon was down after an attempt cut off with its copy in place replaces that copy, none goes beside it`, async () => {
    await using box = await cliSandbox({ stability_window_seconds: 0.2, log_file: "" });
    await rewrittenReplacesCopy(box, sameSize);
  });

  Deno.test(`ftp: a file rewritten (${size}) while the daemon was down after an attempt cut off with its copy in place replaces that copy, none goes beside it`, async () => {
    await withVsftpdAndRoot({}, "itx-ftp-rewritten-", async ({ server, root }) => {
      const box = await ftpDaemonSandbox(server, root, { verify_transfer: "size" });
      await rewrittenReplacesCopy({ ...box, stateDir: join(root, "state") }, sameSize);
    });
  });
}

Deno.test("local: after an attempt cut off, a file at its name that is not that attempt's copy (another mtime) is left as it is, the rewritten file goes beside it", async () => {
  await using box = await cliSandbox({ stability_window_seconds: 0.2, log_file: "" });
  const source = await sentThenCutOff(box);
  // Someone else's file took the name meanwhile, the same size.
  const theirs = randomBytes(20_000);
  const copy = join(box.dest, "20240701/a.fits");
  await Deno.writeFile(copy, theirs);
  const other = new Date(NIGHT.getTime() - 3600_000);
  await Deno.utime(copy, other, other);
  const { rewritten } = await writeAgain(source, 20_000);

  const second = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(await listFiles(box.dest), ["20240701/a.fits", "20240701/a~2.fits"]);
  assert.equal(await sha256OfFile(copy), sha256Of(theirs));
  assert.equal(await sha256OfFile(join(box.dest, "20240701/a~2.fits")), sha256Of(rewritten));
});
