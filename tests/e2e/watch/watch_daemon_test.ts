/**
 * The running daemon (real CLI, the product's permissions, `local` method)
 * against hostile watch-folder entries: a FIFO created while it runs, a name
 * that is not valid UTF-8, and symbolic links under every `symlinks` policy,
 * present at start-up (scan) and created while it runs (events).
 */
import { isTempName } from "../../../src/layout/destination.ts";
import assert from "node:assert/strict";
import { freePort } from "../../helpers/net.ts";
import { join } from "node:path";
import { runCli, runProgram, startCli } from "../../helpers/cli.ts";
import { listFiles, randomBytes, waitFor, writeConfig } from "../../helpers/files.ts";

interface Sandbox {
  root: string;
  watch: string;
  dest: string;
  outside: string;
  config: string;
  env: Record<string, string>;
}

async function sandbox(extra: Record<string, unknown> = {}): Promise<Sandbox> {
  const root = await Deno.makeTempDir({ prefix: "itx-watchd-" });
  const box = {
    root,
    watch: join(root, "watch"),
    dest: join(root, "dest"),
    outside: join(root, "outside"),
    config: join(root, "config.yaml"),
    env: { HOME: join(root, "home") },
  };
  for (const dir of [box.watch, box.outside, box.env.HOME]) await Deno.mkdir(dir);
  await writeConfig(box.config, {
    watch_path: box.watch,
    remote_base_path: box.dest,
    transfer_method: "local",
    stability_window_seconds: 1,
    night_timezone: "UTC",
    state_dir: join(root, "state"),
    log_file: "",
    ...extra,
  });
  return box;
}

async function run(program: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(program, { args, stderr: "piped" }).output();
  assert.ok(out.success, `${program}: ${new TextDecoder().decode(out.stderr)}`);
}

/** Delivered files without their night folder, mapped to their content. */
async function delivered(dest: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const rel of await listFiles(dest).catch(() => [])) {
    // A copy still under its temporary name is not delivered (and may be gone by now).
    if (rel.split("/").some(isTempName)) continue;
    out.set(rel.slice(rel.indexOf("/") + 1), await Deno.readTextFile(join(dest, rel)));
  }
  return out;
}

/** Lines of `text` that contain `needle`. */
function linesWith(text: string, needle: string): string[] {
  return text.split("\n").filter((line) => line.includes(needle));
}

Deno.test("daemon: a FIFO (or a link to one, a socket, a device) created while it runs does not stall it; one log line each", async () => {
  const box = await sandbox();
  // A FIFO present at start-up, which gets an event while the daemon runs.
  await run("mkfifo", [join(box.watch, "old.fits")]);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  let listener: Deno.Listener | undefined;
  try {
    await daemon.waitForOutput("Watching");
    await run("mkfifo", [join(box.watch, "pipe.fits")]);
    await new Promise((r) => setTimeout(r, 500));
    const bytes = randomBytes(256 * 1024);
    await Deno.writeFile(join(box.watch, "after.fits"), bytes);
    // A watcher stalled on the FIFO would never see it (there are no rescans while watching works).
    await waitFor(
      async () => {
        const files = await listFiles(box.dest).catch(() => []);
        const hit = files.find((f) => f.endsWith("/after.fits"));
        if (hit === undefined) return false;
        assert.deepEqual(await Deno.readFile(join(box.dest, hit)), bytes);
        return true;
      },
      60_000,
      "after.fits to arrive",
    );

    // The FIFO present at start-up gets an event (chmod): the watcher must not stall on it either.
    await Deno.chmod(join(box.watch, "old.fits"), 0o600);
    await new Promise((r) => setTimeout(r, 300));
    const second = randomBytes(1000);
    await Deno.writeFile(join(box.watch, "second.fits"), second);
    await waitFor(
      async () => (await listFiles(box.dest)).some((f) => f.endsWith("/second.fits")),
      60_000,
      "second.fits to arrive",
    );

    // A link to a FIFO outside (the watcher opens through links), a socket and a device.
    await run("mkfifo", [join(box.outside, "far-pipe")]);
    await Deno.symlink(join(box.outside, "far-pipe"), join(box.watch, "pipe-link.fits"));
    listener = Deno.listen({ transport: "unix", path: join(box.watch, "sock.fits") });
    await run("mknod", [join(box.watch, "null.fits"), "c", "1", "3"]);
    await new Promise((r) => setTimeout(r, 300));
    const third = randomBytes(3000);
    await Deno.writeFile(join(box.watch, "third.fits"), third);
    await waitFor(
      async () => (await listFiles(box.dest)).some((f) => f.endsWith("/third.fits")),
      60_000,
      "third.fits to arrive",
    );
    // Nothing else is sent (an observation period: on a slow machine it only proves less).
    await new Promise((r) => setTimeout(r, 1500));
    const sent = (await listFiles(box.dest)).map((f) => f.split("/")[1]).sort();
    assert.deepEqual(sent, ["after.fits", "second.fits", "third.fits"]);
    for (const rel of sent) {
      const want = { "after.fits": bytes, "second.fits": second, "third.fits": third }[rel];
      const path = (await listFiles(box.dest)).find((f) => f.endsWith(`/${rel}`))!;
      assert.deepEqual(await Deno.readFile(join(box.dest, path)), want, rel);
    }
    const log = daemon.stderr();
    assert.equal(linesWith(log, "pipe-link.fits").length, 1, log);
    assert.match(
      linesWith(log, "sock.fits")[0] ?? "",
      /Skipped .*sock\.fits of job default: socket/,
      log,
    );
    assert.equal(linesWith(log, "sock.fits").length, 1, log);
    assert.match(
      linesWith(log, "null.fits")[0] ?? "",
      /Skipped .*null\.fits of job default: character device/,
    );
    assert.equal(linesWith(log, "null.fits").length, 1, log);
    assert.equal(linesWith(log, "pipe.fits").length, 1, log);
    assert.match(
      linesWith(log, "pipe.fits")[0],
      /INFO .*Skipped .*pipe\.fits of job default: FIFO/,
    );
    assert.equal(linesWith(log, "old.fits").length, 1, log);
    assert.doesNotMatch(log, /before it was complete/);
  } finally {
    const status = await daemon.stop();
    listener?.close();
    assert.equal(status.code, 0, daemon.stderr());
    await Deno.remove(box.root, { recursive: true });
  }
});

