/**
 * What a failed attempt means: ledger update and next step, decided from the
 * error, the file as sent and the file as it is now; and the retry delays
 * (exponential from `retry_delay_seconds`, capped at
 * `retry_max_delay_seconds`, with ±20 % jitter).
 */
import assert from "node:assert/strict";
import {
  failureScope,
  isConnectionFailure,
  isDestinationFull,
  TransferError,
} from "../../../src/errors.ts";
import { baseGoneReason } from "../../../src/transfer/base_folder.ts";
import {
  attemptOutcome,
  BaseRefusals,
  type FailedAttempt,
  retryDelayMs,
  slowRetryMs,
} from "../../../src/pipeline/attempt_outcome.ts";
import { classifyFailure } from "../../../src/transfer/classify.ts";
import { folderFailedReason } from "../../../src/transfer/ssh/remote_folders.ts";
import { CommandError } from "../../../src/errors.ts";

const SENT = { size: 1000, mtimeMs: 42_000 };
const POLICY = { retry_attempts: 3, retry_delay_seconds: 5, retry_max_delay_seconds: 300 };
const NOW = 1_700_000_000_000;

function attempt(overrides: Partial<FailedAttempt> = {}): FailedAttempt {
  return {
    error: new TransferError("Cannot send a.fits: connection reset", "retry"),
    sent: SENT,
    attempts: 0,
    current: SENT,
    policy: POLICY,
    pauseWhenUnavailable: true,
    now: NOW,
    random: () => 0.5,
    ...overrides,
  };
}

Deno.test("attemptOutcome: a source that is gone is forgotten", () => {
  assert.deepEqual(attemptOutcome(attempt({ current: null })), {
    ledger: { kind: "remove" },
    next: { kind: "drop" },
  });
});

Deno.test("attemptOutcome: a file of a watch folder that cannot be read is kept under observation, not forgotten; no attempt counted", () => {
  const watchProblem = "Transport endpoint is not connected (os error 107)";
  const error = new TransferError("Cannot send a.fits: its file system does not answer", "retry");
  const outcome = attemptOutcome(attempt({ error, attempts: 2, current: null, watchProblem }));
  assert.deepEqual(outcome.next, { kind: "observe", watchProblem });
  assert.deepEqual(outcome.ledger, {
    kind: "failure",
    failure: { error: error.message, attempts: 2, nextAttemptAt: 0, final: false },
  });
});

Deno.test("attemptOutcome: a source that changed waits to be complete again; no attempt counted", () => {
  const outcome = attemptOutcome(attempt({ attempts: 2, current: { ...SENT, size: 1500 } }));
  assert.deepEqual(outcome.next, { kind: "observe" });
  assert.deepEqual(outcome.ledger, {
    kind: "failure",
    failure: {
      error: "Cannot send a.fits: connection reset",
      attempts: 2,
      nextAttemptAt: 0,
      final: false,
    },
  });
});

Deno.test("attemptOutcome: a retryable failure waits with backoff, then gives up after retry_attempts", () => {
  const first = attemptOutcome(attempt());
  assert.deepEqual(first.next, {
    kind: "retry",
    attempts: 1,
    nextAttemptAt: NOW + 5000,
    delayMs: 5000,
  });
  assert.equal(first.ledger.kind === "failure" && first.ledger.failure.nextAttemptAt, NOW + 5000);
  const third = attemptOutcome(attempt({ attempts: 2 }));
  assert.equal(third.next.kind === "retry" && third.next.delayMs, 20_000);
  const last = attemptOutcome(attempt({ attempts: 3 }));
  assert.deepEqual(last.next, { kind: "give-up", attempts: 4, nextAttemptAt: 0, first: true });
  assert.equal(last.ledger.kind === "failure" && last.ledger.failure.final, true);
});

