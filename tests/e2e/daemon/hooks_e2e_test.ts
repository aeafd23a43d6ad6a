/**
 * Hooks through the real CLI (`deno task image-transfer` and `deno run` with
 * exactly its permission set, no flag added) and real hook scripts: the
 * variables a hook receives and the ones it does not (secrets), a failing or
 * hanging hook that does not hold up transfers (a hanging one killed with
 * what it started), `on_failure`, a hook on an rsync job, and a hook program
 * others could change, refused by `run`, `config validate`, `doctor` and
 * `install-service` with the command that fixes it.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { REPO_ROOT, runCli, runTask, startCli } from "../../helpers/cli.ts";
import { randomBytes, waitFor, writeConfig } from "../../helpers/files.ts";
import { startSshd } from "../../helpers/sshd.ts";
import { freePort } from "../../helpers/net.ts";
import { getJson } from "../../helpers/status.ts";

/**
 * A hook that writes its arguments and its whole environment, NUL-separated,
 * to a new file in `$HOOK_OUT` (the test's folder, written into the script:
 * a hook gets no variable of the daemon's but PATH, HOME, LANG and TZ).
 */
const RECORDING_HOOK = `#!/bin/sh
out="$HOOK_OUT/$$"
{ printf 'ARGS'; for a in "$@"; do printf '\\t%s' "$a"; done; printf '\\0'; env -0; } > "$out.tmp"
mv "$out.tmp" "$out"
echo "hook saw $IMAGE_TRANSFER_RELATIVE_PATH"
`;

/** Every recorded hook call: its variables (and `ARGS`). */
async function recordedCalls(dir: string): Promise<Array<Record<string, string>>> {
  const calls: Array<Record<string, string>> = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.endsWith(".tmp")) continue;
    const text = await Deno.readTextFile(join(dir, entry.name));
    const vars: Record<string, string> = {};
    for (const field of text.split("\0").filter((f) => f !== "")) {
      if (field.startsWith("ARGS")) vars.ARGS = field.slice(4);
      else vars[field.slice(0, field.indexOf("="))] = field.slice(field.indexOf("=") + 1);
    }
    calls.push(vars);
  }
  return calls;
}

async function setUp(prefix: string, script: string) {
  const root = await Deno.makeTempDir({ prefix });
  const paths = {
    root,
    watch: join(root, "watch"),
    dest: join(root, "dest"),
    home: join(root, "home"),
    out: join(root, "hook-out"),
    hook: join(root, "hook dir", "record hook.sh"),
    config: join(root, "config.yaml"),
    log: join(root, "logs", "image_transfer.log"),
  };
  for (const dir of [paths.watch, paths.home, paths.out, join(root, "hook dir")]) {
    await Deno.mkdir(dir);
  }
  await Deno.writeTextFile(paths.hook, script.replaceAll("$HOOK_OUT", paths.out), { mode: 0o755 });
  await Deno.chmod(paths.hook, 0o755);
  return paths;
}

function baseConfig(p: Awaited<ReturnType<typeof setUp>>) {
  return {
    watch_path: p.watch,
    remote_base_path: p.dest,
    transfer_method: "local",
    stability_window_seconds: 0.3,
    night_date_source: "mtime",
    night_timezone: "UTC",
    state_dir: join(p.root, "state"),
    log_file: p.log,
  };
}

Deno.test("on_transfer: a real hook receives the facts of each verified arrival", async () => {
  const p = await setUp("itx-hooks-vars-", RECORDING_HOOK);
  try {
    await writeConfig(p.config, {
      ...baseConfig(p),
      on_transfer: [p.hook, "first arg", "$(touch pwned)"],
    });
    const names = ["a.fits", "-n $(echo x) 'q'.fits", "ünï\ncode.fits"];
    const bytes = new Map<string, Uint8Array>();
    for (const [i, name] of names.entries()) {
      const data = randomBytes(1000 + i * 4096);
      bytes.set(name, data);
      await Deno.writeFile(join(p.watch, name), data);
      await Deno.utime(join(p.watch, name), 0, new Date("2024-03-15T20:00:00Z"));
    }
    const result = await runCli(["run", "--once", "-c", p.config], {
      env: { HOME: p.home, HOOK_OUT: p.out },
    });
    assert.equal(result.code, 0, result.stderr);
    const calls = await recordedCalls(p.out);
    assert.equal(calls.length, names.length);
    for (const name of names) {
      const call = calls.find((c) => c.IMAGE_TRANSFER_RELATIVE_PATH === name);
      assert.ok(call, `no hook call for ${JSON.stringify(name)}`);
      assert.equal(call.ARGS, "\tfirst arg\t$(touch pwned)");
      assert.equal(call.IMAGE_TRANSFER_EVENT, "transfer");
      assert.equal(call.IMAGE_TRANSFER_JOB, "default");
      assert.equal(call.IMAGE_TRANSFER_METHOD, "local");
      assert.equal(call.IMAGE_TRANSFER_SOURCE, join(p.watch, name));
      assert.equal(call.IMAGE_TRANSFER_NIGHT, "20240315");
      assert.equal(call.IMAGE_TRANSFER_DESTINATION_PATH, `20240315/${name}`);
      assert.equal(call.IMAGE_TRANSFER_DESTINATION, join(p.dest, "20240315", name));
      assert.equal(call.IMAGE_TRANSFER_SIZE, String(bytes.get(name)!.length));
      // verify_transfer: checksum (the default) hashed what was delivered.
      assert.equal(
        call.IMAGE_TRANSFER_SHA256,
        createHash("sha256").update(bytes.get(name)!).digest("hex"),
      );
      assert.equal(call.IMAGE_TRANSFER_MTIME, "2024-03-15T20:00:00.000Z");
      // The hook runs after the arrival: the file is there, complete.
      assert.deepEqual(await Deno.readFile(call.IMAGE_TRANSFER_DESTINATION), bytes.get(name));
    }
    // The hook's output is in the log; no argument went through a shell.
    const log = await Deno.readTextFile(p.log);
    assert.match(log, /hook saw a\.fits/);
    await assert.rejects(Deno.stat(join(p.root, "pwned")));
    await assert.rejects(Deno.stat(join(p.home, "pwned")));
  } finally {
    await Deno.remove(p.root, { recursive: true });
  }
});

