/**
 * An FTP server that stops answering (a command gets no reply, or an upload's
 * data is no longer read) holds a batch once: the command's reply is waited
 * for a short bound of its own (the data, `transfer_timeout_seconds`), then
 * the connection is dropped and every file of the batch fails with one
 * retryable error that names the server and what it did not answer, unsent
 * after that; the job is shown as unreachable, and the files arrive once the
 * server answers again. A small server of the test's own (`silent_ftp.ts`)
 * goes silent where asked; the reply bound is given short here.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { JobConfig } from "../../../src/config/types.ts";
import { failureScope, type TransferError } from "../../../src/errors.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { JobRunner } from "../../../src/pipeline/job_runner.ts";
import { FtpTransport } from "../../../src/transfer/ftp/ftp.ts";
import type { TransferItem } from "../../../src/transfer/transport.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import { type SilentFtp, type SilentFtpOptions, startSilentFtp } from "../../helpers/silent_ftp.ts";

/** The reply bound the tests give their transports (the product's is a minute). */
const REPLY_WAIT_MS = 1500;

/** `count` files of `bytes` in a new folder, as items into the night folder `20240315`. */
async function items(root: string, count: number, bytes: number): Promise<TransferItem[]> {
  const made: TransferItem[] = [];
  for (let i = 0; i < count; i++) {
    const source = join(root, `f${i}.fits`);
    await Deno.writeFile(source, randomBytes(bytes));
    const info = await Deno.stat(source);
    made.push({
      source,
      destination: `20240315/f${i}.fits`,
      size: info.size,
      mtimeMs: info.mtime!.getTime(),
    });
  }
  return made;
}

/**
 * Every file of the batch failed with the one error of a server given up: retryable, the whole
 * destination (not one file), its message matching `message`.
 */
function assertGivenUp(outcomes: { error: TransferError | null }[], message: RegExp): void {
  for (const { error } of outcomes) {
    assert.ok(error !== null, "failed");
    assert.equal(error.kind, "retry", error.message);
    assert.match(error.message, message);
    assert.equal(failureScope(error), "connection", "the whole destination, not one file");
  }
}