Deno.test("attemptOutcome: after the fast retries a failing file is tried every retry_max_delay_seconds", () => {
  const policy = { retry_attempts: 3, retry_delay_seconds: 5, retry_max_delay_seconds: 600 };
  const slow = slowRetryMs(policy);
  assert.equal(slow, 600_000);
  const gaveUp = attemptOutcome(attempt({ attempts: 3, slowRetryMs: slow }));
  assert.deepEqual(gaveUp.next, {
    kind: "give-up",
    attempts: 4,
    nextAttemptAt: NOW + 600_000,
    first: true,
  });
  assert.deepEqual(gaveUp.ledger, {
    kind: "failure",
    failure: {
      error: "Cannot send a.fits: connection reset",
      attempts: 4,
      nextAttemptAt: NOW + 600_000,
      final: true,
    },
  });
  // Failing again: the same slow step, not the first (its on_failure hook does not run again),
  // and never back to the fast retries, whatever the count.
  const again = attemptOutcome(attempt({ attempts: 1, failing: true, slowRetryMs: slow }));
  assert.deepEqual(again.next, {
    kind: "give-up",
    attempts: 2,
    nextAttemptAt: NOW + 600_000,
    first: false,
  });
  // A fatal error goes straight to the slow schedule.
  const fatal = attemptOutcome(
    attempt({ error: new TransferError("Cannot send: refused", "fatal"), slowRetryMs: slow }),
  );
  assert.equal(fatal.next.kind === "give-up" && fatal.next.nextAttemptAt, NOW + 600_000);
  // retry_max_delay_seconds: 0 still waits a second between slow retries.
  assert.equal(
    slowRetryMs({ ...policy, retry_delay_seconds: 0, retry_max_delay_seconds: 0 }),
    1000,
  );
});

Deno.test("attemptOutcome: a fatal error gives up at once", () => {
  const error = new TransferError("Cannot send: authentication was refused", "fatal");
  const outcome = attemptOutcome(attempt({ error }));
  assert.deepEqual(outcome.next, { kind: "give-up", attempts: 1, nextAttemptAt: 0, first: true });
  assert.deepEqual(outcome.ledger, {
    kind: "failure",
    failure: { error: error.message, attempts: 1, nextAttemptAt: 0, final: true },
  });
});

Deno.test("attemptOutcome: a full destination holds the file for the job's pause; no attempt counted", () => {
  const error = new TransferError(
    "Cannot send a.fits: destination is full (No space left on device (os error 28))",
    "retry-later",
  );
  assert.deepEqual(attemptOutcome(attempt({ error, attempts: 3 })), {
    ledger: {
      kind: "failure",
      failure: { error: error.message, attempts: 3, nextAttemptAt: 0, final: false },
    },
    next: { kind: "hold" },
  });
  // A one-shot run must end: retried and given up as usual.
  const once = attemptOutcome(attempt({ error, attempts: 3, pauseWhenUnavailable: false }));
  assert.deepEqual(once.next, { kind: "give-up", attempts: 4, nextAttemptAt: 0, first: true });
});

Deno.test("attemptOutcome: a destination that cannot be reached now holds the file for the job's pause; a refused login does not", () => {
  const unreachable = [
    "Cannot send a.fits: the connection to obs@freya failed: Connection refused",
    "Cannot send a.fits: the destination folder /mnt/share is gone (a share that is not mounted?)",
  ];
  for (const message of unreachable) {
    const error = new TransferError(message, "retry");
    assert.deepEqual(
      attemptOutcome(attempt({ error, attempts: 2 })).next,
      { kind: "hold" },
      message,
    );
    // A one-shot run must end: retried and given up as usual.
    const once = attemptOutcome(attempt({ error, attempts: 3, pauseWhenUnavailable: false }));
    assert.equal(once.next.kind, "give-up", message);
  }
  // A refused login or a changed host key needs a fix: each file fails and is retried as before.
  const refused = new TransferError(
    "Cannot send a.fits: authentication was refused for obs@freya: install your public key",
    "fatal",
  );
  assert.equal(attemptOutcome(attempt({ error: refused })).next.kind, "give-up");
  // A file's own problem is retried on its own.
  const own = new TransferError("Cannot send a.fits: Permission denied", "retry");
  assert.equal(attemptOutcome(attempt({ error: own })).next.kind, "retry");
});