/** Create `dir/<prefix><0xff><suffix>` and write it in `steps` appends (python3: any bytes). */
async function writeUndecodable(dir: string, prefix: string, steps: number): Promise<void> {
  await run("python3", [
    "-c",
    "import os, sys, time\n" +
    "p = os.path.join(os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2]) + b'\\xff.fits')\n" +
    "for i in range(int(sys.argv[3])):\n" +
    "  with open(p, 'ab') as f: f.write(b'x' * 1000)\n" +
    "  time.sleep(0.1)\n",
    dir,
    prefix,
    String(steps),
  ]);
}

Deno.test("daemon: a name that is not UTF-8 gives one ERROR line, watching goes on, status, the API and the metrics show it", async () => {
  const port = freePort();
  const box = await sandbox({ status_listen: `127.0.0.1:${port}` });
  await writeUndecodable(box.watch, "early", 1);
  await Deno.mkdir(join(box.watch, "night"));
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await writeUndecodable(box.watch, "caf", 5);
    await writeUndecodable(join(box.watch, "night"), "deep", 2);
    const bytes = randomBytes(5000);
    await Deno.writeFile(join(box.watch, "ok.fits"), bytes);
    await waitFor(
      async () => (await delivered(box.dest)).has("ok.fits"),
      15_000,
      "ok.fits to arrive (the watcher still works)",
    );
    await daemon.waitForOutput("caf\\ufffd.fits", 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    const log = daemon.stderr();
    const late = linesWith(log, "caf\\ufffd.fits");
    assert.equal(late.length, 1, log);
    assert.match(
      late[0],
      new RegExp(`ERROR .*caf\\\\ufffd\\.fits in folder ${box.watch} of job default: .*UTF-8`),
    );
    assert.equal(linesWith(log, "early\\ufffd.fits").length, 1, log);
    await daemon.waitForOutput("deep\\ufffd.fits", 10_000);
    assert.equal(linesWith(daemon.stderr(), "deep\\ufffd.fits").length, 1, daemon.stderr());
    assert.match(
      linesWith(daemon.stderr(), "deep\\ufffd.fits").join("\n"),
      new RegExp(
        `^[^\\n]*ERROR .*deep\\\\ufffd\\.fits in folder ${
          join(box.watch, "night")
        } of job default: `,
      ),
    );
    assert.doesNotMatch(log, /before it was complete/);
    // No event but the name's own was lost: nothing is watched again, nothing warned.
    assert.doesNotMatch(daemon.stderr(), /WARNING|lost events|watching .* again/);
    assert.deepEqual([...(await delivered(box.dest)).keys()], ["ok.fits"]);

    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /Job default: skipped 3:/);
    assert.match(status.stdout, /NEEDS ATTENTION: .*\/caf\\ufffd\.fits: .*not valid UTF-8/);
    assert.match(status.stdout, /NEEDS ATTENTION: .*\/early\\ufffd\.fits/);
    assert.match(status.stdout, /NEEDS ATTENTION: .*\/night\/deep\\ufffd\.fits/);
    // The running daemon says it too, where monitoring looks.
    const api = await (await fetch(`http://127.0.0.1:${port}/api/status`)).json();
    assert.equal(api.jobs[0].cannotSend, 3, JSON.stringify(api.jobs[0]));
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /^image_transfer_cannot_send_total\{job="default",method="local"\} 3$/m);
    const checked = await runProgram("promtool", ["check", "metrics"], { stdin: metrics });
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    // And status, on the job's live line as in --json, the same number.
    assert.match(
      status.stdout,
      /^ {2}Job default: .*\n(?: {4}.*\n)*? {4}3 file\(s\) or folder\(s\) found since the daemon started could not be sent /m,
      status.stdout,
    );
    const json = await runCli(["status", "--json", "-c", box.config], { env: box.env });
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).live.jobs[0].cannotSend, 3, json.stdout);
  } finally {
    await daemon.stop();
    await Deno.remove(box.root, { recursive: true });
  }
});