Deno.test("hooks: a failing and a hanging hook are logged and counted; transfers go on", async () => {
  const script = `#!/bin/sh
case "$IMAGE_TRANSFER_RELATIVE_PATH" in
  hang*) echo "hanging on $IMAGE_TRANSFER_RELATIVE_PATH"; sleep 600 & echo $! > "$HOOK_OUT/hanging"; wait ;;
  fail*) echo "cannot reduce $IMAGE_TRANSFER_RELATIVE_PATH" >&2; exit 3 ;;
  *) touch "$HOOK_OUT/$IMAGE_TRANSFER_RELATIVE_PATH" ;;
esac
`;
  const p = await setUp("itx-hooks-fail-", script);
  const base = `127.0.0.1:${freePort()}`;
  const daemon = (() => {
    const config = {
      ...baseConfig(p),
      status_listen: base,
      on_transfer: [p.hook],
      // Long enough for the other files to arrive meanwhile, even on a busy machine.
      hook_timeout_seconds: 25,
      max_concurrent_hooks: 1,
    };
    return writeConfig(p.config, config).then(() =>
      startCli(["run", "-c", p.config], {
        env: { HOME: p.home, HOOK_OUT: p.out },
      })
    );
  })();
  const running = await daemon;
  try {
    await running.waitForOutput("Watching");
    const files = ["hang.fits", "fail.fits", "ok1.fits", "ok2.fits"];
    const data = new Map(files.map((name) => [name, randomBytes(70_000)]));
    // The hanging hook holds the only hook slot; everything else must still arrive.
    await Deno.writeFile(join(p.watch, files[0]), data.get(files[0])!);
    await waitFor(() => existsSync(join(p.out, "hanging")), 20_000, "the hook hangs");
    for (const name of files.slice(1)) await Deno.writeFile(join(p.watch, name), data.get(name)!);
    // Where a file arrived: in any night folder (midnight UTC may pass during the test).
    const arrival = (name: string) =>
      Array.from(Deno.readDirSync(p.dest)).map((n) => join(p.dest, n.name, name)).find(existsSync);
    await waitFor(
      () => {
        try {
          return files.every((name) => Deno.statSync(arrival(name) ?? "").size === 70_000);
        } catch {
          return false;
        }
      },
      20_000,
      "all files at the destination",
    );
    // All arrived while the first hook was still hanging (in the only hook slot).
    assert.doesNotMatch(running.stderr(), /killed after/, "arrivals waited for the hook");
    // max_concurrent_hooks: 1 — the other hooks wait for the slot the hanging one holds.
    assert.ok(!existsSync(join(p.out, "ok1.fits")) && !existsSync(join(p.out, "ok2.fits")));
    for (const name of files) {
      assert.deepEqual(await Deno.readFile(arrival(name)!), data.get(name));
    }
    // Then the hanging hook is killed, the failing one logged, the good ones run.
    await waitFor(
      () => ["ok1.fits", "ok2.fits"].every((n) => existsSync(join(p.out, n))),
      60_000,
      "the good hooks ran",
    );
    await running.waitForOutput(/hang\.fits failed: killed after 25 s.*stdout: hanging on hang/);
    // The program it started went with it (the hook's process group is killed).
    const helper = Number(await Deno.readTextFile(join(p.out, "hanging")));
    await waitFor(() => !existsSync(`/proc/${helper}`), 30_000, "the hook's sleep killed");
    await running.waitForOutput(/fail\.fits failed: exit code 3/);
    await running.waitForOutput("stderr: cannot reduce fail.fits");
    // A file written after all that still arrives.
    await Deno.writeFile(join(p.watch, "late.fits"), data.get("ok1.fits")!);
    await waitFor(() => arrival("late.fits") !== undefined, 20_000, "late file");
    // Its hook runs too (before the stop below, which would kill it).
    await waitFor(() => existsSync(join(p.out, "late.fits")), 20_000, "the late file's hook");
    await running.waitForOutput(/late\.fits done/);
    // Every view counts the hooks that failed: the API, the metrics an alert can watch.
    const api = await getJson<{ jobs: Array<{ hookFailures: number }> }>(
      `http://${base}`,
      "/api/status",
    );
    assert.equal(api.jobs[0].hookFailures, 2);
    const metrics = await (await fetch(`http://${base}/metrics`)).text();
    assert.match(
      metrics,
      /^image_transfer_hook_failures_total\{job="default",method="local"\} 2$/m,
    );
    // And `status`, which a user runs on the instrument PC.
    const shown = await runCli(["status", "-c", p.config], { env: { HOME: p.home } });
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(
      shown.stdout,
      /^ {4}2 hook run\(s\) failed, timed out or could not start since the daemon started: the log says why$/m,
    );
  } finally {
    const status = await running.stop();
    assert.equal(status.code, 0, running.stderr());
    assert.match(running.stderr(), /Hooks of job default: 3 done, 2 failed, 0 not run/);
    await Deno.remove(p.root, { recursive: true });
  }
});

