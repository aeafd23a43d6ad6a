/**
 * `resend` says when the running daemon sends the files again, as its state says: within a
 * minute while the job sends; while the job is paused (from its status page, or outside a
 * transfer window) or its destination cannot be reached, that they are queued and go once it
 * resumes or answers again, naming why. Real daemons (`local`; scp to a real sshd that is
 * stopped), a real status page, bytes checked at the destination.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { reloadDaemon, runCli, startCli } from "../../helpers/cli.ts";
import { listArrived, randomBytes, waitFor } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { getJson, post, startStatusDaemon } from "../../helpers/status.ts";
import { freePort } from "../../helpers/net.ts";
import { startSshDaemon } from "../../helpers/sshd.ts";

interface Status {
  jobs: Array<{ job: string; state: string; sent: number; queue: { queued: number } }>;
}

/** Every copy at `dest` holds `bytes`; returns how many there are. */
async function copiesOf(dest: string, bytes: Uint8Array): Promise<number> {
  const arrived = await listArrived(dest);
  for (const rel of arrived) assert.deepEqual(await Deno.readFile(join(dest, rel)), bytes, rel);
  return arrived.length;
}

Deno.test("resend: while the running daemon's job is paused from its status page, it says the files are queued and go once the job is resumed; they go then", async () => {
  await using d = await startStatusDaemon({ rescan_interval_seconds: 0 });
  const env = { HOME: join(d.root, "home") };
  const job = async () => (await getJson<Status>(d.base, "/api/status")).jobs[0];
  const bytes = randomBytes(3000);
  await Deno.writeFile(join(d.watch, "flat.fits"), bytes);
  await waitFor(async () => (await job()).sent === 1, 60_000, "the file sent");

  // Sending: within a minute, as before (the daemon looks for files marked once a minute).
  const sending = await runCli(["resend", "--all", "-c", d.config], { env });
  assert.equal(sending.code, 0, sending.stderr);
  assert.match(sending.stdout, /^The running daemon sends them within a minute\.$/m);
  await waitFor(async () => (await job()).sent === 2, 120_000, "the file sent again");

  // Paused from the page: queued, and it goes once resumed.
  assert.equal((await post(d.base, "/api/jobs/default/pause")).status, 200);
  const paused = await runCli(["resend", "--all", "-c", d.config], { env });
  assert.equal(paused.code, 0, paused.stderr);
  assert.match(paused.stdout, /job default: 1 file\(s\) will be sent again/);
  assert.match(
    paused.stdout,
    /^Job default: paused from the status page: its files are queued and go once it is resumed there\.$/m,
  );
  assert.doesNotMatch(paused.stdout, /within a minute/);
  await waitFor(async () => (await job()).queue.queued === 1, 120_000, "the file queued");
  assert.equal((await job()).sent, 2, "nothing sent while paused");
  assert.equal((await post(d.base, "/api/jobs/default/resume")).status, 200);
  await waitFor(async () => (await job()).sent === 3, 120_000, "the file sent once resumed");
  assert.ok(await copiesOf(d.dest, bytes) >= 1, d.daemon.stderr());
});

Deno.test("resend: while the running daemon's job is paused outside a transfer window, it says so, with its status page and without one", async () => {
  await using box = await cliSandbox({ rescan_interval_seconds: 0, status_listen: "" });
  const bytes = randomBytes(3000);
  // One file for each daemon below: a file marked is no longer one that arrived.
  await Deno.writeFile(join(box.watch, "dark1.fits"), bytes);
  await Deno.writeFile(join(box.watch, "dark2.fits"), bytes);
  // Sent before the window closed.
  const once = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(once.code, 0, once.stderr);
  assert.equal(await copiesOf(box.dest, bytes), 2);
  // A pause every minute and no resume: inside a pause window from the start.
  const schedules = [{ cron: "* * * * *", action: "pause" }];
  for (const [index, statusListen] of ["", `127.0.0.1:${freePort()}`].entries()) {
    await box.rewrite({ rescan_interval_seconds: 0, status_listen: statusListen, schedules });
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput("Watching");
      await daemon.waitForOutput(/Transfers of job default paused/);
      const name = `dark${index + 1}.fits`;
      const out = await runCli(["resend", "--name", name, "-c", box.config], { env: box.env });
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, /job default: 1 file\(s\) will be sent again/);
      assert.match(
        out.stdout,
        /^Job default: paused outside a transfer window \(schedules\): its files are queued and go once it opens\.$/m,
        `status_listen ${JSON.stringify(statusListen)}:\n${out.stdout}`,
      );
      assert.doesNotMatch(out.stdout, /within a minute/);
    } finally {
      const status = await daemon.stop();
      assert.equal(status.code, 0, daemon.stderr());
    }
  }
});