/** What each policy delivers (name -> content), links made before and while the daemon runs. */
const EXPECTED: Record<string, Record<string, string>> = {
  skip: { "plain.fits": "PLAIN", "data/real.fits": "REAL", "marker.fits": "M" },
  inside: {
    "plain.fits": "PLAIN",
    "data/real.fits": "REAL",
    "marker.fits": "M",
    "pre-inner.fits": "PLAIN",
    "ev-inner.fits": "REAL",
  },
  follow: {
    "plain.fits": "PLAIN",
    "data/real.fits": "REAL",
    "marker.fits": "M",
    "pre-inner.fits": "PLAIN",
    "ev-inner.fits": "REAL",
    "pre-secret.fits": "SECRET",
    "pre-up.fits": "SECRET",
    "ev-secret.fits": "SECRET",
    "pre-outdir/secret.fits": "SECRET",
    "ev-outdir/secret.fits": "SECRET",
    "data/ev-up.fits": "SECRET",
  },
};

for (const policy of ["skip", "inside", "follow"]) {
  Deno.test(`daemon: symlinks: ${policy}, links found at start-up and created while running`, async () => {
    // The runtime's watcher drops events whose real path is outside the watch folder, so
    // links to outside made while running are seen by the next rescan: make that soon.
    const keys = { rescan_interval_seconds: 2, ...(policy === "skip" ? {} : { symlinks: policy }) };
    const box = await sandbox(keys);
    await Deno.writeTextFile(join(box.outside, "secret.fits"), "SECRET");
    await Deno.writeTextFile(join(box.watch, "plain.fits"), "PLAIN");
    await Deno.mkdir(join(box.watch, "data"));
    await Deno.writeTextFile(join(box.watch, "data", "real.fits"), "REAL");
    await Deno.symlink(join(box.outside, "secret.fits"), join(box.watch, "pre-secret.fits"));
    await Deno.symlink("../outside/secret.fits", join(box.watch, "pre-up.fits"));
    await Deno.symlink("plain.fits", join(box.watch, "pre-inner.fits"));
    await Deno.symlink(box.outside, join(box.watch, "pre-outdir"));
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput("Watching");
      await Deno.symlink(join(box.outside, "secret.fits"), join(box.watch, "ev-secret.fits"));
      await Deno.symlink(join(box.watch, "data", "real.fits"), join(box.watch, "ev-inner.fits"));
      await Deno.symlink(box.outside, join(box.watch, "ev-outdir"));
      await Deno.symlink("../../outside/secret.fits", join(box.watch, "data", "ev-up.fits"));
      await new Promise((r) => setTimeout(r, 300));
      await Deno.writeTextFile(join(box.watch, "marker.fits"), "M");
      const expected = EXPECTED[policy];
      await waitFor(
        async () => (await delivered(box.dest)).size >= Object.keys(expected).length,
        20_000,
        `${Object.keys(expected).length} files to arrive`,
      );
      // Anything not allowed would have arrived with the others; two more rescans run meanwhile.
      await new Promise((r) => setTimeout(r, 4500));
      const got = Object.fromEntries(await delivered(box.dest));
      assert.deepEqual(got, expected, daemon.stderr());
      const log = daemon.stderr();
      if (policy !== "follow") {
        const names = [
          "pre-secret.fits",
          "pre-up.fits",
          "ev-secret.fits",
          "pre-outdir",
          "ev-outdir",
          "ev-up.fits",
        ];
        for (const name of names) {
          const lines = linesWith(log, `${name} of job default: symbolic link to`);
          assert.equal(lines.length, 1, `${name}:\n${log}`);
          assert.match(lines[0], /INFO/);
        }
      } else {
        assert.equal(linesWith(log, "Following symbolic link").length >= 3, true, log);
      }
    } finally {
      await daemon.stop();
      await Deno.remove(box.root, { recursive: true });
    }
  });
}