Deno.test("hooks: a reload lets waiting hooks run within one limit and one tally; a stop names each hook it drops", async () => {
  // A hook that finds another one running (its folder made already) leaves a mark.
  const script = `#!/bin/sh
if mkdir "$HOOK_OUT/running"; then mine=yes; else touch "$HOOK_OUT/overlap"; fi
case "$IMAGE_TRANSFER_RELATIVE_PATH" in
  slow*) touch "$HOOK_OUT/started-$IMAGE_TRANSFER_RELATIVE_PATH"; sleep 60 ;;
  *) sleep 1; touch "$HOOK_OUT/$IMAGE_TRANSFER_RELATIVE_PATH" ;;
esac
[ -z "$mine" ] || rmdir "$HOOK_OUT/running"
`;
  const p = await setUp("itx-hooks-reload-", script);
  await writeConfig(p.config, {
    ...baseConfig(p),
    on_transfer: [p.hook],
    hook_timeout_seconds: 120,
    max_concurrent_hooks: 1,
  });
  let slowRunning = "";
  const daemon = startCli(["run", "-c", p.config], { env: { HOME: p.home } });
  try {
    await daemon.waitForOutput("Watching");
    const names = ["a.fits", "b.fits", "c.fits"];
    for (const name of names) await Deno.writeFile(join(p.watch, name), randomBytes(1000));
    await daemon.waitForOutput(/Successfully transferred .*c\.fits/);
    // One hook at a time, a second each: most still wait when the reload comes.
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput("Reloaded");
    // A file of the reloaded job: its hook waits for the replaced job's hooks too.
    await Deno.writeFile(join(p.watch, "d.fits"), randomBytes(1000));
    names.push("d.fits");
    await waitFor(
      () => names.every((name) => existsSync(join(p.out, name))),
      60_000,
      "every hook ran",
    );
    assert.doesNotMatch(daemon.stderr(), /Hook on_transfer of job default for .* not run/);
    assert.ok(
      !existsSync(join(p.out, "overlap")),
      "more than max_concurrent_hooks (1) ran at once",
    );
    // A reload while no hook runs says no tally either.
    daemon.process.kill("SIGHUP");
    await waitFor(() => daemon.stderr().split("Reloaded").length === 3, 30_000, "a second reload");
    assert.doesNotMatch(daemon.stderr(), /Hooks of job default: /);

    // A stop kills the running hook and names each waiting one.
    for (const name of ["slow1.fits", "slow2.fits"]) {
      await Deno.writeFile(join(p.watch, name), randomBytes(1000));
    }
    // One hook at a time: whichever file arrived first has its hook running, the other waits.
    const started = () =>
      ["slow1.fits", "slow2.fits"].find((name) => existsSync(join(p.out, `started-${name}`)));
    await waitFor(() => started() !== undefined, 60_000, "a slow hook");
    slowRunning = started()!;
    await daemon.waitForOutput(/Successfully transferred .*slow1\.fits/);
    await daemon.waitForOutput(/Successfully transferred .*slow2\.fits/);
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
    await Deno.remove(p.root, { recursive: true });
  }
  const waiting = slowRunning === "slow1.fits" ? "slow2.fits" : "slow1.fits";
  assert.ok(
    daemon.stderr().includes(`${join(p.watch, waiting)} not run: stopping`),
    daemon.stderr(),
  );
  assert.ok(daemon.stderr().includes(`${join(p.watch, slowRunning)} failed: killed: stopping`));
  // One tally over the reload, said once.
  const tallies = daemon.stderr().match(/Hooks of job default: .*/g) ?? [];
  assert.deepEqual(tallies, ["Hooks of job default: 4 done, 1 failed, 1 not run"]);
});