Deno.test("isDestinationFull: the transports' words for a full disk or quota, nothing else", () => {
  const context = { host: "freya", destination: "obs@freya", port: null };
  const run = (stderr: string) =>
    new CommandError("failed", {
      argv: ["rsync"],
      code: 11,
      signal: null,
      timedOut: false,
      stderr,
      durationMs: 1,
    });
  const full = [
    classifyFailure(
      run('rsync: write failed on "/d/a.fits": No space left on device (28)'),
      "send",
      context,
    ),
    classifyFailure(run("scp: /d/a.fits: Disk quota exceeded"), "send", context),
    new TransferError(
      "Cannot send a: destination is full (No space left on device)",
      "retry-later",
    ),
  ];
  for (const error of full) assert.equal(isDestinationFull(error), true, error.message);
  const other = [
    classifyFailure(run('rsync: mkdir "/d" failed: Permission denied (13)'), "send", context),
    classifyFailure(run("Read-only file system"), "send", context),
    new TransferError("Cannot send a: No space left on device", "retry"),
  ];
  for (const error of other) assert.equal(isDestinationFull(error), false, error.message);
});

Deno.test("isConnectionFailure: the host and the connection, not one file", () => {
  const says = (message: string) => isConnectionFailure(new TransferError(message, "retry"));
  assert.ok(says("Cannot send a.fits: the connection to freya failed: check that the host is up"));
  assert.ok(says("Cannot send a.fits: authentication was refused for obs@freya: install ..."));
  assert.ok(says("Cannot send a.fits: cannot resolve the host name freya: check remote_host"));
  assert.ok(says("FTP server obs@ftp:21 refused the login (530 Login incorrect)"));
  assert.ok(!says("Cannot send a.fits: a file named 20240315 is in the way at /data"));
  assert.ok(!says("Cannot send a.fits: the destination on freya is full (no space left)"));
  assert.ok(!says("Cannot send a.fits: the remote user on freya may not write there"));
});

Deno.test("failureScope: the connection, a destination folder that is gone, or the file", () => {
  const scope = (message: string) => failureScope(new TransferError(message, "retry-later"));
  assert.equal(scope("Cannot send a.fits: the connection to freya failed: check it"), "connection");
  // As every method words it (transfer/classify.ts).
  assert.equal(
    scope(`Cannot send a.fits to freya:/x: ${baseGoneReason("/mnt/share")}`),
    "destination",
  );
  assert.equal(scope("Cannot send a.fits: a file named 20240315 is in the way at /data"), "file");
});

Deno.test("folderFailedReason: a file's folder that is there but refuses the login its upload folder is said as such, not as a folder that cannot be made", () => {
  const context = { host: "freya", destination: "obs@freya", port: null };
  const message =
    "mkdir: cannot create directory '/data/20240315/ro/.incoming-b8ac-x1.image-transfer-partial': Permission denied";
  const { what, reason } = folderFailedReason({ message, inBase: false }, context, "/data");
  assert.equal(what, "its upload folder in /data/20240315/ro");
  assert.match(reason, /may not write/);
  // The file's own folder not made: no words of its own (the batch says "the folder").
  const own = "mkdir: cannot create directory '/data/20240315/ro': Permission denied";
  assert.equal(
    folderFailedReason({ message: own, inBase: false }, context, "/data").what,
    undefined,
  );
});

Deno.test("failureScope: a folder made in the destination folder the login may not write is the destination's; one below it is the file's", () => {
  const context = { host: "freya", destination: "obs@freya", port: null };
  // How an SSH batch words a folder its `make_folders` could not make (`transfer/ssh/batch.ts`).
  const folderError = (message: string, inBase: boolean) => {
    const { kind, reason } = folderFailedReason({ message, inBase }, context, "/data");
    return new TransferError(
      `Cannot send a.fits to obs@freya:/data/20240315/a.fits: cannot create the folder: ${reason} (${message})`,
      kind,
    );
  };
  const denied = "mkdir: cannot create directory '/data/20240315': Permission denied";
  const base = folderError(denied, true);
  assert.equal(failureScope(base), "destination", base.message);
  assert.match(base.message, /may not write into the destination folder \/data /);
  // Every file waits for the job's pause, none uses up its retries.
  assert.deepEqual(attemptOutcome(attempt({ error: base, attempts: 3 })).next, { kind: "hold" });
  // A night folder there that refuses the login: its own files, retried on their own.
  const below = folderError(
    "mkdir: cannot create directory '/data/20240315/.itx-up': Permission denied",
    false,
  );
  assert.equal(failureScope(below), "file", below.message);
  assert.equal(attemptOutcome(attempt({ error: below })).next.kind, "retry");
  // In the destination folder, but not refused to the login (a file in the way): the file's.
  const blocked = folderError("/data/20240315: Not a directory", true);
  assert.equal(failureScope(blocked), "file", blocked.message);
});