Deno.test("run --dry-run lists every skipped entry with its reason; status counts them", async () => {
  const box = await sandbox({ exclude_patterns: ["calib", "*_test.fits"] });
  try {
    const w = (rel: string) => join(box.watch, rel);
    for (const rel of ["a.FITS", "b.fit", "c.txt", "x_test.fits", ".hidden.fits"]) {
      await Deno.writeTextFile(w(rel), rel);
    }
    await Deno.mkdir(w("calib"));
    await Deno.writeTextFile(w("calib/flat.fits"), "f");
    await run("mkfifo", [w("pipe.fits")]);
    await Deno.symlink(join(box.outside, "nothing.fits"), w("link.fits"));
    await writeUndecodable(box.watch, "bad", 1);

    const dry = await runCli(["run", "--dry-run", "-c", box.config], { env: box.env });
    assert.equal(dry.code, 0, dry.stderr);
    const lines = dry.stdout.trim().split("\n");
    const would = lines.filter((l) => l.startsWith("would transfer "));
    assert.deepEqual(would.map((l) => l.split(" -> ")[0].split("/").pop()).sort(), [
      "a.FITS",
      "b.fit",
    ]);
    const skipped = lines.filter((l) => l.startsWith("skipped ")).map((l) => l.slice(8));
    assert.deepEqual(skipped, [
      `${w(".hidden.fits")}: hidden (its name starts with a dot)`,
      `${w("bad\\ufffd.fits")}: the name is not valid UTF-8, so the file cannot be opened by it ` +
      "(\\ufffd stands for the bytes that are not UTF-8); rename it (`ls -b` shows the exact name)",
      `${w("c.txt")}: matches none of file_patterns`,
      `${w("calib")}/: folder matches exclude pattern calib`,
      `${w("link.fits")}: symbolic link to ${
        join(box.outside, "nothing.fits")
      }: links are not followed (symlinks: skip)`,
      `${w("pipe.fits")}: FIFO`,
      `${w("x_test.fits")}: matches exclude pattern *_test.fits`,
    ]);
    assert.match(dry.stdout, /job default: 2 file\(s\) would be transferred \(local\), 7 skipped/);
    assert.deepEqual(await listFiles(box.dest).catch(() => []), [], "a dry run sends nothing");

    const early = await runCli(["status", "-c", box.config], { env: box.env });
    assert.match(early.stdout, /No ledger yet/);
    assert.match(early.stdout, /Job default: skipped 7:/);
    // Each one with why, as the dry run says it.
    for (const line of skipped) assert.ok(early.stdout.includes(`${line}\n`), line);
    // The file whose name cannot be opened was not transferred: --once says so with its exit code.
    const once = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(once.code, 1, once.stderr);
    assert.match(
      once.stderr,
      /Not every file was transferred: 1 matching file\(s\) or folder\(s\) cannot be sent by their names or read/,
    );
    assert.equal((await listFiles(box.dest)).length, 2);
    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.match(status.stdout, /Job default: skipped 7:/);
    assert.match(status.stdout, /NEEDS ATTENTION: .*bad\\ufffd\.fits/);
    const json = JSON.parse(
      (await runCli(["status", "--json", "-c", box.config], { env: box.env })).stdout,
    );
    assert.equal(json.skipped[0].skipped, 7);
    assert.equal(json.skipped[0].attention.length, 1);
    assert.equal(json.skipped[0].entries.length, 7);
  } finally {
    await Deno.remove(box.root, { recursive: true });
  }
});