Deno.test("resend: while the running daemon's destination cannot be reached (scp, sshd stopped), it says the files are queued and go once it answers again; they go then", async () => {
  // The daemon's state alone (daemon.json) tells the pause: no status page.
  await using running = await startSshDaemon("scp", "");
  const { sshd, box, daemon } = running;
  const sent = (name: string) =>
    daemon.stderr().split("\n").filter((line) =>
      line.includes("Successfully transferred") && line.includes(`/${name} ->`)
    ).length;
  await daemon.waitForOutput("Watching");
  const bytes = randomBytes(3000);
  await Deno.writeFile(join(box.watch, "first.fits"), bytes);
  await waitFor(() => sent("first.fits") === 1, 60_000, "the file sent");
  await sshd.halt();
  await Deno.writeFile(join(box.watch, "second.fits"), bytes);
  await waitFor(
    async () =>
      (await runCli(["status", "-c", box.config], { env: box.env })).stdout
        .includes("paused: destination unreachable"),
    60_000,
    "the job paused",
  );
  const out = await runCli(["resend", "--name", "first.fits", "-c", box.config], {
    env: box.env,
  });
  assert.equal(out.code, 0, out.stderr);
  assert.match(
    out.stdout,
    /^Job default: paused: destination unreachable \(.+\): its files are queued and go once it answers again\.$/m,
  );
  assert.doesNotMatch(out.stdout, /within a minute/);
  await sshd.restart();
  await waitFor(() => sent("first.fits") === 2, 120_000, "the file sent again");
  await waitFor(() => sent("second.fits") === 1, 60_000, "the other file sent");
  assert.ok(await copiesOf(box.remote, bytes) >= 2, daemon.stderr());
});

Deno.test("resend and status: for a job the running daemon does not run, the restart they suggest has the -c given, and none where none was; the files go once it reloads", async () => {
  await using box = await cliSandbox({ rescan_interval_seconds: 0 });
  const bytes = randomBytes(3000);
  await Deno.writeFile(join(box.watch, "dark1.fits"), bytes);
  await Deno.writeFile(join(box.watch, "dark2.fits"), bytes);
  const once = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(once.code, 0, once.stderr);
  // The same config as the default file, and under a name a shell must be given quoted.
  const defaults = join(box.env.HOME, ".config", "image-transfer");
  await Deno.mkdir(defaults, { recursive: true });
  await Deno.symlink(box.config, join(defaults, "config.yaml"));
  await Deno.symlink(box.config, join(box.root, "my config.yaml"));
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    // The job renamed in the file, not reloaded yet: the daemon runs "default", not "cam1".
    await box.rewrite({ rescan_interval_seconds: 0, name: "cam1" });
    const resend = (args: string[]) => runCli(["resend", ...args], { env: box.env, cwd: box.root });
    const plain = await resend(["--name", "dark1.fits"]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(
      plain.stdout,
      /^Job cam1: the running daemon does not run it \(not in the config it loaded\): its files are queued and go once it does \(reload it with SIGHUP, or image-transfer restart\)\.$/m,
    );
    const given = await resend(["-c", "my config.yaml", "--name", "dark2.fits"]);
    assert.equal(given.code, 0, given.stderr);
    assert.match(
      given.stdout,
      /^Job cam1: .* \(reload it with SIGHUP, or image-transfer -c 'my config\.yaml' restart\)\.$/m,
    );
    // status says it of the job too, with the config it was given.
    const status = (args: string[]) => runCli([...args, "status"], { env: box.env, cwd: box.root });
    const notRun =
      "; not run by the daemon: it is not in the config the daemon loaded (reload it " +
      "with SIGHUP, or ";
    const plainStatus = await status([]);
    assert.ok(
      plainStatus.stdout.includes(`${notRun}image-transfer restart)\n`),
      plainStatus.stdout,
    );
    const givenStatus = await status(["-c", "my config.yaml"]);
    const quoted = `'${join(box.root, "my config.yaml")}'`;
    assert.ok(
      givenStatus.stdout.includes(`${notRun}image-transfer -c ${quoted} restart)\n`),
      givenStatus.stdout,
    );
    await reloadDaemon(daemon, 1);
    await waitFor(
      () => daemon.stderr().split("Successfully transferred").length - 1 === 2,
      120_000,
      "both files sent again",
    );
    assert.equal(await copiesOf(box.dest, bytes), 2);
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
});
