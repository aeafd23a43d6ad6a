/**
 * `bandwidth_limit`: the units it takes, the option each program gets (the
 * whole limit, one call at a time), and
 * the pacing of the copies image-transfer makes itself (`local`, `ftp`): one
 * throttle per job at the whole limit, which a real copy waits for. Nothing
 * here measures time: how well the limit holds is measured by
 * `deno task bench` (bench/bandwidth.ts).
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import {
  bandwidthLimit,
  parseBandwidth,
  rsyncBwlimit,
  scpLimit,
} from "../../../src/config/sizes.ts";
import { FtpTransport } from "../../../src/transfer/ftp/ftp.ts";
import type { LocalTransport } from "../../../src/transfer/local/local.ts";
import { LimitedCalls, Throttle } from "../../../src/transfer/throttle.ts";
import { runCli } from "../../helpers/cli.ts";
import { FakeClock } from "../../helpers/fake_clock.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { runningProcesses } from "../../helpers/processes.ts";
import { startSshd } from "../../helpers/sshd.ts";
import { makeItem, withTransport } from "../../helpers/transports.ts";
import { startVsftpd } from "../../helpers/vsftpd.ts";

Deno.test("bandwidth_limit: human units in bytes per second; rsync KiB/s, scp Kbit/s (K = 1024), never above the limit", () => {
  assert.equal(parseBandwidth(""), null);
  assert.equal(parseBandwidth("10MB/s"), 10_000_000);
  assert.equal(parseBandwidth("500KiB/s"), 512_000);
  assert.equal(parseBandwidth("1.5 MiB/s"), 1.5 * 1024 * 1024);
  assert.equal(parseBandwidth("20Mbit/s"), 2_500_000);
  assert.equal(parseBandwidth("1GB/s"), 1e9);
  for (const bad of ["10MB", "fast", "-1MB/s", "0.5KiB/s", "10 parsecs/s", "1e6B/s"]) {
    assert.equal(parseBandwidth(bad), undefined, bad);
  }
  assert.equal(rsyncBwlimit(512_000), "500");
  // Never above the limit: rsync's unit is 1024 bytes, scp's 1024 bits (OpenSSH: -l * 1024 bit/s).
  // Before: "--bwlimit=977" (1,000,448 B/s) and "-l 8000" (1,024,000 B/s) for 1MB/s.
  assert.equal(rsyncBwlimit(1_000_000), "976");
  assert.equal(scpLimit(1_000_000), "7812");
  assert.equal(scpLimit(512_000), "4000");
  assert.equal(scpLimit(1024), "8");
  assert.equal(rsyncBwlimit(1024), "1");
  for (const bytes of [1024, 1500, 999_999, 1_000_000, 2_500_000, 1e9]) {
    assert.ok(Number(rsyncBwlimit(bytes)) * 1024 <= bytes, `rsync ${bytes}`);
    assert.ok(Number(scpLimit(bytes)) * 1024 / 8 <= bytes, `scp ${bytes}`);
  }
  assert.equal(bandwidthLimit({ bandwidth_limit: "4MB/s" }), 4e6);
  assert.equal(bandwidthLimit({ bandwidth_limit: "" }), null);
});

Deno.test("bandwidth_limit: 0, as a number or text, is no limit; another bare number is refused for its missing unit, in one step", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-bw-zero-" });
  try {
    const config = join(root, "config.yaml");
    const job = `watch_path: ${JSON.stringify(root)}\nremote_base_path: /tmp/x\n` +
      "transfer_method: local\n";
    for (const zero of ["0", '"0"']) {
      await Deno.writeTextFile(config, `${job}bandwidth_limit: ${zero}\n`);
      const out = await runCli(["config", "validate", "-c", config], { env: { HOME: root } });
      // Before: "expected text, got 0 (put it in quotes ...)", and then "not a bandwidth: "0"".
      assert.equal(out.code, 0, out.stderr);
    }
    await Deno.writeTextFile(config, `${job}bandwidth_limit: 10000\n`);
    const out = await runCli(["config", "validate", "-c", config], { env: { HOME: root } });
    assert.equal(out.code, 2);
    assert.match(
      out.stderr,
      /config\.yaml:4: bandwidth_limit: not a bandwidth: 10000; write a number and a unit per second, e\.g\. "10MB\/s".*or "" or 0 for no limit/,
    );
    assert.doesNotMatch(out.stderr, /put it in quotes/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  assert.equal(bandwidthLimit({ bandwidth_limit: 0 }), null);
  assert.equal(bandwidthLimit({ bandwidth_limit: "0" }), null);
});

Deno.test("bandwidth_limit: a wrong value is refused with its line and an example", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-bw-config-" });
  try {
    const config = join(root, "config.yaml");
    await Deno.writeTextFile(
      config,
      `watch_path: ${JSON.stringify(root)}\nremote_base_path: /tmp/x\ntransfer_method: local\n` +
        'bandwidth_limit: "10 MB"\n',
    );
    const out = await runCli(["config", "validate", "-c", config], { env: { HOME: root } });
    assert.equal(out.code, 2);
    assert.match(
      out.stderr,
      /config\.yaml:4: bandwidth_limit: not a bandwidth: "10 MB"; .*"500KiB\/s"/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** Whether `promise` has settled once the microtasks queued so far ran. */