Deno.test("BaseRefusals: a destination folder the login may not write into is the destination's until a file arrives after a refusal; then a refused file's own, on every later try too", () => {
  const context = { host: "freya", destination: "obs@freya", port: null };
  const denied = "mkdir: cannot create directory '/data/20240315': Permission denied";
  const { kind, reason } = folderFailedReason({ message: denied, inBase: true }, context, "/data");
  const refused = new TransferError(
    `Cannot send old.fits to obs@freya:/data/20240315/old.fits: cannot create the folder: ${reason} (${denied})`,
    kind,
  );
  const refusals = new BaseRefusals();
  // Nothing arrived: every file is refused alike, the job pauses.
  assert.equal(refusals.of(refused, 0), refused);
  assert.equal(refusals.of(refused, 0), refused);
  // One tried again (run --once: nothing pauses) is its own, never said as one of many that go.
  const retried = refusals.of(refused, 1);
  assert.match(retried.message, /\(permission denied; no new folder can be made there\): make/);
  assert.doesNotMatch(retried.message, /files whose folder is there arrive/);
  // Tonight's files arrive (their night folder is there): the next refusal is the file's own.
  refusals.arrived();
  const own = refusals.of(refused, 0);
  assert.equal(failureScope(own), "file", own.message);
  assert.equal(own.kind, "retry");
  assert.match(own.message, /may not make this file's folder in the destination folder \/data /);
  assert.match(own.message, /make its folder there, or fix the owner or permissions/);
  assert.match(own.message, /files whose folder is there arrive/);
  assert.equal(attemptOutcome(attempt({ error: own })).next.kind, "retry");
  // Its next try, nothing arrived meanwhile: still its own (it counts attempts, a hold does not).
  assert.equal(failureScope(refusals.of(refused, 1)), "file");
  // A new file refused with no arrival since the last refusal (a new night): the destination's.
  assert.equal(refusals.of(refused, 0), refused);
  // Any other error is as it is.
  const other = new TransferError("Cannot send a.fits: connection lost or refused", "retry");
  refusals.arrived();
  assert.equal(refusals.of(other, 0), other);
  assert.equal(failureScope(refusals.of(refused, 0)), "file");
});

Deno.test("BaseRefusals: the files of one batch refused by one folder together, after a file arrived, are each their own; a later batch's, nothing arrived since, the destination's", () => {
  const context = { host: "freya", destination: "obs@freya", port: null };
  const denied = "mkdir: cannot create directory '/data/20240315': Permission denied";
  const { kind, reason } = folderFailedReason({ message: denied, inBase: true }, context, "/data");
  const refusal = (name: string) =>
    new TransferError(
      `Cannot send ${name} to obs@freya:/data/20240315/${name}: cannot create the folder: ${reason} (${denied})`,
      kind,
    );
  const refusals = new BaseRefusals();
  refusals.arrived();
  const batch = {};
  for (const name of ["old.fits", "old2.fits", "old3.fits"]) {
    assert.equal(failureScope(refusals.of(refusal(name), 0, batch)), "file", name);
  }
  // Another batch's new file, nothing arrived since (a new night): the destination's.
  const later = refusal("old4.fits");
  assert.equal(refusals.of(later, 0, {}), later);
});

Deno.test("BaseRefusals (scp, rsync): a refused folder that files arrived in in this run is the destination's, however many arrived before it, on a retry and for each file of the batch; another night's is still a file's own", () => {
  const context = { host: "freya", destination: "obs@freya", port: null };
  const refusal = (destination: string) => {
    const folder = destination.slice(0, destination.indexOf("/"));
    const denied = `mkdir: cannot create directory '/data/${folder}': Permission denied`;
    const { kind, reason } = folderFailedReason(
      { message: denied, inBase: true },
      context,
      "/data",
    );
    return new TransferError(
      `Cannot send ${destination} to obs@freya:/data/${destination}: cannot create the folder: ${reason} (${denied})`,
      kind,
    );
  };
  const refusals = new BaseRefusals();
  // Tonight's first file arrived; then its night folder went and none can be made.
  refusals.arrived(["20261130/first.fits"]);
  const batch = {};
  for (const name of ["g1.fits", "g2.fits", "g3.fits"]) {
    const refused = refusal(`20261130/${name}`);
    const said = refusals.of(refused, 0, batch, `20261130/${name}`);
    assert.equal(said, refused, name);
    assert.equal(failureScope(said), "destination", name);
    assert.equal(attemptOutcome(attempt({ error: said })).next.kind, "hold", name);
  }
  // A file that had failed before (a connection lost): the destination's too.
  const retried = refusal("20261130/g4.fits");
  assert.equal(refusals.of(retried, 2, {}, "20261130/g4.fits"), retried);
  // Files arrive again (into the folder made again), then one of another night is refused: its own,
  // and so are the files of its batch refused alike; one of tonight's folder never is.
  refusals.arrived(["20261130/g1.fits"]);
  const old = {};
  const oldRefused = refusals.of(refusal("20240315/old.fits"), 0, old, "20240315/old.fits");
  assert.equal(failureScope(oldRefused), "file", oldRefused.message);
  assert.equal(
    failureScope(refusals.of(refusal("20240315/old2.fits"), 0, old, "20240315/old2.fits")),
    "file",
  );
  const tonight = refusal("20261130/g5.fits");
  assert.equal(refusals.of(tonight, 0, old, "20261130/g5.fits"), tonight);
});

const MIDDLE = () => 0.5; // jitter factor exactly 1.0

Deno.test("retryDelayMs: doubles with each attempt from the base delay", () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((attempt) => retryDelayMs(attempt, 5, 10_000, MIDDLE)),
    [5_000, 10_000, 20_000, 40_000, 80_000],
  );
});

