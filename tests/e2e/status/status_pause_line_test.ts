/**
 * `status` says why a job is paused on its ledger line; the reason names a file, and a file
 * name with a line break must not break that line. A real daemon sends with scp to a real sshd
 * that is stopped before the file is written.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import type { JobPause } from "../../../src/ledger/daemon_lock.ts";
import { runCli, startCli } from "../../helpers/cli.ts";
import {
  exists,
  LEAST_CEILING_MS,
  listArrived,
  randomBytes,
  sha256OfFile,
  waitFor,
} from "../../helpers/files.ts";
import { freePort } from "../../helpers/net.ts";
import { standInPrograms } from "../../helpers/recording_tools.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { sshSandbox, startSshd, startSshDaemon } from "../../helpers/sshd.ts";
import { getJson, metricTotal, pausedJob, post, startStatusDaemon } from "../../helpers/status.ts";
import { withTmpfs } from "../../helpers/tmpfs.ts";

Deno.test("status: a job paused for a destination that cannot be reached is one line, whatever the file's name", async () => {
  await using running = await startSshDaemon("scp", "");
  const { sshd, box, daemon } = running;
  await daemon.waitForOutput("Watching");
  await sshd.halt();
  await Deno.writeFile(join(box.watch, "two\nlines.fits"), randomBytes(3000));
  let stdout = "";
  await waitFor(
    async () => {
      const out = await runCli(["status", "-c", box.config], { env: box.env });
      assert.equal(out.code, 0, out.stderr);
      stdout = out.stdout;
      return /paused: destination unreachable/.test(stdout);
    },
    LEAST_CEILING_MS,
    "status to say the job is paused",
  );
  const line = stdout.split("\n").find((text) => text.includes("paused: destination"))!;
  assert.match(
    line,
    /^Job default: .*; paused: destination unreachable since .*two\\nlines\.fits/,
  );
  assert.ok(
    !stdout.split("\n").some((text) => text.startsWith("lines.fits")),
    `no line begins inside the file's name:\n${stdout}`,
  );
});

Deno.test("status: a reload (SIGHUP) that changes the job while the destination cannot be reached keeps since when it could not be reached", async () => {
  const port = freePort();
  await using running = await startSshDaemon("rsync", `127.0.0.1:${port}`);
  const { sshd, box, daemon } = running;
  // The live line's and the ledger line's "since", as `status` prints them.
  const sinces = async () => {
    const out = await runCli(["status", "-c", box.config], { env: box.env });
    assert.equal(out.code, 0, out.stderr);
    const live = /Job default: unreachable since ([0-9: -]+):/.exec(out.stdout)?.[1];
    const paused = /paused: destination unreachable since ([0-9: -]+) /.exec(out.stdout)?.[1];
    return { live, paused, stdout: out.stdout };
  };
  await daemon.waitForOutput("Watching");
  await sshd.halt();
  const source = join(box.watch, "a.fits");
  await Deno.writeFile(source, randomBytes(3000));
  let before = await sinces();
  await waitFor(
    async () => (before = await sinces()).live !== undefined && before.paused !== undefined,
    LEAST_CEILING_MS,
    "status to say the destination cannot be reached",
  );
  // The clock moves on to a later second before the reload.
  const outage = Date.now();
  await waitFor(() => Date.now() - outage > 1100, LEAST_CEILING_MS, "a later second");
  // A changed setting: the job starts again (one that did not change goes on as it is).
  await Deno.writeTextFile(box.config, "retry_attempts: 4\n", { append: true });
  daemon.process.kill("SIGHUP");
  await daemon.waitForOutput("Reload: job default: retry_attempts 3 -> 4");
  // The next runner goes on from the pause, probes the destination and finds it still down.
  const probed = await metricTotal(`http://127.0.0.1:${port}`, "image_transfer_probes_total");
  await waitFor(
    async () =>
      await metricTotal(`http://127.0.0.1:${port}`, "image_transfer_probes_total") > probed,
    LEAST_CEILING_MS,
    "the next runner's probe",
  );
  let after = await sinces();
  await waitFor(
    async () => (after = await sinces()).live !== undefined && after.paused !== undefined,
    LEAST_CEILING_MS,
    "status after the reload",
  );
  assert.deepEqual([after.live, after.paused], [before.live, before.paused], after.stdout);
  // A reload that changes nothing: the job goes on as it is, and so does what status says of it.
  daemon.process.kill("SIGHUP");
  await daemon.waitForOutput("Reload: job(s) default go on untouched");
  let untouched = await sinces();
  await waitFor(
    async () => (untouched = await sinces()).live !== undefined && untouched.paused !== undefined,
    LEAST_CEILING_MS,
    "status after the reload that changed nothing",
  );
  assert.deepEqual(
    [untouched.live, untouched.paused],
    [before.live, before.paused],
    untouched.stdout,
  );

  await sshd.restart();
  await daemon.waitForOutput("Successfully transferred");
  const [arrived] = await listArrived(box.remote);
  assert.equal(await sha256OfFile(join(box.remote, arrived)), await sha256OfFile(source));
});

Deno.test("status: after a reload, a paused job's line keeps since when it paused while the reason names another file", async () => {
  // A destination on a read-only disk: every file fails as no one file would, the job pauses,
  // and each refusal names its file.
  const readOnly = await Deno.makeTempDir({ prefix: "itx-ro-" });
  try {
    await withTmpfs(readOnly, "1m", async () => {
      await using running = await startStatusDaemon({
        remote_base_path: join(readOnly, "sub"),
        retry_delay_seconds: 1,
      });
      const { config, daemon, root } = running;
      const env = { HOME: join(root, "home") };
      const pauseLine = async () => {
        const out = await runCli(["status", "-c", config], { env });
        assert.equal(out.code, 0, out.stderr);
        const found = /paused: destination .* since ([0-9: -]+) \(Cannot send .*\/(\w)\.fits/
          .exec(out.stdout);
        return { since: found?.[1], file: found?.[2], stdout: out.stdout };
      };
      for (const name of ["a", "b"]) {
        await Deno.writeFile(join(running.watch, `${name}.fits`), randomBytes(3000));
      }
      let before = await pauseLine();
      await waitFor(
        async () => (before = await pauseLine()).since !== undefined,
        LEAST_CEILING_MS,
        "status to say the job is paused",
      );
      // The clock moves on to a later second before the reload.
      const paused = Date.now();
      await waitFor(() => Date.now() - paused > 1100, LEAST_CEILING_MS, "a later second");
      await Deno.writeTextFile(config, "retry_attempts: 4\n", { append: true });
      daemon.process.kill("SIGHUP");
      await daemon.waitForOutput("Reload: job default: retry_attempts 3 -> 4");
      // The next runner goes on from the pause and probes the destination, still refused.
      const probed = await metricTotal(running.base, "image_transfer_probes_total");
      await waitFor(
        async () => await metricTotal(running.base, "image_transfer_probes_total") > probed,
        LEAST_CEILING_MS,
        "the next runner's probe",
      );
      // Its pause named one file as it began; its refusals name both files in turn.
      const named = new Set(
        [...daemon.stderr().split("takes no file").at(-1)!.matchAll(/\/(\w)\.fits/g)]
          .slice(0, 1).map((m) => m[1]),
      );
      await waitFor(
        async () => {
          const now = await pauseLine();
          if (now.since === undefined) return false;
          assert.equal(now.since, before.since, `since moved after the reload:\n${now.stdout}`);
          named.add(now.file!);
          return named.size === 2;
        },
        LEAST_CEILING_MS,
        "status to name the other file",
      );
    }, { readOnly: true });
  } finally {
    await Deno.remove(readOnly, { recursive: true });
  }
});

Deno.test("status: a pause that begins anew while the job recovers from an earlier one says since when it began, as the page does", async () => {
  // A `sync` for the server's sessions that waits while `gate` is there (and says so in `held`):
  // the probe's flush (remote_sync) is held, so the job can be paused from the page before its
  // next batch, and that batch sent only once the server is down again.
  const tools = await Deno.makeTempDir({ prefix: "itx-sync-gate-" });
  await Deno.chmod(tools, 0o777);
  const gate = join(tools, "gate");
  const held = join(tools, "held");
  await standInPrograms(tools, {
    sync: `if [ -e '${gate}' ]; then\n  : >'${held}'\n` +
      `  while [ -e '${gate}' ]; do sleep 0.05; done\nfi\nexec /usr/bin/sync "$@"\n`,
  });
  const sshd = await startSshd({ sessionEnv: { PATH: `${tools}:/usr/bin:/bin` } });
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const box = await sshSandbox(sshd, "scp", {
    remote_sync: true,
    stability_window_seconds: 0.3,
    retry_delay_seconds: 0.2,
    rescan_interval_seconds: 0,
    status_listen: `127.0.0.1:${port}`,
  });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    const paused = () => pausedJob(box.config, box.env);
    const down = () => daemon.stderr().split("cannot be reached:").length - 1;
    await sshd.halt();
    const sources = ["a", "b", "c"].map((name) => join(box.watch, `${name}.fits`));
    for (const source of sources) await Deno.writeFile(source, randomBytes(3000));
    let first: JobPause | undefined;
    await waitFor(
      async () => (first = await paused())?.state === "destination unreachable",
      LEAST_CEILING_MS,
      "the job to pause",
    );
    // The server back: the probe arrives, its flush held until the job is paused from the page.
    await Deno.writeTextFile(gate, "");
    await sshd.restart();
    await waitFor(() => exists(held), LEAST_CEILING_MS, "the probe's flush");
    assert.equal((await post(base, "/api/jobs/default/pause")).status, 200);
    await Deno.remove(gate);
    await daemon.waitForOutput("Successfully transferred");
    // Recovering (one file arrived, two wait): the server goes down again.
    await sshd.halt();
    const resumedAt = Date.now();
    assert.ok(Date.parse(first!.since) < resumedAt);
    assert.equal((await post(base, "/api/jobs/default/resume")).status, 200);
    await waitFor(() => down() === 2, LEAST_CEILING_MS, "the pause anew to be said");
    let again: JobPause | undefined;
    await waitFor(
      async () => (again = await paused())?.state === "destination unreachable",
      LEAST_CEILING_MS,
      "status to say the pause",
    ).catch((error) => {
      // What status said last, and what the daemon did meanwhile, for a failure seen once.
      const said = `status said ${JSON.stringify(again ?? null)}; the daemon said:\n`;
      throw new Error(`${error.message}; ${said}${daemon.stderr()}`, { cause: error });
    });
    assert.ok(Date.parse(again!.since) >= resumedAt, `${again!.since}, the first ${first!.since}`);
    const api = await getJson<{ jobs: Array<{ state: string; since: number }> }>(
      base,
      "/api/status",
    );
    assert.equal(api.jobs[0].state, "unreachable");
    assert.ok(api.jobs[0].since >= resumedAt);

    await sshd.restart();
    await waitFor(
      async () => (await listArrived(box.remote)).length === 3,
      LEAST_CEILING_MS,
      "every file to arrive",
    );
    for (const source of sources) {
      const [copy] = (await listArrived(box.remote)).filter((path) =>
        path.endsWith(basename(source))
      );
      assert.equal(await sha256OfFile(join(box.remote, copy)), await sha256OfFile(source));
    }
  } finally {
    await daemon.stop();
    await sshd.stop();
    await Deno.remove(box.root, { recursive: true });
    await Deno.remove(tools, { recursive: true });
  }
});

Deno.test("status: with the status page off, a job outside a transfer window says so, and until when, as its files wait", async () => {
  // Paused every minute, resumed at new year: inside the window from the start.
  await using box = await cliSandbox({
    status_listen: "",
    schedules: [
      { cron: "* * * * *", action: "pause" },
      { cron: "30 0 0 1 1 *", timezone: "UTC", action: "resume" },
    ],
  });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(3000));
    let stdout = "";
    await waitFor(
      async () => {
        const out = await runCli(["status", "-c", box.config], { env: box.env });
        assert.equal(out.code, 0, out.stderr);
        stdout = out.stdout;
        return /^Job default: pending 1,/m.test(stdout);
      },
      LEAST_CEILING_MS,
      "status to count the file waiting",
    );
    assert.match(
      stdout,
      /^Job default: pending 1, .*; paused: outside a transfer window \(until its resume at \d{4}-01-01 00:00:30 \+00:00\)$/m,
    );
  } finally {
    await daemon.stop();
  }
  // With no daemon running nothing is paused: the next start decides.
  const out = await runCli(["status", "-c", box.config], { env: box.env });
  assert.doesNotMatch(out.stdout, /outside a transfer window/, out.stdout);
});

Deno.test("status: a job paused for a destination that takes no file (read-only) is failing on the live line, its pause line, the page's API and /metrics alike", async () => {
  const readOnly = await Deno.makeTempDir({ prefix: "itx-ro-" });
  try {
    await withTmpfs(readOnly, "1m", async () => {
      await using running = await startStatusDaemon({
        remote_base_path: join(readOnly, "sub"),
        retry_delay_seconds: 1,
      });
      const { config, daemon, root, base } = running;
      await Deno.writeFile(join(running.watch, "a.fits"), randomBytes(3000));
      let stdout = "";
      await waitFor(
        async () => {
          const out = await runCli(["status", "-c", config], { env: { HOME: join(root, "home") } });
          assert.equal(out.code, 0, out.stderr);
          stdout = out.stdout;
          return /; paused: /.test(stdout) && /^ {2}Job default: \w+ since/m.test(stdout);
        },
        LEAST_CEILING_MS,
        "status to say the job is paused",
      );
      assert.match(stdout, /^ {2}Job default: failing since .*read-only/m);
      assert.match(stdout, /^Job default: .*; paused: destination failing since .*read-only/m);
      const api = await getJson<{ jobs: Array<{ state: string }> }>(base, "/api/status");
      assert.equal(api.jobs[0].state, "failing");
      const metrics = await (await fetch(`${base}/metrics`)).text();
      assert.match(metrics, /image_transfer_job_state\{[^}]*state="failing"\} 1/);
      // The log says it as the job's state does: no file is taken, not a host out of reach.
      assert.match(daemon.stderr(), /The destination .* takes no file: .*read-only/i);
      assert.doesNotMatch(daemon.stderr(), /cannot be reached/);
    }, { readOnly: true });
  } finally {
    await Deno.remove(readOnly, { recursive: true });
  }
});

Deno.test("status: a file waiting for a destination that cannot be reached is listed as waiting for it, not among the failed ones beside failed 0", async () => {
  for (const listen of [`127.0.0.1:${freePort()}`, ""]) {
    await using running = await startSshDaemon("scp", listen);
    const { sshd, box, daemon } = running;
    await daemon.waitForOutput("Watching");
    await sshd.halt();
    await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(3000));
    let stdout = "";
    await waitFor(
      async () => {
        const out = await runCli(["status", "-c", box.config], { env: box.env });
        assert.equal(out.code, 0, out.stderr);
        stdout = out.stdout;
        return /paused: destination unreachable/.test(stdout) &&
          /^ {2}\S+ \S+ {2}\[default\] a\.fits: /m.test(stdout);
      },
      LEAST_CEILING_MS,
      "status to list the file its try found the destination down for",
    );
    const page = listen === "" ? "without the page" : "with the page";
    assert.match(stdout, /Job default: pending 1, .* failed 0/, `${page}:\n${stdout}`);
    assert.match(stdout, /\nFiles whose last attempt failed \(0\):\n/, `${page}:\n${stdout}`);
    assert.match(
      stdout,
      /\nFiles waiting for the destination \(1\): pending, not failed .*\n {2}\S+ \S+ {2}\[default\] a\.fits: .*Connection refused/,
      `${page}:\n${stdout}`,
    );
    assert.doesNotMatch(stdout, /attempt\(s\)\)/, `${page}:\n${stdout}`);
  }
});
