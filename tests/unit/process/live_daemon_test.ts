/**
 * Whether the daemon a PID file names still runs, told by its pid and start time (`ps`): a real
 * process of this computer is that daemon only when it started before the daemon said it started.
 */
import assert from "node:assert/strict";
import { daemonStillRuns, elapsedSeconds } from "../../../src/process/live_daemon.ts";

Deno.test("elapsedSeconds reads ps's etime in each of its forms", () => {
  assert.equal(elapsedSeconds("00:07"), 7);
  assert.equal(elapsedSeconds("05:02"), 302);
  assert.equal(elapsedSeconds("02:03:04"), 7384);
  assert.equal(elapsedSeconds("1-02:03:04"), 93784);
  assert.equal(elapsedSeconds(""), undefined);
  assert.equal(elapsedSeconds("soon"), undefined);
});

/** A process of this program (deno) that waits, as a daemon would, until killed. */
function waitingDeno(): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", "setTimeout(() => {}, 120_000)"],
    stdin: "null",
  }).spawn();
}

Deno.test({
  name: "daemonStillRuns: a live process of this program started before the time said is the " +
    "daemon; one started later (its pid reused), another program, one of another computer, a " +
    "dead one or this process is not",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const daemon = waitingDeno();
    const other = new Deno.Command("sleep", { args: ["120"], stdin: "null" }).spawn();
    try {
      const pid = daemon.pid;
      const later = new Date(Date.now() + 5_000).toISOString();
      const earlier = new Date(Date.now() - 3_600_000).toISOString();
      assert.equal(daemonStillRuns({ pid, startedAt: later }), true);
      assert.equal(daemonStillRuns({ pid, startedAt: later, host: Deno.hostname() }), true);
      assert.equal(daemonStillRuns({ pid, startedAt: earlier }), false, "its pid reused");
      assert.equal(daemonStillRuns({ pid: other.pid, startedAt: later }), false, "sleep");
      assert.equal(daemonStillRuns({ pid, startedAt: later, host: "another-pc" }), false);
      assert.equal(daemonStillRuns({ pid }), false, "no start time said");
      assert.equal(daemonStillRuns({ pid: Deno.pid, startedAt: later }), false, "this process");
    } finally {
      daemon.kill("SIGKILL");
      other.kill("SIGKILL");
      await Promise.all([daemon.status, other.status]);
    }
    assert.equal(daemonStillRuns({ pid: daemon.pid, startedAt: new Date().toISOString() }), false);
  },
});
