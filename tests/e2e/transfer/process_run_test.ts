import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { neverStarted, runProcess } from "../../../src/process/run.ts";
import { CommandError } from "../../../src/errors.ts";
import { capOutput, MAX_OUTPUT_BYTES, runCaptured } from "../../../src/process/captured.ts";

const program = (name: string) =>
  fileURLToPath(new URL(`../../fixtures/programs/${name}`, import.meta.url));
const deno = (name: string, ...args: string[]) => [
  Deno.execPath(),
  "run",
  "-q",
  "--allow-all",
  program(name),
  ...args,
];

/** Whether a process with `pid` still exists (and is not a zombie). */
async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/**
 * Whether `pid` is still alive 30 s from now: a process that was sent SIGKILL
 * may take a moment to end (its pipes close before it is a zombie), longer on
 * a busy machine.
 */
async function survives(pid: number): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  while (await alive(pid)) {
    if (Date.now() > deadline) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return false;
}

Deno.test("runProcess returns stdout bytes and stderr text of a successful run", async () => {
  const input = new Uint8Array(3 * 1024 * 1024).map((_, i) => i % 251);
  const result = await runProcess(deno("copy_stdin.ts"), { stdin: input });
  assert.equal(result.code, 0);
  assert.deepEqual(result.stdout, input);
  assert.equal(result.stderr, `read ${input.length} bytes`);
  assert.ok(result.durationMs >= 0);
});

Deno.test("runProcess throws CommandError carrying the whole run on a non-zero exit", async () => {
  const argv = deno("exit_with.ts", "3", "something broke\nlast line");
  const error = await runProcess(argv).then(() => null, (e) => e);
  assert.ok(error instanceof CommandError);
  assert.deepEqual(error.run.argv, argv);
  assert.equal(error.run.code, 3);
  assert.equal(error.run.signal, null);
  assert.equal(error.run.timedOut, false);
  assert.equal(error.run.stderr, "something broke\nlast line");
  assert.match(error.message, /exit code 3: last line$/);
});

Deno.test("runProcess names a program that is not installed", async () => {
  const error = await runProcess(["image-transfer-no-such-program-xyz"]).then(() => null, (e) => e);
  assert.ok(error instanceof CommandError);
  assert.match(error.message, /not installed or not on PATH/);
});