for (const [stop, how] of [["SIGKILL", "a killed"], ["SIGTERM", "a stopped"]] as const) {
  Deno.test(`on_transfer: hooks ${how} daemon owed (one waiting) run at the next start; one cut off does not run again`, async () => {
    // Until "released" exists, a hook holds (its pid in started-NAME); then it records its file.
    const script = `#!/bin/sh
name="$IMAGE_TRANSFER_RELATIVE_PATH"
if [ ! -e "$HOOK_OUT/released" ]; then
  echo $$ > "$HOOK_OUT/started.tmp" && mv "$HOOK_OUT/started.tmp" "$HOOK_OUT/started-$name"
  exec sleep 120
fi
printf '%s\\n' "$name" >> "$HOOK_OUT/ran"
`;
    const p = await setUp("itx-hooks-owed-", script);
    await writeConfig(p.config, {
      ...baseConfig(p),
      on_transfer: [p.hook],
      max_concurrent_hooks: 1,
    });
    const ran = async () =>
      (await Deno.readTextFile(join(p.out, "ran")).catch(() => "")).split("\n");
    const names = ["a.fits", "b.fits"];
    const killed = startCli(["run", "-c", p.config], { env: { HOME: p.home } });
    try {
      await killed.waitForOutput("Watching");
      for (const name of names) await Deno.writeFile(join(p.watch, name), randomBytes(1000));
      for (const name of names) {
        await killed.waitForOutput(`Successfully transferred ${join(p.watch, name)}`);
      }
      // One hook holds, the other waits for its slot: the daemon dies now.
      const started = () => names.find((name) => existsSync(join(p.out, `started-${name}`)));
      await waitFor(() => started() !== undefined, 60_000, "a hook holding");
      assert.equal((await killed.stop(stop)).code, stop === "SIGKILL" ? 137 : 0, killed.stderr());
      try {
        Deno.kill(Number(await Deno.readTextFile(join(p.out, `started-${started()}`))), "SIGKILL");
      } catch {
        // A stopping daemon kills its hooks itself.
      }
      await Deno.writeTextFile(join(p.out, "released"), "");
      assert.deepEqual(await ran(), [""], "no hook ran to its end before the kill");
      const waiting = names.find((name) => name !== started())!;
      // status counts the hook owed (the one cut off is owed no more).
      const owed = await runCli(["status", "-c", p.config], { env: { HOME: p.home } });
      assert.match(owed.stdout, /^Job default: .*; on_transfer hooks owed 1$/m, owed.stdout);

      const next = startCli(["run", "-c", p.config], { env: { HOME: p.home } });
      try {
        await next.waitForOutput("Running 1 on_transfer hook(s) of job default");
        await waitFor(async () => (await ran()).length === 2, 60_000, "the owed hook");
      } finally {
        assert.equal((await next.stop()).code, 0, next.stderr());
      }
      assert.deepEqual(
        await ran(),
        [waiting, ""],
        "the waiting hook ran once, the cut off one not again",
      );
      // Run, they are owed no more: a third start runs none.
      const third = startCli(["run", "-c", p.config], { env: { HOME: p.home } });
      try {
        // Owed hooks start right after this line, in the same step: the whole log is read at the stop.
        await third.waitForOutput("Watching");
      } finally {
        assert.equal((await third.stop()).code, 0, third.stderr());
      }
      assert.doesNotMatch(third.stderr(), /on_transfer hook\(s\)/);
      assert.deepEqual(await ran(), [waiting, ""]);
      const none = await runCli(["status", "-c", p.config], { env: { HOME: p.home } });
      assert.match(none.stdout, /^Job default: /m);
      assert.doesNotMatch(none.stdout, /hooks owed/);
    } finally {
      await killed.stop();
      await Deno.remove(p.root, { recursive: true });
    }
  });
}

Deno.test("hooks: a hook or scheduled program made writable by others or removed after the start is not run", async () => {
  const p = await setUp("itx-hooks-changed-", RECORDING_HOOK);
  const scheduled = join(p.root, "hook dir", "every second.sh");
  await Deno.writeTextFile(scheduled, `#!/bin/sh\ntouch '${join(p.root, "scheduled ran")}'\n`);
  await Deno.chmod(scheduled, 0o755);
  await writeConfig(p.config, {
    ...baseConfig(p),
    on_transfer: [p.hook],
    schedules: [{ every_seconds: 1, action: "command", command: [scheduled] }],
  });
  const running = startCli(["run", "-c", p.config], { env: { HOME: p.home } });
  try {
    await running.waitForOutput("Watching");
    await Deno.writeFile(join(p.watch, "a.fits"), randomBytes(1000));
    await waitFor(async () => (await recordedCalls(p.out)).length === 1, 30_000, "a's hook");
    // Checked at start; anyone could change it now.
    await Deno.chmod(p.hook, 0o777);
    await Deno.writeFile(join(p.watch, "b.fits"), randomBytes(1000));
    await running.waitForOutput(
      /Hook on_transfer of job default for .*b\.fits not run: .*writable by .*chmod go-w/,
    );
    await Deno.remove(p.hook);
    await Deno.writeFile(join(p.watch, "c.fits"), randomBytes(1000));
    await running.waitForOutput(
      /Hook on_transfer of job default for .*c\.fits not run: .*does not exist/,
    );
    assert.equal((await recordedCalls(p.out)).length, 1, "neither ran");
    // The same for a scheduled command.
    await waitFor(() => existsSync(join(p.root, "scheduled ran")), 30_000, "scheduled command");
    await Deno.chmod(scheduled, 0o777);
    await running.waitForOutput(
      /Schedule 0 of job default \(command\) failed: not run: schedules\[0\]\.command: .*chmod go-w/,
    );
  } finally {
    const status = await running.stop();
    assert.equal(status.code, 0, running.stderr());
    await Deno.remove(p.root, { recursive: true });
  }
  // The tally at the stop counts them as the log lines said: not run.
  assert.match(running.stderr(), /Hooks of job default: 1 done, 0 failed, 2 not run/);
});