async function hasSettled(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  for (let i = 0; i < 10; i++) await Promise.resolve();
  return settled;
}

Deno.test("throttle: a copy alone runs at the whole rate; copies side by side share it", async () => {
  const clock = new FakeClock();
  const throttle = new Throttle(1000, clock);
  const never = new AbortController().signal;
  // Alone: 1000 bytes at 1000 B/s are due after a second, less the short burst allowed.
  let sent = throttle.sent(1000, never);
  clock.advance(749);
  assert.equal(await hasSettled(sent), false);
  clock.advance(1);
  assert.equal(await hasSettled(sent), true);
  // Going on, a second per 1000 bytes: the whole rate.
  sent = throttle.sent(1000, never);
  clock.advance(999);
  assert.equal(await hasSettled(sent), false);
  clock.advance(1);
  assert.equal(await hasSettled(sent), true);
  // Two copies side by side: 2000 bytes take two seconds together.
  const a = throttle.sent(1000, never);
  const b = throttle.sent(1000, never);
  clock.advance(1000);
  assert.deepEqual([await hasSettled(a), await hasSettled(b)], [true, false]);
  clock.advance(1000);
  assert.equal(await hasSettled(b), true);
  // A link idle for a minute saves up no more than the short burst.
  clock.advance(60_000);
  sent = throttle.sent(1000, never);
  clock.advance(749);
  assert.equal(await hasSettled(sent), false);
  clock.advance(1);
  assert.equal(await hasSettled(sent), true);
  assert.equal(throttle.bytes, 5000);
  assert.equal(throttle.waits, 5);
  // An abort ends the wait.
  const abort = new AbortController();
  sent = throttle.sent(1000, abort.signal);
  abort.abort(new Error("stopped"));
  await assert.rejects(sent, /stopped/);
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("limited calls: one at a time at the whole limit, in turn; a wait can be called off", async () => {
  const calls = new LimitedCalls(900_000);
  const seen: string[] = [];
  const ends: Array<() => void> = [];
  const call = (name: string) =>
    calls.during((limit) => {
      seen.push(`${name} ${limit}`);
      return new Promise<void>((resolve) => ends.push(resolve));
    });
  const first = call("first");
  const second = call("second");
  const stop = new AbortController();
  const third = calls.during(() => Promise.resolve(seen.push("third")), stop.signal);
  const fourth = call("fourth");
  await Promise.resolve();
  assert.deepEqual(seen, ["first 900000"]);
  assert.equal(calls.inFlight, 4);
  stop.abort(new Error("stopped"));
  await assert.rejects(third, /stopped/);
  assert.equal(calls.inFlight, 3);
  ends.shift()!();
  await first;
  await waitFor(() => seen.length === 2, 5_000, "the second call's turn");
  assert.deepEqual(seen, ["first 900000", "second 900000"]);
  ends.shift()!();
  await second;
  await waitFor(() => seen.length === 3, 5_000, "the fourth call's turn");
  assert.deepEqual(seen, ["first 900000", "second 900000", "fourth 900000"]);
  ends.shift()!();
  await fourth;
  assert.equal(calls.inFlight, 0);
  // A call that fails hands its turn on; the smallest rate is the smallest limit.
  await assert.rejects(calls.during(() => Promise.reject(new Error("failed"))), /failed/);
  assert.equal(calls.inFlight, 0);
  await new LimitedCalls(100).during((limit) => Promise.resolve(assert.equal(limit, 1024)));
  await new LimitedCalls(null).during((limit) => Promise.resolve(assert.equal(limit, null)));
});

const LIMIT = "64KiB/s";
const LIMIT_BYTES = 64 * 1024;

/** The option `argv` (a real rsync or scp) limits its rate with. */
function limitOption(method: "rsync" | "scp", argv: string[]): string | undefined {
  if (method === "rsync") {
    return argv.find((arg) => arg.startsWith("--bwlimit="))?.slice("--bwlimit=".length);
  }
  const at = argv.indexOf("-l");
  return at < 0 ? undefined : argv[at + 1];
}

/** The arguments of the running `method` process sending from `folder`, once there is one. */
async function runningCall(method: "rsync" | "scp", folder: string): Promise<string[]> {
  let found: string[] | undefined;
  await waitFor(
    async () => {
      const calls = await runningProcesses((argv) =>
        basename(argv[0]) === method && argv.some((arg) => arg.startsWith(folder))
      );
      found = calls[0]?.argv;
      return found !== undefined;
    },
    60_000,
    `${method} sending from ${folder}`,
  );
  return found!;
}

Deno.test("bandwidth_limit reaches rsync and scp: each call the whole limit, one call at a time", async (t) => {
  const sshd = await startSshd();
  try {
    for (const method of ["rsync", "scp"] as const) {
      await t.step(method, async () => {
        await withTransport(
          method,
          sshd,
          { bandwidth_limit: LIMIT, max_concurrent_transfers: 4 },
          async ({ src, dst, transport }) => {
            // Two batches at once under a limit: one uploading, the next getting ready.
            assert.equal(transport.maxBatchesAtOnce, 2);
            // Each file takes seconds at the limit: the second send is asked for while the
            // first call runs, and its call starts only once the first has ended.
            const data = [randomBytes(4 * LIMIT_BYTES), randomBytes(4 * LIMIT_BYTES)];
            const first = await makeItem(src, "20240315/first.fits", data[0]);
            const second = await makeItem(src, "20240316/second.fits", data[1]);
            await transport.warmUp?.();
            const signal = new AbortController().signal;
            const sending = [transport.send([first], signal)];
            const alone = await runningCall(method, join(src, "20240315"));
            sending.push(transport.send([second], signal));
            // The second call waits for its turn while the first runs.
            await new Promise((resolve) => setTimeout(resolve, 500));
            const early = await runningProcesses((argv) =>
              basename(argv[0]) === method &&
              argv.some((arg) => arg.startsWith(join(src, "20240316")))
            );
            const firstStillRunning = await runningProcesses((argv) =>
              basename(argv[0]) === method &&
              argv.some((arg) => arg.startsWith(join(src, "20240315")))
            );
            const next = await runningCall(method, join(src, "20240316"));
            const firstAtThatTime = await runningProcesses((argv) =>
              basename(argv[0]) === method &&
              argv.some((arg) => arg.startsWith(join(src, "20240315")))
            );
            const outcomes = (await Promise.all(sending)).flat();
            for (const outcome of outcomes) {
              assert.equal(outcome.error, null, outcome.error?.message);
            }
            const full = method === "rsync" ? rsyncBwlimit(LIMIT_BYTES) : scpLimit(LIMIT_BYTES);
            assert.equal(limitOption(method, alone), full, alone.join(" "));
            assert.equal(limitOption(method, next), full, next.join(" "));
            if (firstStillRunning.length > 0) {
              assert.deepEqual(early, [], "no second call beside the first");
            }
            assert.deepEqual(firstAtThatTime, [], "the first call had ended");
            assert.deepEqual(await Deno.readFile(join(dst, "20240315", "first.fits")), data[0]);
            assert.deepEqual(await Deno.readFile(join(dst, "20240316", "second.fits")), data[1]);
          },
        );
      });
    }
  } finally {
    await sshd.stop();
  }
});

Deno.test("bandwidth_limit paces a real local copy: one throttle at the whole limit", async () => {
  const sshd = await startSshd();
  try {
    await withTransport(
      "local",
      sshd,
      { bandwidth_limit: LIMIT, max_concurrent_transfers: 3 },
      async ({ src, dst, transport }) => {
        const throttle = (transport as LocalTransport).throttle!;
        assert.equal(throttle.bytesPerSecond, LIMIT_BYTES);
        // A second's worth at the limit, more than the burst a copy may send without waiting.
        const data = randomBytes(LIMIT_BYTES);
        const item = await makeItem(src, "20240315/slow.fits", data);
        const [outcome] = await transport.send([item], new AbortController().signal);
        assert.equal(outcome.error, null, outcome.error?.message);
        assert.deepEqual(await Deno.readFile(join(dst, "20240315", "slow.fits")), data);
        assert.equal(throttle.bytes, data.length);
        assert.ok(throttle.waits >= 1, "the copy waited for the limit");
      },
    );
  } finally {
    await sshd.stop();
  }
});

Deno.test("bandwidth_limit paces a real ftp upload (image-transfer paces it itself)", async () => {
  const server = await startVsftpd({ tls: false });
  const src = await Deno.makeTempDir({ prefix: "itx-bw-ftp-" });
  const dest = await server.makeRemoteDir();
  const transport = new FtpTransport(
    server.job({ remote_base_path: dest, bandwidth_limit: LIMIT, max_concurrent_transfers: 3 }),
  );
  try {
    assert.equal(transport.throttle!.bytesPerSecond, LIMIT_BYTES);
    const data = randomBytes(2 * LIMIT_BYTES);
    const item = await makeItem(src, "20240315/slow.fits", data);
    const [outcome] = await transport.send([item], new AbortController().signal);
    assert.equal(outcome.error, null, outcome.error?.message);
    assert.deepEqual(await Deno.readFile(join(dest, "20240315", "slow.fits")), data);
    assert.equal(transport.throttle!.bytes, data.length);
    assert.ok(transport.throttle!.waits >= 1, "the upload waited for the limit");
  } finally {
    await transport.close();
    await server.stop();
    await Deno.remove(src, { recursive: true });
  }
});