Deno.test("daemon: file_patterns match any case (the old tool's patterns), each skipped file logged once at INFO with why", async () => {
  const box = await sandbox({ file_patterns: ["*.fits", "*.FIT"], status_listen: "" });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    for (const name of ["a.FITS", "b.fit", "c.Fits", "d.fits"]) {
      await Deno.writeTextFile(join(box.watch, name), name);
    }
    // A skipped file written several times, and a hidden one.
    for (let i = 0; i < 3; i++) {
      await Deno.writeTextFile(join(box.watch, "notes.txt"), `${i}`, { append: true });
      await new Promise((r) => setTimeout(r, 200));
    }
    await Deno.writeTextFile(join(box.watch, ".hidden.fits"), "h");
    await waitFor(
      async () => (await delivered(box.dest)).size === 4,
      20_000,
      "a.FITS, b.fit, c.Fits and d.fits to arrive",
    );
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(
      Object.fromEntries(await delivered(box.dest)),
      { "a.FITS": "a.FITS", "b.fit": "b.fit", "c.Fits": "c.Fits", "d.fits": "d.fits" },
    );
    const log = daemon.stderr();
    const notes = linesWith(log, "notes.txt");
    assert.equal(notes.length, 1, log);
    // The line names its job, as the job's other lines do (several jobs may skip files).
    assert.match(
      notes[0],
      /INFO +\[watch\] Skipped .*notes\.txt of job default: matches none of file_patterns$/,
    );
    // A hidden name (how most writers copy a file in) only with -v; status lists it.
    assert.equal(linesWith(log, ".hidden.fits").length, 0, log);
  } finally {
    await daemon.stop();
    await Deno.remove(box.root, { recursive: true });
  }
});

Deno.test("daemon: the files its patterns leave out at start are said in one line with their count and a few of them, not one line each", async () => {
  const box = await sandbox({ status_listen: "", exclude_patterns: ["*_test.fits"] });
  try {
    for (let i = 0; i < 500; i++) {
      await Deno.writeTextFile(join(box.watch, `notes ${String(i).padStart(3, "0")}.txt`), "n");
    }
    await Deno.writeTextFile(join(box.watch, "x_test.fits"), "x");
    const frames = new Map([["a.fits", "frame a"], ["b.fits", "frame b"]]);
    for (const [name, text] of frames) await Deno.writeTextFile(join(box.watch, name), text);
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput("Watching");
      await waitFor(async () => (await delivered(box.dest)).size === 2, 20_000, "a.fits, b.fits");
      assert.deepEqual(await delivered(box.dest), frames);
      // Written after the start: said on its own line, as ever.
      await Deno.writeTextFile(join(box.watch, "late.txt"), "l");
      await daemon.waitForOutput(
        /Skipped .*late\.txt of job default: matches none of file_patterns/,
      );
    } finally {
      await daemon.stop();
    }
    const log = daemon.stderr();
    const summary = log.split("\n").filter((l) => /Skipped \d+ name\(s\)/.test(l));
    assert.equal(summary.length, 1, log);
    assert.match(
      summary[0],
      /INFO +\[watch\] Skipped 501 name\(s\) of job default that its file_patterns or exclude_patterns leave out, .+, .+, .+ among them \(`image-transfer -c .+ status` lists them, -v logs each\)$/,
    );
    // Before: a line for each of the 501.
    assert.equal(
      log.split("\n").filter((l) => /Skipped .*(\.txt|_test\.fits) of job default:/.test(l)).length,
      1,
      log,
    );
  } finally {
    await Deno.remove(box.root, { recursive: true });
  }
});

Deno.test("status lists the first 20 skipped entries with why, --all every one", async () => {
  const box = await sandbox({ status_listen: "" });
  try {
    for (let i = 0; i < 25; i++) {
      await Deno.writeTextFile(join(box.watch, `notes ${String(i).padStart(2, "0")}.txt`), "n");
    }
    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /Job default: skipped 25:/);
    const listed = status.stdout.split("\n").filter((l) =>
      / matches none of file_patterns$/.test(l)
    );
    assert.equal(listed.length, 20, status.stdout);
    assert.match(status.stdout, /… and 5 more \(status --all lists every one\)/);
    const all = await runCli(["status", "--all", "-c", box.config], { env: box.env });
    assert.equal(
      all.stdout.split("\n").filter((l) => / matches none of file_patterns$/.test(l)).length,
      25,
      all.stdout,
    );
    assert.doesNotMatch(all.stdout, /more \(status --all/);
  } finally {
    await Deno.remove(box.root, { recursive: true });
  }
});