Deno.test("on_failure: runs when a file gives up, with the reason", async () => {
  const p = await setUp("itx-hooks-failure-", RECORDING_HOOK);
  try {
    // A regular file where the night folder goes: every attempt fails. (A destination that is a
    // file itself is refused before the start.)
    await Deno.mkdir(p.dest, { recursive: true });
    await Deno.writeTextFile(join(p.dest, "20240315"), "not a folder");
    await writeConfig(p.config, {
      ...baseConfig(p),
      retry_attempts: 0,
      on_failure: [p.hook, "failed"],
    });
    await Deno.writeFile(join(p.watch, "x.fits"), randomBytes(5000));
    const evening = new Date("2024-03-15T20:00:00Z");
    await Deno.utime(join(p.watch, "x.fits"), evening, evening);
    const result = await runCli(["run", "--once", "-c", p.config], {
      env: { HOME: p.home, HOOK_OUT: p.out },
    });
    assert.equal(result.code, 1, result.stderr);
    const calls = await recordedCalls(p.out);
    assert.equal(calls.length, 1, result.stderr);
    assert.equal(calls[0].IMAGE_TRANSFER_EVENT, "failure");
    assert.equal(calls[0].ARGS, "\tfailed");
    assert.equal(calls[0].IMAGE_TRANSFER_RELATIVE_PATH, "x.fits");
    assert.equal(calls[0].IMAGE_TRANSFER_SIZE, "5000");
    assert.equal(calls[0].IMAGE_TRANSFER_ATTEMPTS, "1");
    assert.ok((calls[0].IMAGE_TRANSFER_ERROR ?? "").length > 0);
  } finally {
    await Deno.remove(p.root, { recursive: true });
  }
});