/** Send `count` files of `bytes` in one batch to a server started with `options`. */
async function sendTo(
  options: SilentFtpOptions,
  count: number,
  bytes: number,
  transferTimeoutSeconds: number,
) {
  const server = startSilentFtp(options);
  const root = await Deno.makeTempDir({ prefix: "itx-ftp-silent-" });
  const job = server.job({ transfer_timeout_seconds: transferTimeoutSeconds });
  const transport = new FtpTransport(job, { replyWaitMs: REPLY_WAIT_MS });
  try {
    const outcomes = await transport.send(
      await items(root, count, bytes),
      new AbortController().signal,
    );
    // Closing sweeps the upload folder a cut batch left, over a login of its own.
    return { server, outcomes, logins: server.connections };
  } finally {
    await transport.close();
    await server.stop();
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("ftp, a server that answers: the test server takes a batch (the tests below rely on it)", async () => {
  const { server, outcomes, logins } = await sendTo({}, 2, 1000, 6);
  assert.deepEqual(outcomes.map((o) => o.error?.message ?? null), [null, null]);
  assert.deepEqual([...server.files.keys()].sort(), [
    "/dest/20240315/f0.fits",
    "/dest/20240315/f1.fits",
  ]);
  assert.equal(logins, 1);
});

for (
  const [step, silentFrom] of [
    ["the login", /^USER /],
    ["making the night folder", /^MKD \/dest\/20240315$/],
    ["an upload's start (the server opening the file)", /^STOR /],
    ["checking the copy's size", /^SIZE /],
    ["the rename into place", /^RNFR /],
  ] as const
) {
  Deno.test(`ftp: a server that stops answering at ${step} fails the whole batch once, retryable, as unreachable, naming server and command`, async () => {
    // A transfer timeout longer than the reply bound: the reply bound decides.
    const { server, outcomes, logins } = await sendTo({ silentFrom }, 3, 1000, 6);
    const command = silentFrom.source.slice(1).replace(/\\/g, "").replace(/\$$/, "").trim();
    assert.equal(server.unanswered.length, 1, `one command waited for: ${server.unanswered}`);
    assert.ok(server.unanswered[0].startsWith(command), server.unanswered[0]);
    assert.equal(logins, 1, "no login again within the batch");
    assertGivenUp(
      outcomes,
      new RegExp(
        `FTP server anonymous@127\\.0\\.0\\.1:${server.port} does not answer: no reply to ` +
          `${command.replace(/[/.]/g, "\\$&")}.* within 1\\.5 s; the connection was dropped, ` +
          "the batch is tried again",
      ),
    );
    const final = [...server.files.keys()].filter((path) =>
      /^\/dest\/20240315\/f\d\.fits$/.test(path)
    );
    assert.deepEqual(final, [], "nothing under a final name");
  });
}

Deno.test("ftp: a server that stops reading an upload's data: said after the reply wait, the batch fails after transfer_timeout_seconds without progress, once, naming the upload", async () => {
  const logs = await captureLogs();
  // 24 MiB: more than the loopback connection's buffers hold, so the upload stalls.
  const { server, outcomes, logins } = await sendTo({ stallData: true }, 2, 24 * 1024 * 1024, 6)
    .finally(() => logs.stop());
  const upload = `/dest/20240315/\\S+/f0\\.fits`;
  const warned = new RegExp(
    `FTP server anonymous@127\\.0\\.0\\.1:${server.port} has taken no data of ${upload} for ` +
      "1\\.5 s: the upload waits for it up to 6 s \\(transfer_timeout_seconds\\)",
  );
  assert.ok(
    logs.records.some((r) => r.level === "warning" && warned.test(r.message.map(String).join(""))),
    "said while it waits",
  );
  assert.equal(server.received.filter((c) => c.startsWith("STOR ")).length, 1, "one upload");
  assert.equal(logins, 1, "no login again within the batch");
  assertGivenUp(
    outcomes,
    new RegExp(
      `FTP server anonymous@127\\.0\\.0\\.1:${server.port} does not answer: STOR ${upload} ` +
        "made no progress for 6 s \\(transfer_timeout_seconds\\)",
    ),
  );
});

Deno.test("ftp, a job: a server that stops answering shows the job unreachable, saying which server and command, in the log too; the files arrive once it answers again", async () => {
  // The night folder (the files' mtime: today) is made first.
  const server = startSilentFtp({ silentFrom: /^MKD \/dest\/\d{8}$/ });
  const sent = new Map(["a.fits", "b.fits"].map((name) => [name, randomBytes(1000)]));
  await using sandbox = await jobOfSilentServer(server, "silent", sent, 6, { fullProbeMs: 300 });
  const { job, ledger, logs, runner } = sandbox;
  const said = new RegExp(
    `FTP server anonymous@127\\.0\\.0\\.1:${server.port} does not answer: no reply to MKD ` +
      "/dest/\\d{8} within 1\\.5 s",
  );
  const snapshot = await startedUntilUnreachable(runner);
  assert.match(snapshot.reason ?? "", said);
  const lines = logs.records.map((record) => record.message.map(String).join(""));
  assert.ok(lines.some((line) => said.test(line)), "the log says it");

  server.answerAgain();
  const row = (rel: string) => FileRows.of(ledger, job).get(rel);
  await waitFor(
    () => ["a.fits", "b.fits"].every((rel) => row(rel)?.state === "done"),
    60_000,
    "both files to arrive",
  );
  assert.equal(runner.snapshot().state, "watching");
  const arrived = [...server.files.keys()].sort();
  assert.equal(arrived.length, 2, arrived.join(", "));
  assert.match(arrived.join(" "), /^\/dest\/\d{8}\/a\.fits \/dest\/\d{8}\/b\.fits$/);
  for (const path of arrived) {
    assert.deepEqual(server.files.get(path), sent.get(path.split("/").pop()!), path);
  }
});

Deno.test("ftp, a job: while the server takes no data of an upload (not given up yet), the job is unreachable, saying which upload; once it reads again, the file arrives and the job is watching", async () => {
  const server = startSilentFtp({ stallData: true });
  // 24 MiB: more than the loopback connection's buffers hold, so the upload stalls.
  const bytes = randomBytes(24 * 1024 * 1024);
  // The transfer timeout far beyond the test: the upload is never given up here.
  await using sandbox = await jobOfSilentServer(
    server,
    "stalled",
    new Map([["a.fits", bytes]]),
    3600,
  );
  const { job, ledger, logs, runner } = sandbox;
  const row = () => FileRows.of(ledger, job).get("a.fits");
  const snapshot = await startedUntilUnreachable(runner);
  assert.match(
    snapshot.reason ?? "",
    new RegExp(
      `^FTP server anonymous@127\\.0\\.0\\.1:${server.port} takes no data of ` +
        "/dest/\\d{8}/\\S+/a\\.fits \\(none for 1\\.5 s\\): the upload waits for it up to " +
        "3600 s \\(transfer_timeout_seconds\\)",
    ),
  );
  // Still the one upload, not given up: nothing failed.
  assert.deepEqual(snapshot.inFlight.map((file) => file.relPath), ["a.fits"]);
  assert.equal(row()?.state, "transferring");
  assert.equal(server.received.filter((c) => c.startsWith("STOR ")).length, 1, "one upload");
  const lines = logs.records.map((record) => record.message.map(String).join(""));
  assert.ok(!lines.some((line) => /does not answer|Failed to transfer/.test(line)), "no failure");

  server.readAgain();
  await waitFor(() => row()?.state === "done", 60_000, "the file to arrive");
  assert.equal(runner.snapshot().state, "watching", runner.snapshot().reason ?? "");
  const arrived = [...server.files.keys()];
  assert.equal(arrived.length, 1, arrived.join(", "));
  assert.match(arrived[0], /^\/dest\/\d{8}\/a\.fits$/);
  assert.deepEqual(server.files.get(arrived[0]), bytes);
});

Deno.test("ftp, a job: while the server takes no data of one upload but takes another's, the job is not unreachable; once only the stalled upload is left, it is, saying which; once the server reads it, the file arrives and the job is watching", async () => {
  // a.fits is held, b.fits read slowly (64 KiB at a time) until read fast: it moves meanwhile.
  const server = startSilentFtp({ stallData: /\/a\.fits$/, slowData: /\/b\.fits$/ });
  // 24 MiB: more than the loopback connection's buffers hold, so the upload stalls.
  const a = randomBytes(24 * 1024 * 1024);
  // 64 MiB: read slowly, it takes seconds, far longer than the look at the job below.
  const b = randomBytes(64 * 1024 * 1024);
  await using sandbox = await jobOfSilentServer(
    server,
    "stalled-and-moving",
    new Map([["a.fits", a]]),
    3600,
    {
      overrides: { max_concurrent_transfers: 2 },
    },
  );
  const { job, ledger, logs, runner } = sandbox;
  const row = (rel: string) => FileRows.of(ledger, job).get(rel);
  const stallOf = (name: string) =>
    new RegExp(
      `^FTP server anonymous@127\\.0\\.0\\.1:${server.port} takes no data of ` +
        `/dest/\\d{8}/\\S+/${name}\\.fits \\(none for 1\\.5 s\\)`,
    );
  const warned = (name: string) =>
    logs.records.some((record) =>
      record.level === "warning" &&
      new RegExp(`has taken no data of /dest/\\d{8}/\\S+/${name}\\.fits`)
        .test(record.message.map(String).join(""))
    );
  let snapshot = await startedUntilUnreachable(runner);
  assert.match(snapshot.reason ?? "", stallOf("a"));
  assert.ok(warned("a"), "the stall is said in the log");

  // b.fits comes while a.fits is held: a batch of its own, beside a.fits's.
  const watch = job.watch_path;
  await Deno.writeFile(join(watch, "b.part"), b);
  await Deno.rename(join(watch, "b.part"), join(watch, "b.fits"));
  const readOfB = () => [...server.bytesRead].find(([path]) => path.endsWith("/b.fits"))?.[1] ?? 0;
  await waitFor(() => readOfB() > 0, 60_000, "the server to take data of b.fits");
  snapshot = runner.snapshot();
  assert.ok(readOfB() < b.length, "b.fits still on its way");
  assert.deepEqual(snapshot.inFlight.map((file) => file.relPath).sort(), ["a.fits", "b.fits"]);
  assert.equal(snapshot.state, "watching", snapshot.reason ?? "");

  server.readFast();
  await waitFor(() => row("b.fits")?.state === "done", 60_000, "b.fits to arrive");
  const arrived = (name: string) =>
    [...server.files.keys()].filter((path) => new RegExp(`^/dest/\\d{8}/${name}$`).test(path));
  assert.equal(arrived("b.fits").length, 1);
  assert.deepEqual(server.files.get(arrived("b.fits")[0]), b);
  assert.ok(!warned("b"), "b.fits moved throughout");
  // Only the stalled upload is left: the job waits on it.
  snapshot = runner.snapshot();
  assert.equal(snapshot.state, "unreachable", snapshot.reason ?? "");
  assert.match(snapshot.reason ?? "", stallOf("a"));
  assert.deepEqual(snapshot.inFlight.map((file) => file.relPath), ["a.fits"]);
  assert.equal(row("a.fits")?.state, "transferring");

  server.readAgain();
  await waitFor(() => row("a.fits")?.state === "done", 60_000, "a.fits to arrive");
  assert.equal(runner.snapshot().state, "watching", runner.snapshot().reason ?? "");
  assert.equal(arrived("a.fits").length, 1);
  assert.deepEqual(server.files.get(arrived("a.fits")[0]), a);
  const lines = logs.records.map((record) => record.message.map(String).join(""));
  assert.ok(!lines.some((line) => /does not answer|Failed to transfer/.test(line)), "no failure");
});

/**
 * A watching job of `name` that sends `files` (written to a fresh watch folder) to `server`,
 * with short retries, replies waited for `REPLY_WAIT_MS`, `options.overrides` to the job, its
 * ledger and the logs captured; disposing of it stops the job and the server and removes its
 * folder.
 */
async function jobOfSilentServer(
  server: SilentFtp,
  name: string,
  files: Map<string, Uint8Array>,
  transferTimeoutSeconds: number,
  options: { fullProbeMs?: number; overrides?: Partial<JobConfig> } = {},
) {
  const root = await Deno.makeTempDir({ prefix: `itx-ftp-${name}-job-` });
  const watch = join(root, "watch");
  await Deno.mkdir(watch, { recursive: true });
  for (const [file, bytes] of files) await Deno.writeFile(join(watch, file), bytes);
  const job = server.job({
    name,
    watch_path: watch,
    file_patterns: ["*.fits"],
    stability_window_seconds: 0.2,
    night_timezone: "UTC",
    retry_attempts: 3,
    retry_delay_seconds: 0.1,
    retry_max_delay_seconds: 0.2,
    transfer_timeout_seconds: transferTimeoutSeconds,
    ...options.overrides,
  });
  const logs = await captureLogs();
  const ledger = Ledger.open(join(root, "state"));
  const transport = new FtpTransport(job, { replyWaitMs: REPLY_WAIT_MS });
  const runner = new JobRunner(job, ledger, transport, {
    once: false,
    closedForMs: 50,
    fullProbeMs: options.fullProbeMs,
  });
  return {
    job,
    ledger,
    logs,
    runner,
    async [Symbol.asyncDispose]() {
      await runner.stop();
      ledger.close();
      await logs.stop();
      await server.stop();
      await Deno.remove(root, { recursive: true });
    },
  };
}

/** Start `runner` and wait until its job leaves `watching`, which must be for `unreachable`. */
async function startedUntilUnreachable(runner: JobRunner) {
  await runner.start();
  await waitFor(() => runner.snapshot().state !== "watching", 60_000, "the job's state to change");
  const snapshot = runner.snapshot();
  assert.equal(snapshot.state, "unreachable", snapshot.reason ?? "");
  return snapshot;
}

Deno.test("ftp: the connection lost after the server renamed a copy into place, before its reply: the file fails, its copy told as maybe in place", async () => {
  const { server, outcomes } = await sendTo({ cutAfter: /^RNTO / }, 1, 20_000, 30);
  assert.equal(outcomes.length, 1);
  assert.ok(outcomes[0].error !== null, "not known to have arrived");
  assert.ok(server.files.has("/dest/20240315/f0.fits"), "the copy is under its final name");
  // Looked for at the destination before it is sent again: that copy is the job's own.
  assert.equal(outcomes[0].mayBeInPlace, true, outcomes[0].error.message);
});