Deno.test("runProcess timeout kills the whole process group, grandchildren included", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-run-" });
  try {
    const pidFile = `${dir}/child.pid`;
    const error = await runProcess(deno("forever_with_child.ts", pidFile), { timeoutMs: 2500 })
      .then(() => null, (e) => e);
    assert.ok(error instanceof CommandError);
    assert.equal(error.run.timedOut, true);
    assert.equal(error.run.signal, "SIGKILL");
    assert.match(error.message, /timed out after 2\.5 s/);
    // output() only returns once every holder of the pipes is gone: the grandchild too.
    const childPid = Number(await Deno.readTextFile(pidFile));
    assert.ok(childPid > 0);
    assert.equal(await survives(childPid), false, "the grandchild survived the timeout");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The process id and process group id of a shell `runProcess` starts with `options`. */
async function shellGroup(options: { ownSession?: boolean }): Promise<[number, number]> {
  const result = await runProcess(["sh", "-c", 'echo "$$ $(ps -o pgid= -p "$$")"'], options);
  const [pid, pgid] = new TextDecoder().decode(result.stdout).trim().split(/\s+/).map(Number);
  assert.ok(pid > 0 && pgid > 0, "ps printed a process group");
  return [pid, pgid];
}

Deno.test("runProcess: a program leads a process group of its own; with ownSession false it joins ours", async () => {
  const [pid, pgid] = await shellGroup({});
  assert.equal(pgid, pid, "its own group");
  const ours = Number(
    new TextDecoder().decode(
      (await runProcess(["ps", "-o", "pgid=", "-p", String(Deno.pid)])).stdout,
    ).trim(),
  );
  const [joinedPid, joinedPgid] = await shellGroup({ ownSession: false });
  assert.notEqual(joinedPgid, joinedPid, "not a group leader");
  assert.equal(joinedPgid, ours, "the caller's group");
});

Deno.test("runProcess with ownSession false: a timeout kills the program and the call ends", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-run-" });
  try {
    const pidFile = `${dir}/sh.pid`;
    const error = await runProcess(
      ["sh", "-c", 'echo "$$" > "$1"; exec sleep 600', "sh", pidFile],
      // Long enough for the shell to write its pid on a busy machine.
      { timeoutMs: 3000, ownSession: false },
    ).then(() => null, (e) => e);
    assert.ok(error instanceof CommandError);
    assert.equal(error.run.timedOut, true);
    assert.equal(error.run.signal, "SIGKILL");
    assert.equal(await survives(Number(await Deno.readTextFile(pidFile))), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runProcess abort kills the process group and rejects with the abort reason", async () => {
  const controller = new AbortController();
  const reason = new Error("shutting down");
  setTimeout(() => controller.abort(reason), 2500);
  const dir = await Deno.makeTempDir({ prefix: "itx-run-" });
  try {
    const pidFile = `${dir}/child.pid`;
    const error = await runProcess(deno("forever_with_child.ts", pidFile), {
      signal: controller.signal,
    }).then(() => null, (e) => e);
    assert.equal(error, reason);
    assert.equal(await survives(Number(await Deno.readTextFile(pidFile))), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runProcess: a program that cannot start carries the system's error as cause", async () => {
  const error = await runProcess(["image-transfer-no-such-program-xyz", "a"]).then(
    () => null,
    (e) => e,
  );
  assert.ok(error instanceof CommandError && neverStarted(error));
  assert.ok(error.cause instanceof Deno.errors.NotFound);
  assert.deepEqual(error.run.argv, ["image-transfer-no-such-program-xyz", "a"]);
  const failed = await runProcess(["sh", "-c", "echo out; echo bad >&2; exit 3"]).then(
    () => null,
    (e) => e,
  );
  assert.ok(failed instanceof CommandError);
  assert.equal(neverStarted(failed), false);
  assert.equal(failed.run.stdout, "out", "stdout is kept on a failure");
  assert.equal(failed.run.stderr, "bad");
  assert.ok(failed.run.durationMs >= 0);
});

Deno.test("runCaptured: output over 16 KiB is cut at a character's end, and the cut is said", async () => {
  const marker = " … (output cut at 16 KiB)";
  assert.equal(MAX_OUTPUT_BYTES, 16 * 1024);
  assert.equal(capOutput("short output\n"), "short output");
  // What is cut, told by its end and by how much of the text is kept (short messages).
  const cut = (text: string) => {
    const kept = capOutput(text);
    return { kept: kept.replace(marker, "").length, said: kept.endsWith(marker) };
  };
  assert.deepEqual(cut("x".repeat(MAX_OUTPUT_BYTES)), { kept: MAX_OUTPUT_BYTES, said: false });
  assert.deepEqual(cut("x".repeat(MAX_OUTPUT_BYTES + 1)), { kept: MAX_OUTPUT_BYTES, said: true });
  // Blanks at the end are not output worth a cut.
  assert.deepEqual(cut("x".repeat(MAX_OUTPUT_BYTES) + "\n\n"), {
    kept: MAX_OUTPUT_BYTES,
    said: false,
  });
  // "€" is 3 bytes: 5461 of them fit, the 5462nd would be cut in two.
  assert.deepEqual(cut("€".repeat(6000)), { kept: 5461, said: true });
  assert.ok(capOutput("€".repeat(6000)).startsWith("€".repeat(5461) + marker));
  // A hook's stdout of 23,893 bytes (seq 1 5000), through the real run.
  const result = await runCaptured(["seq", "1", "5000"], {}, { timeoutMs: 30_000 });
  if (result.kind !== "ok") throw new Error(`seq did not run: ${JSON.stringify(result)}`);
  assert.ok(result.stdout.startsWith("1\n2\n3\n"), result.stdout.slice(0, 20));
  assert.ok(result.stdout.endsWith(marker), result.stdout.slice(-60));
  assert.ok(new TextEncoder().encode(result.stdout).length <= MAX_OUTPUT_BYTES + marker.length + 2);
  assert.equal(result.output, `stdout: ${result.stdout}`);
  const short = await runCaptured(["seq", "1", "3"], {}, { timeoutMs: 30_000 });
  assert.equal(short.kind === "ok" && short.stdout, "1\n2\n3");
});

Deno.test("runCaptured: a program that prints 600 MB ends as it did, its start kept and the cut said", async () => {
  // More than a string can hold: kept whole, it failed as 'stopped' (or, through the launcher,
  // 'could not start: buffer exceeds maximum length') after gigabytes of memory.
  const result = await runCaptured(["seq", "1", "70000000"], {}, { timeoutMs: 600_000 });
  if (result.kind !== "ok") throw new Error(`seq did not end well: ${JSON.stringify(result)}`);
  assert.ok(result.stdout.startsWith("1\n2\n3\n"), result.stdout.slice(0, 20));
  assert.ok(result.stdout.endsWith(" … (output cut at 16 KiB)"), result.stdout.slice(-60));
});