Deno.test("hooks: a hook program others can change is refused by run, validate, doctor and install-service, with the chmod", async () => {
  const p = await setUp("itx-hooks-mode-", RECORDING_HOOK);
  const serviceRoot = await Deno.makeTempDir({ prefix: "itx-hooks-mode-root-" });
  try {
    await writeConfig(p.config, { ...baseConfig(p), on_transfer: [p.hook] });
    await Deno.writeFile(join(p.watch, "x.fits"), randomBytes(100));
    await Deno.chmod(p.hook, 0o775);
    const fix = `chmod go-w '${p.hook}'`;
    const env = { HOME: p.home, USER: "observer", SUDO_USER: "" };
    for (
      const args of [
        ["run", "--once", "-c", p.config],
        ["config", "validate", "-c", p.config],
        ["doctor", "-c", p.config],
        ["-c", p.config, "install-service", "--print", "--root", serviceRoot],
      ]
    ) {
      const result = await runCli(args, { env });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stdout}${result.stderr}`);
      // Where the key is written: file and line.
      const line = (await Deno.readTextFile(p.config)).split("\n")
        .findIndex((text) => text.startsWith("on_transfer:")) + 1;
      assert.ok(
        result.stderr.includes(`${p.config}:${line}: on_transfer of job default: refusing to run`),
        `${args.join(" ")}: ${result.stderr}`,
      );
      assert.match(result.stderr, /writable by group \(mode 0775\)/);
      assert.ok(result.stderr.includes(fix), result.stderr);
      assert.doesNotMatch(result.stderr, /\n\s+at /); // no stack trace
    }
    await assert.rejects(Deno.stat(join(p.dest)), "nothing sent without its hook");

    // A folder others can write is refused too: they could replace the program.
    await Deno.chmod(p.hook, 0o755);
    await Deno.chmod(join(p.root, "hook dir"), 0o777);
    const folder = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(folder.code, 2, folder.stderr);
    assert.ok(folder.stderr.includes(`chmod go-w '${join(p.root, "hook dir")}'`), folder.stderr);
    await Deno.chmod(join(p.root, "hook dir"), 0o755);

    // So is a folder further up, and one the program's link leads into.
    const open = join(p.root, "open");
    await Deno.mkdir(join(open, "sub"), { recursive: true });
    await Deno.chmod(open, 0o777);
    const deep = join(open, "sub", "hook.sh");
    await Deno.copyFile(p.hook, deep);
    await Deno.chmod(deep, 0o755);
    await writeConfig(p.config, { ...baseConfig(p), on_transfer: [deep] });
    const above = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(above.code, 2, above.stderr);
    assert.ok(
      above.stderr.includes(`the folder ${open} is writable by group and others (mode 0777)`),
      above.stderr,
    );
    const link = join(p.root, "hook dir", "via-link.sh");
    await Deno.symlink(deep, link);
    await writeConfig(p.config, { ...baseConfig(p), on_transfer: [link] });
    const linked = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(linked.code, 2, linked.stderr);
    assert.ok(
      linked.stderr.includes(
        `can replace ${link} (which leads to ${deep}); fix it with: chmod go-w`,
      ),
      linked.stderr,
    );
    await Deno.chmod(open, 0o755);
    const fixed = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(fixed.code, 0, fixed.stderr);
    // A link another account owns can be pointed elsewhere by it (in a sticky folder too).
    const theirs = join(p.root, "hook dir", "theirs.sh");
    await Deno.symlink(deep, theirs);
    const chown = await new Deno.Command("chown", { args: ["-h", "65534", theirs] }).output();
    assert.ok(chown.success, new TextDecoder().decode(chown.stderr));
    await writeConfig(p.config, { ...baseConfig(p), on_transfer: [theirs] });
    const owned = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(owned.code, 2, owned.stderr);
    assert.ok(
      owned.stderr.includes(`${theirs} is a link that belongs to user id 65534, not to root`),
      owned.stderr,
    );
    // Also further along: a link of this account's that leads through theirs.
    const chain = join(p.root, "hook dir", "chain.sh");
    await Deno.symlink(theirs, chain);
    await writeConfig(p.config, { ...baseConfig(p), on_transfer: [chain] });
    const chained = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(chained.code, 2, chained.stderr);
    assert.ok(chained.stderr.includes(`${theirs} is a link that belongs to user id 65534`));
    await writeConfig(p.config, { ...baseConfig(p), on_transfer: [p.hook] });

    // A bare name is looked up on PATH; a relative path or a missing program is refused.
    await writeConfig(p.config, { ...baseConfig(p), on_transfer: ["no-such-hook-program"] });
    const missing = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot find the program "no-such-hook-program" on PATH/);
    await writeConfig(p.config, { ...baseConfig(p), on_failure: ["bin/reduce"] });
    const relative = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(relative.code, 2);
    assert.match(relative.stderr, /on_failure of job default: .*give its absolute path/);
    // Said as relative, also where a file of that name lies beside the config (not "cannot find").
    await Deno.copyFile(p.hook, join(dirname(p.config), "reduce.sh"));
    await writeConfig(p.config, { ...baseConfig(p), on_failure: ["./reduce.sh"] });
    const beside = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(beside.code, 2);
    assert.match(
      beside.stderr,
      /on_failure of job default: "\.\/reduce\.sh" is a relative path, .*: give its absolute path/,
    );
    // In the home folder, as the config's paths: ~/ is taken as it.
    await Deno.mkdir(join(p.home, "bin"));
    await Deno.copyFile(p.hook, join(p.home, "bin", "reduce"));
    await writeConfig(p.config, { ...baseConfig(p), on_failure: ["~/bin/reduce"] });
    const home = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(home.code, 0, home.stderr);
    const gone = join(p.root, "hook dir", "no-such-hook");
    await writeConfig(p.config, { ...baseConfig(p), on_failure: [gone] });
    const absent = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(absent.code, 2);
    assert.ok(
      absent.stderr.includes(
        `refusing to run ${gone}: ${gone} does not exist; check the path, or install the program`,
      ),
      absent.stderr,
    );
    // Below a file: that file is named, not the system's "Not a directory".
    const belowFile = join(p.hook, "no-such-hook");
    await writeConfig(p.config, { ...baseConfig(p), on_failure: [belowFile] });
    const below = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(below.code, 2);
    assert.ok(
      below.stderr.includes(
        `refusing to run ${belowFile}: ${belowFile} cannot be there: ${p.hook} on its path is a ` +
          "file, not a folder; check the path",
      ),
      below.stderr,
    );

    // A script saved with Windows line ends: the system would say only "No such file or
    // directory" of a file that is there; the #! line is named, with the fix.
    const crlf = join(p.root, "hook dir", "notify's.sh");
    await Deno.writeTextFile(crlf, "#!/bin/sh\r\necho hi\r\n", { mode: 0o755 });
    await writeConfig(p.config, { ...baseConfig(p), on_transfer: [crlf] });
    const windows = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(windows.code, 2);
    assert.ok(
      windows.stderr.includes(
        `refusing to run ${crlf}: ${crlf} starts with #!/bin/sh followed by a carriage return`,
      ),
      windows.stderr,
    );
    assert.ok(windows.stderr.includes(`sed -i 's/\\r$//' '`), windows.stderr);
    await Deno.writeTextFile(crlf, "#!/usr/bin/no-such-python\nprint(1)\n");
    const interpreter = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(interpreter.code, 2);
    assert.match(interpreter.stderr, /#!\/usr\/bin\/no-such-python, which does not exist/);

    // Fixed, the same config is accepted and the hook runs.
    await writeConfig(p.config, { ...baseConfig(p), on_transfer: [p.hook] });
    const ok = await runCli(["config", "validate", "-c", p.config], { env });
    assert.equal(ok.code, 0, ok.stderr);
    const run = await runCli(["run", "--once", "-c", p.config], { env });
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await recordedCalls(p.out)).length, 1);
  } finally {
    await Deno.remove(p.root, { recursive: true });
    await Deno.remove(serviceRoot, { recursive: true });
  }
});

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("install-service (from source): the service's command is the task's, with no flag for hooks", async () => {
  const p = await setUp("itx-hooks-svc-", RECORDING_HOOK);
  const serviceRoot = await Deno.makeTempDir({ prefix: "itx-hooks-svc-root-" });
  try {
    const other = join(p.root, "alert.sh");
    await Deno.writeTextFile(other, "#!/bin/sh\n", { mode: 0o755 });
    await writeConfig(p.config, { ...baseConfig(p), on_transfer: [p.hook], on_failure: [other] });
    const denoDir = Deno.env.get("DENO_DIR") ??
      join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");
    const out = await runCli(
      ["-c", p.config, "install-service", "--print", "--root", serviceRoot],
      { env: { HOME: p.home, USER: "observer", SUDO_USER: "", DENO_DIR: denoDir } },
    );
    assert.equal(out.code, 0, out.stderr);
    const execStart = out.stdout.split("\n").find((line) => line.startsWith("ExecStart="));
    assert.ok(execStart, out.stdout);
    assert.match(execStart, /-P=image-transfer/);
    assert.doesNotMatch(execStart, /--allow-run/);
  } finally {
    await Deno.remove(p.root, { recursive: true });
    await Deno.remove(serviceRoot, { recursive: true });
  }
});

