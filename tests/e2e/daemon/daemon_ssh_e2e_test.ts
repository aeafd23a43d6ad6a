/**
 * End to end through the real CLI over a real OpenSSH server, for scp and
 * rsync: a nested burst and a large file; the daemon is SIGKILLed in the
 * middle of the large transfer; the restart finishes everything, and no
 * final name ever holds a partial file.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import { listFiles, listFolders, randomBytes, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";
import { isTempName } from "../../../src/layout/destination.ts";

const BIG_MB = 200;

/** A temporary copy: its name, or a folder it is in, is one of the daemon's temporary names. */
function isTemporary(rel: string): boolean {
  return rel.split("/").some(isTempName);
}

/**
 * Not a final name: a hidden file or folder. Besides the daemon's own
 * temporary names this covers rsync's (`.<temporary name>.XXXXXX`) while it
 * writes; no file sent in this test has a hidden name.
 */
function isHidden(rel: string): boolean {
  return rel.split("/").some((segment) => segment.startsWith("."));
}

/**
 * Whether an scp, rsync or streaming ssh (which names its copy in hex) still
 * runs with `path` in its command line (an orphan of a killed daemon).
 */
async function copierRunning(path: string): Promise<boolean> {
  const out = await new Deno.Command("ps", { args: ["-eo", "args"], stdout: "piped" }).output();
  const hex = Buffer.from(path, "utf8").toString("hex");
  return new TextDecoder().decode(out.stdout).split("\n").some((line) =>
    (line.includes(path) && /^\S*(scp|rsync)\s/.test(line)) ||
    (line.includes(hex) && /^\S*ssh\s/.test(line))
  );
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

for (const method of ["scp", "rsync"] as const) {
  Deno.test(`daemon (${method}): SIGKILL mid-transfer, restart finishes; final names always whole`, async () => {
    const sshd = await startSshd();
    const { root, watch, remote, config, env } = await sshSandbox(sshd, method, {
      verify_transfer: "size",
      stability_window_seconds: 0.5,
      max_concurrent_transfers: 2,
    });
    try {
      const night = new Date("2024-07-01T20:00:00Z"); // -> 20240701

      // Expected final files (relative to the remote base) -> SHA-256.
      const expected = new Map<string, string>();
      const big = join(watch, "deep", "big frame.fits");
      await Deno.mkdir(join(watch, "deep"), { recursive: true });
      {
        const chunk = randomBytes(1 << 20);
        const hash = createHash("sha256");
        using file = await Deno.open(big, { write: true, create: true });
        for (let i = 0; i < BIG_MB; i++) {
          chunk[0] = i; // every MiB differs
          await file.write(chunk);
          hash.update(chunk);
        }
        expected.set("20240701/deep/big frame.fits", hash.digest("hex"));
      }
      await Deno.utime(big, night, night);

      // A burst of small files waits in the folder too.
      for (let i = 0; i < 40; i++) {
        const rel = `night ${i % 4}/sub/f'${i}.fits`;
        await Deno.mkdir(join(watch, `night ${i % 4}`, "sub"), { recursive: true });
        const bytes = randomBytes(20_000 + i);
        await Deno.writeFile(join(watch, rel), bytes);
        await Deno.utime(join(watch, rel), night, night);
        expected.set(`20240701/${rel}`, sha256(bytes));
      }

      const first = startCli(["run", "-c", config], { env });
      let killed: Deno.CommandStatus;
      try {
        // The big file's upload is under way when its temporary name shows up remotely.
        await waitFor(
          async () =>
            (await listFiles(remote).catch(() => [])).some((p) =>
              p.includes("big frame") && isTemporary(p)
            ),
          60_000,
          "the big file's temporary copy",
        );
      } finally {
        killed = await first.stop("SIGKILL");
      }
      const bigSentFirst = /Successfully transferred .*big frame\.fits/.test(first.stderr());
      assert.equal(killed.signal, "SIGKILL");

      // Whatever is under a final name now must be complete.
      for (const rel of await listFiles(remote)) {
        if (isHidden(rel)) continue;
        assert.ok(expected.has(rel), `unexpected file at the destination: ${rel}`);
        assert.equal(await sha256OfFile(join(remote, rel)), expected.get(rel), `partial ${rel}`);
      }

      // The killed daemon's scp/rsync are not killed with it and outlive it
      // (under systemd the whole cgroup goes); let them end before the restart.
      await waitFor(async () => !(await copierRunning(remote)), 60_000, "orphaned copies to end");
      const second = startCli(["run", "-c", config], { env });
      try {
        await waitFor(
          async () => {
            const finals = (await listFiles(remote)).filter((p) => !isHidden(p));
            return finals.length >= expected.size;
          },
          120_000,
          "every file at the destination",
        );
        if (!bigSentFirst) {
          await second.waitForOutput(/Successfully transferred .*big frame\.fits/, 60_000);
        }
      } finally {
        const status = await second.stop("SIGTERM");
        assert.equal(status.code, 0, second.stderr());
      }
      const arrived = (await listFiles(remote)).sort();
      assert.deepEqual(arrived, [...expected.keys()].sort(), "exactly the files, no temporaries");
      const leftFolders = (await listFolders(remote)).filter(isHidden);
      assert.deepEqual(leftFolders, [], "no upload folder is left");
      for (const [rel, hash] of expected) {
        assert.equal(await sha256OfFile(join(remote, rel)), hash, `bytes of ${rel}`);
      }
    } finally {
      await Deno.remove(root, { recursive: true });
      await sshd.stop();
    }
  });
}
