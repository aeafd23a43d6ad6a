/**
 * A copy the job sent that was changed at the destination since (a reduction pipeline writing
 * into it) is not replaced when its source changes: the new version goes beside it (`~2`) with a
 * WARN line, both copies' bytes kept. A re-send over a copy of its own that is still the one sent
 * says so in its `Successfully transferred` line. Through the real CLI (`run --once`) and real
 * servers (OpenSSH with scp and rsync, vsftpd), `after_transfer: keep`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { listFiles, randomBytes, sha256Of, sha256OfFile } from "../../helpers/files.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";
import { ftpDaemonSandbox, withVsftpdAndRoot } from "../../helpers/vsftpd.ts";

const NIGHT = new Date("2024-07-01T20:00:00Z"); // -> 20240701
const keys = { log_file: "", stability_window_seconds: 0.2, after_transfer: "keep" };

/** Write `bytes` into the existing source `name` in place (its birth time kept), dated `at`. */
async function editInPlace(watch: string, name: string, bytes: Uint8Array, at: Date) {
  const file = await Deno.open(join(watch, name), { write: true, create: true, truncate: true });
  try {
    await file.write(bytes);
  } finally {
    file.close();
  }
  await Deno.utime(join(watch, name), at, at);
}

async function run(config: string, env?: Record<string, string>): Promise<string> {
  const result = await runCli(["run", "--once", "-c", config], { env });
  const log = result.stdout + result.stderr;
  assert.equal(result.code, 0, log);
  return log;
}

/** The scenario of the module doc, sending `watch` to `dest` (a folder on this machine). */
async function changedCopyKept(
  { watch, dest, config, env }: {
    watch: string;
    dest: string;
    config: string;
    env?: Record<string, string>;
  },
): Promise<void> {
  const night = join(dest, "20240701");
  const first = randomBytes(20_000);
  await editInPlace(watch, "img007.fits", first, NIGHT);
  const log1 = await run(config, env);
  assert.equal(await sha256OfFile(join(night, "img007.fits")), sha256Of(first), log1);
  assert.doesNotMatch(log1, /replaced its copy/);

  // A pipeline writes into the copy at the destination; then the source is edited in place.
  const processed = new Uint8Array([
    ...first,
    ...new TextEncoder().encode("processed-by-pipeline\n"),
  ]);
  const copy = await Deno.open(join(night, "img007.fits"), { append: true });
  await copy.write(new TextEncoder().encode("processed-by-pipeline\n"));
  copy.close();
  const second = randomBytes(20_000); // The same size: a header edited in place.
  await editInPlace(watch, "img007.fits", second, new Date(NIGHT.getTime() + 60_000));
  const dry = await runCli(["run", "--dry-run", "-c", config], { env });
  assert.equal(dry.code, 0, dry.stdout + dry.stderr);
  assert.match(
    dry.stdout,
    /would transfer \S*img007\.fits -> \S*20240701\/img007~2\.fits \(beside \S*20240701\/img007\.fits, its copy, changed at the destination since this job sent it: it is kept, not replaced\)/,
  );
  const log2 = await run(config, env);
  assert.equal(await sha256OfFile(join(night, "img007.fits")), sha256Of(processed), log2);
  assert.equal(await sha256OfFile(join(night, "img007~2.fits")), sha256Of(second), log2);
  assert.match(
    log2,
    /WARN.*The copy of \S*img007\.fits at \S*20240701\/img007\.fits was changed at the destination since this job sent it .*it is kept, not replaced; the new version goes to \S*20240701\/img007~2\.fits, beside it/,
  );
  assert.match(log2, /Successfully transferred \S*img007\.fits -> \S*20240701\/img007~2\.fits/);
  assert.doesNotMatch(log2, /replaced its copy/);

  // Changed again: it replaces its own copy (`~2`, untouched since), and the line says so.
  const third = randomBytes(21_000);
  await editInPlace(watch, "img007.fits", third, new Date(NIGHT.getTime() + 120_000));
  const log3 = await run(config, env);
  assert.equal(await sha256OfFile(join(night, "img007~2.fits")), sha256Of(third), log3);
  assert.equal(await sha256OfFile(join(night, "img007.fits")), sha256Of(processed), log3);
  assert.match(
    log3,
    /Successfully transferred \S*img007\.fits -> \S*20240701\/img007~2\.fits \(replaced its copy recorded as arrived at \d{4}-\d\d-\d\dT[\d:.]+Z: the source changed since\)/,
  );
  assert.doesNotMatch(log3, /was changed at the destination/);

  // Sent again on request, the same version: it replaces its own copy, and says so.
  const resend = await runCli(["resend", "--all", "-c", config], { env });
  assert.equal(resend.code, 0, resend.stdout + resend.stderr);
  const log4 = await run(config, env);
  assert.match(
    log4,
    /Successfully transferred \S*img007\.fits -> \S*20240701\/img007~2\.fits \(replaced its copy recorded as arrived at \S+: the same version, sent again\)/,
  );
  assert.equal(await sha256OfFile(join(night, "img007~2.fits")), sha256Of(third), log4);
  assert.deepEqual((await listFiles(dest)).sort(), [
    "20240701/img007.fits",
    "20240701/img007~2.fits",
  ]);

  // Its copy removed at the destination, sent again: nothing was replaced, and the line says so
  // (before: "replaced the copy sent at ...").
  await Deno.remove(join(night, "img007~2.fits"));
  const again = await runCli(["resend", "--all", "-c", config], { env });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  const log5 = await run(config, env);
  assert.match(
    log5,
    /Successfully transferred \S*img007\.fits -> \S*20240701\/img007~2\.fits \(sent again: its copy recorded as arrived at \S+ was no longer at the destination\)/,
  );
  assert.doesNotMatch(log5, /replaced its copy/);
  assert.equal(await sha256OfFile(join(night, "img007~2.fits")), sha256Of(third), log5);
}

Deno.test("local: a copy changed at the destination since it was sent is kept; the new version goes beside it", async () => {
  await using box = await cliSandbox(keys);
  await changedCopyKept(box);
});

Deno.test("local: a copy rewritten at the destination to the same size (its mtime changed) is kept too", async () => {
  await using box = await cliSandbox(keys);
  const night = join(box.dest, "20240701");
  const first = randomBytes(10_000);
  await editInPlace(box.watch, "a.fits", first, NIGHT);
  await run(box.config);
  const theirs = randomBytes(10_000);
  await Deno.writeFile(join(night, "a.fits"), theirs); // Same size, mtime now.
  const second = randomBytes(10_000);
  await editInPlace(box.watch, "a.fits", second, new Date(NIGHT.getTime() + 60_000));
  const log = await run(box.config);
  assert.equal(await sha256OfFile(join(night, "a.fits")), sha256Of(theirs), log);
  assert.equal(await sha256OfFile(join(night, "a~2.fits")), sha256Of(second), log);
});

for (const method of ["scp", "rsync"] as const) {
  Deno.test(`${method}: a copy changed at the destination since it was sent is kept; the new version goes beside it`, async () => {
    const sshd = await startSshd();
    const box = await sshSandbox(sshd, method, keys);
    try {
      await changedCopyKept({ ...box, dest: box.remote });
    } finally {
      await sshd.stop();
      await Deno.remove(box.root, { recursive: true });
    }
  });
}

Deno.test("ftp: a copy changed at the destination since it was sent is kept; the new version goes beside it", async () => {
  await withVsftpdAndRoot({}, "itx-ftp-changed-", async ({ server, root }) => {
    const box = await ftpDaemonSandbox(server, root, keys);
    await changedCopyKept(box);
  });
});
