/**
 * `bandwidth_limit`: the units it takes, the flags each program gets, and
 * the limit holding within 20 % for a real local copy, for real rsync and
 * scp against a real OpenSSH server on loopback, and for ftp against a real
 * vsftpd.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { bandwidthShare, parseBandwidth, rsyncBwlimit, scpLimit } from "../src/config/bandwidth.ts";
import { FtpTransport } from "../src/transfer/ftp/ftp.ts";
import type { TransferItem } from "../src/transfer/transport.ts";
import { runCli } from "./helpers/cli.ts";
import { randomBytes } from "./helpers/files.ts";
import { startSshd } from "./helpers/sshd.ts";
import { makeItem, type Method, withTransport } from "./helpers/transports.ts";
import { startVsftpd } from "./helpers/vsftpd.ts";

Deno.test("bandwidth_limit: human units in bytes per second; rsync KiB/s, scp Kbit/s", () => {
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
  assert.equal(scpLimit(1_000_000), "8000");
  assert.equal(bandwidthShare({ bandwidth_limit: "4MB/s", max_concurrent_transfers: 2 }), 2e6);
  assert.equal(bandwidthShare({ bandwidth_limit: "", max_concurrent_transfers: 2 }), null);
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

const LIMIT = "1MiB/s";
const BYTES_PER_SECOND = 1024 * 1024;

/** Whether `seconds` for `mib` MiB at {@linkcode LIMIT} is within 20 %. */
function assertWithinLimit(method: string, mib: number, seconds: number): void {
  const expected = (mib * 1024 * 1024) / BYTES_PER_SECOND;
  console.log(`${method}: ${mib} MiB at ${LIMIT} in ${seconds.toFixed(2)} s`);
  assert.ok(
    seconds >= expected * 0.8 && seconds <= expected * 1.2,
    `${method}: ${mib} MiB took ${seconds.toFixed(2)} s, expected ${expected} s ± 20 %`,
  );
}

/** Send `mib` MiB with the limit and check the time it took and the bytes that arrived. */
async function assertLimitHolds(
  method: Method,
  sshd: Awaited<ReturnType<typeof startSshd>>,
  mib: number,
) {
  await withTransport(
    method,
    sshd,
    { bandwidth_limit: LIMIT, max_concurrent_transfers: 1 },
    async ({ src, dst, transport }) => {
      const data = randomBytes(mib * 1024 * 1024);
      const item: TransferItem = await makeItem(src, "20240315/slow.fits", data);
      // The SSH connection is opened first: the time measured is the copy's.
      await transport.warmUp?.();
      const started = performance.now();
      const [outcome] = await transport.send([item], new AbortController().signal);
      const seconds = (performance.now() - started) / 1000;
      assert.equal(outcome.error, null, outcome.error?.message);
      assert.deepEqual(await Deno.readFile(join(dst, "20240315", "slow.fits")), data);
      assertWithinLimit(method, mib, seconds);
    },
  );
}

Deno.test("bandwidth_limit holds within 20 %: local, rsync and scp", async (t) => {
  const sshd = await startSshd();
  try {
    for (const method of ["local", "rsync", "scp"] as const) {
      await t.step(method, () => assertLimitHolds(method, sshd, 4));
    }
  } finally {
    await sshd.stop();
  }
});

Deno.test("bandwidth_limit holds within 20 % for ftp (paced by image-transfer)", async () => {
  const server = await startVsftpd({ tls: false });
  const src = await Deno.makeTempDir({ prefix: "itx-bw-ftp-" });
  const dest = await server.makeRemoteDir();
  const transport = new FtpTransport(
    server.job({ remote_base_path: dest, bandwidth_limit: LIMIT, max_concurrent_transfers: 1 }),
  );
  try {
    const data = randomBytes(4 * 1024 * 1024);
    const item = await makeItem(src, "20240315/slow.fits", data);
    await transport.warmUp();
    const started = performance.now();
    const [outcome] = await transport.send([item], new AbortController().signal);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(outcome.error, null, outcome.error?.message);
    assert.deepEqual(await Deno.readFile(join(dest, "20240315", "slow.fits")), data);
    assertWithinLimit("ftp", 4, seconds);
  } finally {
    await transport.close();
    await server.stop();
    await Deno.remove(src, { recursive: true });
  }
});