Deno.test("hooks: a shell string, an empty program or a zero timeout is refused with the line", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-hooks-bad-" });
  try {
    const config = join(root, "config.yaml");
    await Deno.writeTextFile(
      config,
      [
        `watch_path: ${JSON.stringify(root)}`,
        `remote_base_path: ${JSON.stringify(join(root, "dest"))}`,
        "transfer_method: local",
        'on_transfer: "/usr/local/bin/reduce --quick"',
        'on_failure: [""]',
        "hook_timeout_seconds: 0",
        "",
      ].join("\n"),
    );
    const out = await runCli(["config", "validate", "-c", config], { env: { HOME: root } });
    assert.equal(out.code, 2);
    assert.match(out.stderr, /config\.yaml:4: on_transfer: expected a list/);
    assert.match(out.stderr, /config\.yaml:5: on_failure: the first element must name a program/);
    assert.match(
      out.stderr,
      /config\.yaml:6: hook_timeout_seconds: expected a number above 0 and at most 86400/,
    );
    assert.doesNotMatch(out.stderr, /\n\s+at /);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("on_transfer on an rsync job: ssh, rsync and the hook all run under the permission set", async () => {
  const p = await setUp("itx-hooks-rsync-", RECORDING_HOOK);
  const sshd = await startSshd();
  try {
    const dest = await sshd.makeRemoteDir();
    await writeConfig(p.config, {
      ...baseConfig(p),
      ...sshd.configKeys(),
      transfer_method: "rsync",
      remote_base_path: dest,
      on_transfer: [p.hook],
    });
    const bytes = randomBytes(5_000);
    await Deno.writeFile(join(p.watch, "r $(id).fits"), bytes);
    await Deno.utime(join(p.watch, "r $(id).fits"), 0, new Date("2024-03-15T20:00:00Z"));
    // The README says nothing of Deno flags: hooks need none.
    const readme = await Deno.readTextFile(join(REPO_ROOT, "README.md"));
    assert.doesNotMatch(readme, /--allow-run/);
    const result = await runCli(["run", "--once", "-c", p.config], {
      env: { HOME: p.home },
    });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await Deno.readFile(join(dest, "20240315", "r $(id).fits")), bytes);
    const [call] = await recordedCalls(p.out);
    assert.equal(call.IMAGE_TRANSFER_METHOD, "rsync");
    assert.equal(call.IMAGE_TRANSFER_RELATIVE_PATH, "r $(id).fits");
  } finally {
    await sshd.stop();
    await Deno.remove(p.root, { recursive: true });
  }
});

Deno.test("on_transfer through `deno task image-transfer run`: the hook runs and gets no secret of the daemon's", async () => {
  const p = await setUp("itx-hooks-task-", RECORDING_HOOK);
  try {
    await writeConfig(p.config, {
      ...baseConfig(p),
      on_transfer: [p.hook],
      on_failure: [p.hook],
    });
    await Deno.writeFile(join(p.watch, "t.fits"), randomBytes(3000));
    await Deno.utime(join(p.watch, "t.fits"), 0, new Date("2024-03-15T20:00:00Z"));
    const out = await runTask(["run", "--once", "-c", p.config], {
      cwd: REPO_ROOT,
      env: {
        HOME: p.home,
        FTPPW: "secret-ftp-password",
        IMAGE_TRANSFER_FTP_PASSWORD: "another-secret",
        AWS_SECRET_ACCESS_KEY: "a-third-secret",
        LANG: "C.UTF-8",
        TZ: "UTC",
      },
    });
    const stderr = out.stderr;
    assert.equal(out.code, 0, stderr);
    assert.ok((await Deno.stat(join(p.dest, "20240315", "t.fits"))).isFile);
    const calls = await recordedCalls(p.out);
    assert.equal(calls.length, 1, stderr);
    const [call] = calls;
    assert.equal(call.IMAGE_TRANSFER_RELATIVE_PATH, "t.fits");
    assert.equal(call.HOME, p.home);
    assert.equal(call.LANG, "C.UTF-8");
    assert.equal(call.TZ, "UTC");
    assert.ok((call.PATH ?? "").length > 0);
    for (const [name, value] of Object.entries(call)) {
      assert.ok(!/secret/.test(value), `${name} reached the hook`);
      // Only the passed variables, the hook's facts and what sh sets itself.
      assert.ok(
        ["ARGS", "PATH", "HOME", "LANG", "TZ", "PWD", "SHLVL", "_", "OLDPWD"].includes(name) ||
          name.startsWith("IMAGE_TRANSFER_"),
        `${name} reached the hook`,
      );
    }
  } finally {
    await Deno.remove(p.root, { recursive: true });
  }
});

Deno.test("a daemon whose jobs start no program gives that up: a reload adding a hook is refused with a restart hint", async () => {
  const p = await setUp("itx-hooks-drop-", RECORDING_HOOK);
  await writeConfig(p.config, baseConfig(p));
  const running = startCli(["run", "-c", p.config], { env: { HOME: p.home } });
  try {
    await running.waitForOutput("Watching");
    await writeConfig(p.config, { ...baseConfig(p), on_transfer: [p.hook] });
    running.process.kill("SIGHUP");
    await running.waitForOutput(/Reload refused.*gave up at start-up.*restart the daemon/);
    assert.ok(running.stderr().includes(`starts ${p.hook}, which`), running.stderr());
    // The running config is kept: files still arrive, no hook runs.
    await Deno.writeFile(join(p.watch, "d.fits"), randomBytes(2000));
    await waitFor(
      () => {
        try {
          return Array.from(Deno.readDirSync(p.dest)).some((night) =>
            existsSync(join(p.dest, night.name, "d.fits"))
          );
        } catch {
          return false; // No night folder yet.
        }
      },
      20_000,
      "the file after the refused reload",
    );
    assert.equal((await recordedCalls(p.out)).length, 0);
  } finally {
    const status = await running.stop();
    assert.equal(status.code, 0, running.stderr());
    await Deno.remove(p.root, { recursive: true });
  }
});

Deno.test("the programs a daemon may start are fixed at its start: a reload naming another hook is refused, the first keeps running", async () => {
  const p = await setUp("itx-hooks-fixed-", RECORDING_HOOK);
  const other = join(p.root, "hook dir", "other hook.sh");
  await Deno.copyFile(p.hook, other);
  await writeConfig(p.config, { ...baseConfig(p), on_transfer: [p.hook] });
  const running = startCli(["run", "-c", p.config], { env: { HOME: p.home } });
  try {
    await running.waitForOutput("Watching");
    await writeConfig(p.config, { ...baseConfig(p), on_transfer: [other, "--new"] });
    running.process.kill("SIGHUP");
    await running.waitForOutput(/Reload refused.*restart the daemon/);
    const said = running.stderr();
    assert.ok(said.includes(`starts ${other}, which this daemon may not start`), said);
    await Deno.writeFile(join(p.watch, "e.fits"), randomBytes(2000));
    await waitFor(async () => (await recordedCalls(p.out)).length === 1, 20_000, "the hook");
    const [call] = await recordedCalls(p.out);
    assert.equal(call.IMAGE_TRANSFER_RELATIVE_PATH, "e.fits");
    assert.equal(call.ARGS, "", "the running config's hook ran, not the refused one");
  } finally {
    const status = await running.stop();
    assert.equal(status.code, 0, running.stderr());
    await Deno.remove(p.root, { recursive: true });
  }
});

Deno.test("on_failure: runs once in a run for a file that keeps failing, through rescans", async () => {
  const p = await setUp("itx-hooks-failure-once-", RECORDING_HOOK);
  const blocker = join(p.dest, "20240315");
  await Deno.mkdir(p.dest, { recursive: true });
  await Deno.writeTextFile(blocker, "not a folder");
  await writeConfig(p.config, {
    ...baseConfig(p),
    retry_attempts: 0,
    retry_delay_seconds: 1,
    retry_max_delay_seconds: 1,
    rescan_interval_seconds: 1,
    on_failure: [p.hook],
  });
  const running = startCli(["run", "-v", "-c", p.config], {
    env: { HOME: p.home, HOOK_OUT: p.out },
  });
  try {
    await running.waitForOutput("Watching");
    const data = randomBytes(5000);
    await Deno.writeFile(join(p.watch, "x.fits"), data);
    const evening = new Date("2024-03-15T20:00:00Z");
    await Deno.utime(join(p.watch, "x.fits"), evening, evening);
    await waitFor(async () => (await recordedCalls(p.out)).length > 0, 30_000, "on_failure runs");
    // Tried again at each rescan and slow retry: the hook has said it already.
    const tries = () =>
      running.stderr().split("\n").filter((line) => line.includes("Sending 1 file(s)"));
    await waitFor(() => tries().length >= 6, 60_000, "six more attempts");
    assert.equal((await recordedCalls(p.out)).length, 1, running.stderr());
    // Still tried: once the way is clear, it arrives.
    await Deno.remove(blocker);
    const arrived = join(p.dest, "20240315", "x.fits");
    await waitFor(() => existsSync(arrived), 30_000, "the file arrives");
    assert.deepEqual(await Deno.readFile(arrived), data);
  } finally {
    await running.stop();
    await Deno.remove(p.root, { recursive: true });
  }
});