Deno.test("retryDelayMs: never exceeds the cap", () => {
  assert.equal(retryDelayMs(4, 5, 30, MIDDLE), 30_000);
  assert.equal(retryDelayMs(100, 5, 300, MIDDLE), 300_000);
  // A huge attempt number must not overflow into Infinity or NaN.
  assert.equal(retryDelayMs(5000, 5, 300, MIDDLE), 300_000);
});

Deno.test("retryDelayMs: attempt 0 or below counts as the first failure", () => {
  assert.equal(retryDelayMs(0, 2, 60, MIDDLE), 2_000);
  assert.equal(retryDelayMs(-3, 2, 60, MIDDLE), 2_000);
});

Deno.test("retryDelayMs: jitter stays within ±20 %", () => {
  assert.equal(retryDelayMs(1, 10, 300, () => 0), 8_000);
  assert.equal(retryDelayMs(1, 10, 300, () => 0.999999), 12_000);
  assert.equal(retryDelayMs(3, 10, 300, () => 0.25), 36_000);
  // A capped delay still varies downwards, but never waits longer than the cap.
  assert.equal(retryDelayMs(20, 10, 300, () => 0), 240_000);
  assert.equal(retryDelayMs(20, 10, 300, () => 0.999999), 300_000);
  assert.equal(retryDelayMs(5, 10, 100, () => 0.999999), 100_000);
  for (let i = 0; i < 1000; i++) {
    const delay = retryDelayMs(2, 1.5, 300);
    assert.ok(delay >= 2_400 && delay <= 3_600, `delay ${delay} outside ±20 % of 3000`);
    const capped = retryDelayMs(30, 1.5, 60);
    assert.ok(capped >= 48_000 && capped <= 60_000, `capped delay ${capped} outside [48 s, 60 s]`);
  }
});

Deno.test("retryDelayMs: sub-second and zero delays", () => {
  assert.equal(retryDelayMs(1, 0.05, 300, MIDDLE), 50);
  assert.equal(retryDelayMs(3, 0.05, 300, MIDDLE), 200);
  assert.equal(retryDelayMs(3, 0, 300, () => 0.9), 0);
  assert.equal(retryDelayMs(3, 5, 0, () => 0.9), 0);
});
