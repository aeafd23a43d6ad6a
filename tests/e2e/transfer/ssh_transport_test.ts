/**
 * The scp and rsync transports against a real OpenSSH server on loopback.
 * One server for the whole file; each case gets fresh folders.
 */
import assert from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import type { JobConfig } from "../../../src/config/types.ts";
import {
  createTransport,
  type TransferItem,
  type TransferOutcome,
  type Transport,
} from "../../../src/transfer/transport.ts";
import { uploadFolderName, uploadOwner } from "../../../src/transfer/temp_name.ts";
import { isTempName } from "../../../src/layout/destination.ts";
import { posixWord } from "../../../src/shell_words.ts";
import {
  exists,
  listFiles,
  listFolders,
  randomBytes,
  sha256OfFile as sha256,
  waitFor,
} from "../../helpers/files.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import { processEnded } from "../../helpers/processes.ts";
import { startSshd, type TestSshd } from "../../helpers/sshd.ts";

type Method = "scp" | "rsync";

/**
 * The programs the transports run from now on (`ssh` or the upload program,
 * leaving out `ssh -O check`, a question to the local shared connection).
 */
async function programsRun(method: Method) {
  const logs = await captureLogs();
  return {
    /** The programs run since the last take. */
    take(): string[] {
      const ran = logs.records.filter((r) => String(r.rawMessage).startsWith("Running"))
        .map((r) => r.properties.argv as string[]).filter((argv) => !argv.includes("-O"))
        .map((argv) => argv.includes(method) ? method : "ssh");
      logs.records.length = 0;
      return ran;
    },
    stop: () => logs.stop(),
  };
}

/** Write a source file and return the item that sends it to `destination`. */
async function makeItem(
  root: string,
  destination: string,
  data: Uint8Array,
  sourceName = destination,
): Promise<TransferItem> {
  const source = join(root, ...sourceName.split("/"));
  await Deno.mkdir(dirname(source), { recursive: true });
  await Deno.writeFile(source, data);
  return await itemFor(source, destination);
}

async function itemFor(source: string, destination: string): Promise<TransferItem> {
  const info = await Deno.stat(source);
  return { source, destination, size: info.size, mtimeMs: info.mtime!.getTime() };
}

/** Assert every item arrived byte-exact and nothing else exists at `base`. */
async function assertDelivered(base: string, items: TransferItem[]): Promise<void> {
  const found = await listFiles(base);
  assert.deepEqual(found, items.map((item) => item.destination).sort());
  const temporary = (await listFolders(base)).filter((rel) => rel.split("/").some(isTempName));
  assert.deepEqual(temporary, [], "no temporary folder is left");
  for (const item of items) {
    const remote = join(base, ...item.destination.split("/"));
    assert.ok((await Deno.lstat(remote)).isFile, `${item.destination} is a regular file`);
    assert.equal(await sha256(remote), await sha256(item.source), `bytes of ${item.destination}`);
  }
}

function assertAllOk(outcomes: TransferOutcome[], items: TransferItem[]): void {
  assert.equal(outcomes.length, items.length);
  outcomes.forEach((outcome, i) => {
    assert.equal(outcome.item, items[i]);
    assert.equal(outcome.error, null, `${items[i].destination}: ${outcome.error?.message}`);
  });
}

/** Run `fn` with a fresh source folder, destination folder and transport. */
async function withTransport(
  sshd: TestSshd,
  method: Method,
  overrides: Partial<JobConfig>,
  fn: (ctx: { src: string; dst: string; transport: Transport; runtime: string }) => Promise<void>,
): Promise<void> {
  const src = await Deno.makeTempDir({ prefix: "itx-src-" });
  const runtime = await Deno.makeTempDir({ prefix: "itx-rt-" });
  const dst = await sshd.makeRemoteDir();
  const transport = createTransport(
    sshd.job({ transfer_method: method, remote_base_path: dst, ...overrides }),
    runtime,
  );
  try {
    await fn({ src, dst, transport, runtime });
  } finally {
    await transport.close();
    await Deno.remove(src, { recursive: true });
    await Deno.remove(runtime, { recursive: true });
  }
}

const never = new AbortController().signal;

/** Names that break anything that treats them as shell text or options. */
function hostileNames(canary: string): string[] {
  return [
    "with space.fits",
    "it's.fits",
    'say "hi".fits',
    `$(touch ${canary}).fits`,
    `\`touch ${canary}\`.fits`,
    "a;touch b.fits",
    "-leading-dash.fits",
    "#hash-first.fits",
    ";semicolon-first.fits",
    "--rsync-path=evil.fits",
    "new\nline.fits",
    "star*.fits",
    "back\\slash.fits",
    "tab\there.fits",
    "100%C.fits",
    "caf\u00e9-nfc.fits",
    "cafe\u0301-nfd.fits",
    `${"long-".repeat(48)}.fits`,
    "ITX0 K 0.fits",
  ];
}

for (const method of ["scp", "rsync"] as const) {
  Deno.test(`${method} transport against a real OpenSSH server`, async (t) => {
    const sshd = await startSshd();
    try {
      await t.step(
        "a burst of 300 files in nested folders arrives byte-exact, no temps",
        async () => {
          await withTransport(sshd, method, {}, async ({ src, dst, transport }) => {
            const items: TransferItem[] = [];
            for (let i = 0; i < 300; i++) {
              // Half in one folder (scp splits it into calls side by side), half spread out.
              const destination = i % 2 === 0
                ? `20240315/frame_${i}.fits`
                : `20240315/set${i % 7}/sub${i % 3}/frame_${i}.fits`;
              items.push(await makeItem(src, destination, randomBytes(1000 + (i * 397) % 30000)));
            }
            const started = performance.now();
            const outcomes: TransferOutcome[] = [];
            for (let i = 0; i < items.length; i += transport.maxBatchFiles) {
              outcomes.push(
                ...await transport.send(items.slice(i, i + transport.maxBatchFiles), never),
              );
            }
            const elapsedMs = performance.now() - started;
            assertAllOk(outcomes, items);
            await assertDelivered(dst, items);
            console.log(`${method}: 300 files in ${Math.round(elapsedMs)} ms`);
          });
        },
      );

      await t.step(
        "small files of one folder go in one ssh call with mode and mtime; a large one by the upload program",
        async () => {
          const checksum = { verify_transfer: "checksum" } as const;
          await withTransport(sshd, method, checksum, async ({ src, dst, transport }) => {
            const mtime = new Date("2024-03-28T01:02:03Z");
            const small: TransferItem[] = [];
            for (
              const [i, name] of ["alone.fits", "b 'q' $(x).fits", "-c.fits", "ü\nd.fits"].entries()
            ) {
              const item = await makeItem(src, `20240328/${name}`, randomBytes(100_000 + i));
              await Deno.chmod(item.source, i === 0 ? 0o640 : 0o664);
              await Deno.utime(item.source, mtime, mtime);
              small.push(await itemFor(item.source, item.destination));
            }
            const large = await makeItem(src, "20240328/large.fits", randomBytes(9 * 1024 * 1024));
            await transport.warmUp!();
            const ran = await programsRun(method);
            try {
              assertAllOk(await transport.send(small.slice(0, 1), never), small.slice(0, 1));
              // One ssh call, no upload program; then the next batch's call, started ahead.
              assert.deepEqual(ran.take(), ["ssh", "ssh"], "one file: one ssh call");
              assertAllOk(await transport.send(small.slice(1), never), small.slice(1));
              // Over the call started ahead (a tar archive); then the next one, started ahead.
              assert.deepEqual(ran.take(), ["ssh"], "three files: one ssh call");
              assertAllOk(await transport.send([large], never), [large]);
              assert.ok(ran.take().includes(method), "a large file: the upload program");
            } finally {
              await ran.stop();
            }
            await assertDelivered(dst, [...small, large]);
            for (const [i, item] of small.entries()) {
              const arrived = await Deno.stat(join(dst, ...item.destination.split("/")));
              assert.equal(arrived.mode! & 0o777, i === 0 ? 0o640 : 0o644, item.destination);
              assert.equal(arrived.mtime!.getTime(), mtime.getTime(), item.destination);
            }
          });
        },
      );

      await t.step(
        "a large file written in place while the upload program sends it, its size and mtime set back, fails retryably and does not arrive",
        async () => {
          const settings = { verify_transfer: "size", bandwidth_limit: "2MiB/s" } as const;
          await withTransport(sshd, method, settings, async ({ src, dst, transport }) => {
            // 9 MiB (the upload program's, not one call's) at 2 MiB/s: over 4 s, whatever the load.
            const item = await makeItem(src, "20240329/kept.fits", randomBytes(9 << 20));
            const sending = transport.send([item], never);
            await waitFor(async () =>
              (await listFolders(dst)).some((rel) => rel.split("/").some(isTempName))
            );
            // The runtime gives the change time to the second: the write comes in a later one.
            await new Promise((resolve) => setTimeout(resolve, 1100));
            const file = await Deno.open(item.source, { write: true });
            await file.write(randomBytes(4096));
            file.close();
            await Deno.utime(item.source, new Date(item.mtimeMs), new Date(item.mtimeMs));
            const [outcome] = await sending;
            assert.equal(outcome.error?.kind, "retry", String(outcome.error));
            assert.match(outcome.error!.message, /written to or its attributes changed/);
            assert.equal(await exists(join(dst, "20240329", "kept.fits")), false);
          });
        },
      );

      await t.step(
        "concurrent sends on one transport share the connection and all arrive",
        async () => {
          await withTransport(sshd, method, {}, async ({ src, dst, transport, runtime }) => {
            const batches: TransferItem[][] = [[], [], []];
            for (let i = 0; i < 60; i++) {
              batches[i % 3].push(
                await makeItem(src, `20240327/c${i % 3}/f${i}.fits`, randomBytes(2000 + i)),
              );
            }
            const results = await Promise.all(batches.map((batch) => transport.send(batch, never)));
            results.forEach((outcomes, i) => assertAllOk(outcomes, batches[i]));
            await assertDelivered(dst, batches.flat());
            const sockets = [...Deno.readDirSync(runtime)].filter((e) => e.name.startsWith("cm-"));
            assert.equal(sockets.length, 1);
          });
        },
      );

      await t.step(
        "many concurrent batches over many folders stay within the server's MaxSessions",
        async () => {
          // The test server keeps OpenSSH's default MaxSessions 10: 12 batches of 3
          // folders at once would want 12 × 3 sessions over the shared connection.
          await withTransport(sshd, method, {}, async ({ src, dst, transport }) => {
            const batches: TransferItem[][] = [];
            for (let b = 0; b < 12; b++) {
              const batch: TransferItem[] = [];
              for (let f = 0; f < 3; f++) {
                batch.push(await makeItem(src, `20240328/b${b}/f${f}/x.fits`, randomBytes(5000)));
              }
              batches.push(batch);
            }
            const loginsBefore = await sshd.logins();
            const results = await Promise.all(batches.map((batch) => transport.send(batch, never)));
            results.forEach((outcomes, i) => assertAllOk(outcomes, batches[i]));
            await assertDelivered(dst, batches.flat());
            // Past MaxSessions, ssh would fall back to a new login per call.
            assert.equal(await sshd.logins() - loginsBefore, 1, "one login: the shared connection");
          });
        },
      );

      await t.step("hostile names arrive under the same names and run no command", async () => {
        const canary = `itx-canary-${method}-${crypto.randomUUID().slice(0, 8)}`;
        await withTransport(
          sshd,
          method,
          { verify_transfer: "checksum", compression: true },
          async ({ src, dst, transport }) => {
            const names = hostileNames(canary);
            const items: TransferItem[] = [];
            for (const [i, name] of names.entries()) {
              // Hostile folder names too, and hostile source names.
              const folder = i % 2 === 0 ? "20240316" : `20240316/$(touch ${canary}) 'dir'`;
              items.push(await makeItem(src, `${folder}/${name}`, randomBytes(100 + i)));
            }
            const outcomes = await transport.send(items, never);
            assertAllOk(outcomes, items);
            await assertDelivered(dst, items);
            const names16 = (await listFiles(dst)).map((p) => p.split("/").at(-1)!);
            assert.ok(
              names16.includes("caf\u00e9-nfc.fits") && names16.includes("cafe\u0301-nfd.fits"),
            );
            for (const place of [Deno.cwd(), "/home/itx-test", "/tmp", "/", dst, src]) {
              assert.equal(await exists(join(place, canary)), false, `canary in ${place}`);
            }
          },
        );
      });

      await t.step("a 200 MB file arrives with checksum verification", async () => {
        await withTransport(
          sshd,
          method,
          { verify_transfer: "checksum" },
          async ({ src, dst, transport }) => {
            const path = join(src, "big.fits");
            {
              using file = await Deno.open(path, { write: true, create: true });
              const block = randomBytes(1 << 20);
              for (let i = 0; i < 200; i++) {
                block[0] = i;
                await file.write(block);
              }
            }
            const item = await itemFor(path, "20240317/big.fits");
            const outcomes = await transport.send([item], never);
            assertAllOk(outcomes, [item]);
            await assertDelivered(dst, [item]);
          },
        );
      });

      await t.step(
        "a big file with a hostile name arrives with checksum verification, beside small ones",
        async () => {
          await withTransport(
            sshd,
            method,
            { verify_transfer: "checksum" },
            async ({ src, dst, transport }) => {
              // 70 MiB, read remotely by the hash tool: hostile names must reach it intact.
              const bigName = "-big $(touch x) 'q' \\ caf\u00e9\nline.fits";
              const bigPath = join(src, bigName);
              {
                using file = await Deno.open(bigPath, { write: true, create: true });
                const block = randomBytes(1 << 20);
                for (let i = 0; i < 70; i++) {
                  block[1] = i;
                  await file.write(block);
                }
              }
              await Deno.writeFile(join(src, "small.fits"), randomBytes(5000));
              const items = [
                await itemFor(bigPath, `20240318/sub dir/${bigName}`),
                await itemFor(join(src, "small.fits"), "20240318/sub dir/small.fits"),
              ];
              const outcomes = await transport.send(items, never);
              assertAllOk(outcomes, items);
              await assertDelivered(dst, items);
            },
          );
        },
      );

      await t.step("an unknown host key is fatal and says what to do", async () => {
        const emptyKnownHosts = join(sshd.dir, `empty_known_hosts_${method}`);
        await Deno.writeTextFile(emptyKnownHosts, "");
        await withTransport(sshd, method, {
          ssh_options: [`UserKnownHostsFile=${emptyKnownHosts}`, "GlobalKnownHostsFile=/dev/null"],
        }, async ({ src, dst, transport }) => {
          const items = [
            await makeItem(src, "n/a.fits", randomBytes(10)),
            await makeItem(src, "n/b.fits", randomBytes(10)),
          ];
          const outcomes = await transport.send(items, never);
          for (const outcome of outcomes) {
            assert.equal(outcome.error?.kind, "fatal");
            assert.match(outcome.error!.message, /host key of 127\.0\.0\.1 is not known/);
            assert.match(outcome.error!.message, /once to accept the host key/);
            assert.match(outcome.error!.message, /ssh-keyscan -p \d+ 127\.0\.0\.1/);
          }
          assert.deepEqual(await listFiles(dst), []);
        });
      });

      await t.step(
        "a read-only remote folder is retry-later, then succeeds once writable",
        async () => {
          await withTransport(sshd, method, {}, async ({ src, dst, transport }) => {
            await Deno.chown(dst, 0, 0);
            await Deno.chmod(dst, 0o755);
            const items = [
              await makeItem(src, "20240318/a.fits", randomBytes(1000)),
              await makeItem(src, "20240318/b.fits", randomBytes(2000)),
            ];
            const failed = await transport.send(items, never);
            for (const outcome of failed) {
              assert.equal(outcome.error?.kind, "retry-later", outcome.error?.message);
              assert.match(outcome.error!.message, /permission denied/i);
              assert.match(outcome.error!.message, /fix the owner or permissions/);
            }
            await Deno.chown(dst, sshd.uid, sshd.gid);
            assertAllOk(await transport.send(items, never), items);
            await assertDelivered(dst, items);
          });
        },
      );

      await t.step("vanished and changed sources fail alone; the others arrive", async () => {
        await withTransport(sshd, method, {}, async ({ src, dst, transport }) => {
          const good1 = await makeItem(src, "20240319/good1.fits", randomBytes(5000));
          const vanished = await makeItem(src, "20240319/vanished.fits", randomBytes(5000));
          const changed = await makeItem(src, "20240319/changed.fits", randomBytes(5000));
          const good2 = await makeItem(src, "20240319/good2.fits", randomBytes(5000));
          await Deno.remove(vanished.source);
          await Deno.writeFile(changed.source, randomBytes(10), { append: true });
          const outcomes = await transport.send([good1, vanished, changed, good2], never);
          assert.equal(outcomes[0].error, null);
          assert.equal(outcomes[3].error, null);
          assert.equal(outcomes[1].error?.kind, "retry");
          assert.match(outcomes[1].error!.message, /vanished/);
          assert.equal(outcomes[2].error?.kind, "retry");
          assert.match(outcomes[2].error!.message, /changed/);
          await assertDelivered(dst, [good1, good2]);
        });
      });

      await t.step("a source changed during the upload is not renamed into place", async () => {
        await withTransport(sshd, method, {}, async ({ src, dst, transport }) => {
          const path = join(src, "growing.fits");
          await Deno.writeFile(path, new Uint8Array());
          await Deno.truncate(path, 300 << 20);
          const item = await itemFor(path, "20240320/growing.fits");
          const appending = (async () => {
            await new Promise((resolve) => setTimeout(resolve, 300));
            await Deno.writeFile(path, new Uint8Array([1, 2, 3]), { append: true });
          })();
          const [outcome] = await transport.send([item], never);
          await appending;
          assert.equal(outcome.error?.kind, "retry");
          assert.match(outcome.error!.message, /changed/);
          assert.deepEqual(await listFiles(dst), []);
        });
      });

      await t.step(
        "transfer_timeout_seconds kills a stuck transfer; no partial final file",
        async () => {
          await withTransport(
            sshd,
            method,
            { transfer_timeout_seconds: 1.5 },
            async ({ src, dst, transport }) => {
              // 2 GiB of zeros, sparse on disk: takes several seconds over ssh.
              const path = join(src, "huge.fits");
              await Deno.writeFile(path, new Uint8Array());
              await Deno.truncate(path, 2 * 2 ** 30);
              const item = await itemFor(path, "20240321/huge.fits");
              // The upload is what must time out: on a busy machine the connection itself may
              // take longer than the 1.5 s, so it is opened first, and again while it does.
              let outcome: TransferOutcome | undefined;
              for (let tries = 0; tries < 10; tries++) {
                await transport.warmUp!();
                [outcome] = await transport.send([item], never);
                if (!/could be opened within/.test(outcome.error?.message ?? "")) break;
              }
              assert.equal(outcome?.error?.kind, "retry");
              assert.match(outcome.error!.message, /timed out/);
              assert.equal(await exists(join(dst, "20240321", "huge.fits")), false);
              const left = (await exists(join(dst, "20240321"))) ? await listFiles(dst) : [];
              assert.ok(
                left.every((rel) => rel.split("/").some(isTempName)),
                left.join(", "),
              );
            },
          );
        },
      );

      await t.step(
        "an abort stops the upload, throws the reason, leaves no final file",
        async () => {
          await withTransport(sshd, method, {}, async ({ src, dst, transport }) => {
            const path = join(src, "huge.fits");
            await Deno.writeFile(path, new Uint8Array());
            await Deno.truncate(path, 2 * 2 ** 30);
            const item = await itemFor(path, "20240326/huge.fits");
            const controller = new AbortController();
            const reason = new Error("shutting down");
            setTimeout(() => controller.abort(reason), 1000);
            const error = await transport.send([item], controller.signal).then(
              () => null,
              (e) => e,
            );
            assert.equal(error, reason);
            assert.equal(await exists(join(dst, "20240326", "huge.fits")), false);
            const small = await makeItem(src, "20240326/small.fits", randomBytes(10));
            assertAllOk(await transport.send([small], never), [small]);
            assert.ok(await exists(join(dst, "20240326", "small.fits")));
          });
        },
      );

      await t.step("a killed master connection is recreated on the next send", async () => {
        await withTransport(sshd, method, {}, async ({ src, dst, transport, runtime }) => {
          const first = await makeItem(src, "20240322/first.fits", randomBytes(100));
          assertAllOk(await transport.send([first], never), [first]);
          const sockets = [...Deno.readDirSync(runtime)].filter((e) => e.name.startsWith("cm-"));
          assert.equal(sockets.length, 1, "one control socket per destination");
          const pid = await masterPid(join(runtime, sockets[0].name));
          Deno.kill(pid, "SIGKILL");
          await waitFor(() => processEnded(pid), 30_000, "the master gone");
          const second = await makeItem(src, "20240322/second.fits", randomBytes(100));
          assertAllOk(await transport.send([second], never), [second]);
          await assertDelivered(dst, [first, second]);
          const newPid = await masterPid(join(runtime, sockets[0].name));
          assert.notEqual(newPid, pid);
          await transport.close();
          assert.equal(
            await exists(join(runtime, sockets[0].name)),
            false,
            "close() ends the master",
          );
        });
      });

      await t.step(
        "an attempt stopped mid-upload leaves nothing once the next one ends",
        async () => {
          await withTransport(sshd, method, {}, async ({ src, dst, transport }) => {
            const big = await makeItem(src, "20240324/big.fits", randomBytes(256 * 1024 * 1024));
            const small = await makeItem(src, "20240324/small.fits", randomBytes(1000));
            const stop = new AbortController();
            const first = transport.send([small, big], stop.signal);
            first.catch(() => {});
            // Stop once the big copy is on its way under a temporary name.
            await waitFor(
              async () =>
                (await listFiles(dst).catch(() => [])).some((rel) =>
                  rel.split("/").some(isTempName) && rel.includes("big")
                ),
              30_000,
              "the big file's temporary copy",
            );
            stop.abort(new Error("stopped by the test"));
            await assert.rejects(first, /stopped by the test/);
            assert.ok(
              !(await listFiles(dst)).includes(big.destination),
              "the stopped copy is not under its final name",
            );
            assertAllOk(await transport.send([small, big], never), [small, big]);
            await assertDelivered(dst, [small, big]);
          });
        },
      );

      await t.step(
        "without resuming, leftover upload folders of an interrupted run are swept; others' are kept",
        async () => {
          const noResume = { resume_partial_hours: 0 };
          await withTransport(sshd, method, noResume, async ({ src, dst, transport }) => {
            const item = await makeItem(src, "20240323/frame.fits", randomBytes(4096));
            const owner = uploadOwner([Deno.hostname(), "/nonexistent-watch", dst]);
            const night = join(dst, "20240323");
            const upload = join(night, uploadFolderName(owner));
            await Deno.mkdir(upload, { recursive: true });
            // Same size and mtime as the source, other bytes, and what rsync leaves when killed.
            const leftover = join(upload, "frame.fits");
            await Deno.writeFile(leftover, randomBytes(4096));
            await Deno.utime(leftover, new Date(item.mtimeMs), new Date(item.mtimeMs));
            await Deno.writeFile(join(upload, ".frame.fits.Ab12Cd"), randomBytes(100));
            const others = join(night, uploadFolderName("0123456789"));
            await Deno.mkdir(others);
            for (const path of [night, upload, others, ...await listFiles(upload)]) {
              await Deno.chown(
                path.startsWith("/") ? path : join(upload, path),
                sshd.uid,
                sshd.gid,
              );
            }
            assertAllOk(await transport.send([item], never), [item]);
            assert.deepEqual(await listFolders(dst), ["20240323", `20240323/${basename(others)}`]);
            await Deno.remove(others);
            await assertDelivered(dst, [item]);
          });
        },
      );

      if (method === "rsync") {
        await t.step(
          "a kept copy of a small file (an upload cut off by a server crash) is removed once the file arrives in one call",
          async () => {
            // The default resume_partial_hours: interrupted copies are kept to be continued.
            await withTransport(sshd, method, {}, async ({ src, dst, transport }) => {
              const item = await makeItem(src, "20240324/-x $(id) 'q.fits", randomBytes(4096));
              const owner = uploadOwner([Deno.hostname(), "/nonexistent-watch", dst]);
              const night = join(dst, "20240324");
              // What calls cut off mid-way leave: their upload folders (private), one with the
              // first bytes of the copy and rsync's own temporary file, one with only the work
              // files of a finishing step.
              const upload = join(night, uploadFolderName(owner));
              const finishing = join(night, uploadFolderName(owner));
              const data = await Deno.readFile(item.source);
              const leftovers = {
                [join(upload, basename(item.destination))]: data.subarray(0, 1000),
                [join(upload, ".-x $(id) 'q.fits.Ab12Cd")]: data.subarray(0, 10),
                [join(finishing, ".ITX0123456789abcdef.hashes")]: new Uint8Array(),
                [join(finishing, ".ITX0123456789abcdef.renames.0")]: new Uint8Array(),
              };
              for (const folder of [upload, finishing]) {
                await Deno.mkdir(folder, { recursive: true });
                await Deno.chmod(folder, 0o700);
              }
              for (const [path, bytes] of Object.entries(leftovers)) {
                await Deno.writeFile(path, bytes);
              }
              for (const path of [night, upload, finishing, ...Object.keys(leftovers)]) {
                await Deno.chown(path, sshd.uid, sshd.gid);
              }
              assertAllOk(await transport.send([item], never), [item]);
              // Its copy will never be continued: nothing is left beside the arrived file.
              assert.deepEqual(await listFolders(dst), ["20240324"]);
              await assertDelivered(dst, [item]);
              // The folder is swept now. Another file's kept copy goes as it arrives; an upload
              // folder still empty (another batch's, just made) is left alone.
              const second = await makeItem(src, "20240324/b.fits", randomBytes(2048));
              const kept = join(night, uploadFolderName(owner));
              const fresh = join(night, uploadFolderName(owner));
              for (const folder of [kept, fresh]) {
                await Deno.mkdir(folder);
                await Deno.chmod(folder, 0o700);
                await Deno.chown(folder, sshd.uid, sshd.gid);
              }
              await Deno.writeFile(join(kept, "b.fits"), new Uint8Array(100));
              await Deno.chown(join(kept, "b.fits"), sshd.uid, sshd.gid);
              assertAllOk(await transport.send([second], never), [second]);
              assert.deepEqual(await listFolders(dst), ["20240324", `20240324/${basename(fresh)}`]);
              await Deno.remove(fresh);
              await assertDelivered(dst, [item, second]);
            });
          },
        );

        await t.step(
          "old rsync_options (--archive --partial --inplace) write only temp names",
          async () => {
            await withTransport(sshd, method, {
              rsync_options: ["--archive", "--partial", "--inplace", "--progress"],
              compression: true,
            }, async ({ src, dst, transport }) => {
              // An existing night folder with its own mode must keep it.
              const night = join(dst, "20240325");
              await Deno.mkdir(night);
              await Deno.chown(night, sshd.uid, sshd.gid);
              await Deno.chmod(night, 0o2775);
              const items = [
                await makeItem(src, "20240325/a.fits", randomBytes(70_000)),
                await makeItem(src, "20240325/deeper/b.fits", randomBytes(80_000)),
              ];
              assertAllOk(await transport.send(items, never), items);
              await assertDelivered(dst, items);
              assert.equal((await Deno.stat(night)).mode! & 0o7777, 0o2775);
              assert.equal((await Deno.stat(dst)).uid, sshd.uid);
            });
          },
        );
      }

      if (method === "rsync") {
        await t.step("rsync_options hold for small files too (none goes in one call)", async () => {
          await withTransport(sshd, method, {
            rsync_options: ["--chmod=F640"],
          }, async ({ src, dst, transport }) => {
            const items = [await makeItem(src, "20240326/small.fits", randomBytes(70_000))];
            assertAllOk(await transport.send(items, never), items);
            await assertDelivered(dst, items);
            assert.equal((await Deno.stat(join(dst, items[0].destination))).mode! & 0o777, 0o640);
          });
        });
      }

      await t.step("remote_base_path under ~/ lands in the remote home", async () => {
        const name = `itx-home-${method}-${crypto.randomUUID().slice(0, 8)}`;
        await withTransport(
          sshd,
          method,
          { remote_base_path: `~/${name}/data` },
          async ({ src, transport }) => {
            const item = await makeItem(src, "20240324/a b.fits", randomBytes(321));
            try {
              assertAllOk(await transport.send([item], never), [item]);
              await assertDelivered(`/home/${sshd.user}/${name}/data`, [item]);
              assert.match(
                transport.describeTarget(item.destination),
                /^itx-test@127\.0\.0\.1:~\//,
              );
            } finally {
              await Deno.remove(`/home/${sshd.user}/${name}`, { recursive: true }).catch(() => {});
            }
          },
        );
      });
    } finally {
      await sshd.stop();
    }
  });
}

/** The pid of the ssh master behind `controlPath`, from `ssh -O check`. */
async function masterPid(controlPath: string): Promise<number> {
  const out = await new Deno.Command("ssh", {
    args: ["-o", `ControlPath=${controlPath}`, "-O", "check", "placeholder"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
  const pid = Number(text.match(/pid=(\d+)/)?.[1]);
  assert.ok(pid > 0, `no master running: ${text}`);
  return pid;
}

/**
 * A folder of links to every program of /usr/bin and /bin, to be the PATH of
 * the server's sessions: a test removes or replaces programs in it.
 */
async function serverTools(): Promise<string> {
  const bin = await Deno.makeTempDir({ prefix: "itx-tools-" });
  await Deno.chmod(bin, 0o755);
  for (const dir of ["/usr/bin", "/bin"]) {
    for (const entry of Deno.readDirSync(dir)) {
      await Deno.symlink(join(dir, entry.name), join(bin, entry.name)).catch(() => {});
    }
  }
  return bin;
}

Deno.test("a host without tar, then without dd: small files still arrive, by the upload program", async () => {
  const bin = await serverTools();
  const sshd = await startSshd({ sessionEnv: { PATH: bin } });
  try {
    await Deno.remove(join(bin, "tar"));
    await withTransport(sshd, "scp", {}, async ({ src, dst, transport }) => {
      await transport.warmUp!();
      const ran = await programsRun("scp");
      const items: TransferItem[] = [];
      try {
        const first = [0, 1, 2].map((i) => makeItem(src, `20240329/a${i}.fits`, randomBytes(5000)));
        items.push(...await Promise.all(first));
        assertAllOk(await transport.send(items, never), items);
        assert.deepEqual(ran.take(), ["ssh", "ssh", "scp", "ssh"], "tried in one call, then scp");
        const next = await makeItem(src, "20240329/b.fits", randomBytes(5000));
        const more = [next, await makeItem(src, "20240329/c.fits", randomBytes(5000))];
        assertAllOk(await transport.send(more, never), more);
        assert.deepEqual(ran.take(), ["ssh", "scp", "ssh"], "not tried again");
        items.push(...more);
        const one = await makeItem(src, "20240329/one.fits", randomBytes(5000));
        assertAllOk(await transport.send([one], never), [one]);
        // One call, and the next batch's call started ahead.
        assert.deepEqual(ran.take(), ["ssh", "ssh"], "one file needs no tar");
        items.push(one);
      } finally {
        await ran.stop();
      }
      await assertDelivered(dst, items);
    });
    await Deno.remove(join(bin, "dd"));
    await withTransport(sshd, "rsync", {}, async ({ src, dst, transport }) => {
      await transport.warmUp!();
      const ran = await programsRun("rsync");
      try {
        const one = await makeItem(src, "20240330/one.fits", randomBytes(5000));
        assertAllOk(await transport.send([one], never), [one]);
        assert.deepEqual(
          ran.take(),
          ["ssh", "ssh", "rsync", "ssh"],
          "tried in one call, then rsync",
        );
        await assertDelivered(dst, [one]);
      } finally {
        await ran.stop();
      }
    });
  } finally {
    await sshd.stop();
    await Deno.remove(bin, { recursive: true });
  }
});

Deno.test("a batch sent in one call lets the next batch into its folder go once the folder is made, not when it ends", async () => {
  // The server's tar (what receives the files of a call) waits for a gate file, in its first run.
  const bin = await serverTools();
  const gate = join(bin, ".gate-open");
  // The server's account (not this one) marks its first run here.
  const marks = join(bin, ".marks");
  await Deno.mkdir(marks);
  await Deno.chmod(marks, 0o777);
  await Deno.remove(join(bin, "tar"));
  await Deno.writeTextFile(
    join(bin, "tar"),
    [
      "#!/bin/sh",
      `if mkdir ${posixWord(join(marks, "first-run"))} 2>/dev/null; then`,
      `  while ! [ -e ${posixWord(gate)} ]; do`,
      // It gives up once the folder is removed (the test failed before it opened the gate).
      `    [ -d ${posixWord(bin)} ] || exit 1`,
      "    sleep 0.05",
      "  done",
      "fi",
      'exec /usr/bin/tar "$@"',
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  const sshd = await startSshd({ sessionEnv: { PATH: bin } });
  try {
    await withTransport(sshd, "scp", {}, async ({ src, dst, transport }) => {
      await transport.warmUp!();
      const several = await Promise.all(
        [0, 1, 2].map((i) => makeItem(src, `20240331/a${i}.fits`, randomBytes(5000 + i))),
      );
      const first = transport.send(several, never);
      // The first batch into the folder has swept it and made its upload folder; it is held.
      await waitFor(async () => (await listFolders(dst)).some((rel) => isTempName(basename(rel))));
      const one = await makeItem(src, "20240331/b.fits", randomBytes(7000));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const second = await Promise.race([
        transport.send([one], never),
        new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), 60_000)),
      ]).finally(() => clearTimeout(timer));
      assert.ok(second !== null, "the second batch still waits for the first one's whole call");
      assertAllOk(second, [one]);
      assert.ok(await exists(join(dst, "20240331", "b.fits")), "arrived while the first is held");
      assert.ok(await exists(join(marks, "first-run")), "the first call's tar was held");
      assert.ok(!await exists(join(dst, "20240331", "a0.fits")), "the first call is still held");
      await Deno.writeTextFile(gate, "");
      assertAllOk(await first, several);
      await assertDelivered(dst, [...several, one]);
    });
  } finally {
    await Deno.writeTextFile(gate, "");
    await sshd.stop();
    await Deno.remove(bin, { recursive: true });
  }
});

Deno.test("scp and rsync: a file where a night folder or a subfolder goes is named as the file in the way, in one call and by the upload program; it arrives once it is moved", async () => {
  const sshd = await startSshd();
  try {
    for (const method of ["scp", "rsync"] as const) {
      // A bandwidth limit: the upload program (scp, rsync) carries even small files.
      for (const overrides of [{}, { bandwidth_limit: "100MB/s" }]) {
        await withTransport(sshd, method, overrides, async ({ src, dst, transport }) => {
          const what = `${method} ${JSON.stringify(overrides)}`;
          await Deno.writeTextFile(join(dst, "20240501"), "in the way");
          await Deno.mkdir(join(dst, "20240502"));
          await Deno.writeTextFile(join(dst, "20240502", "flats 'x'"), "in the way too");
          await Deno.chown(join(dst, "20240502"), sshd.uid, sshd.gid);
          const night = await makeItem(src, "20240501/a.fits", randomBytes(3000));
          const sub = await makeItem(src, "20240502/flats 'x'/b.fits", randomBytes(3000));
          const [first, second] = await transport.send([night, sub], never);
          // Before: "cannot create the folder: the command failed (…/20240501: Not a directory)".
          assert.match(
            first.error?.message ?? "",
            /cannot create the folder: a file named 20240501 is in the way at \S+\/20240501, where a folder must be: rename or remove it there/,
            what,
          );
          assert.match(
            second.error?.message ?? "",
            /a file named flats 'x' is in the way at \S+\/20240502\/flats 'x', where a folder must be/,
            what,
          );
          assert.equal(first.error?.retryable, true, what);
          assert.equal(await Deno.readTextFile(join(dst, "20240501")), "in the way", what);
          await Deno.remove(join(dst, "20240501"));
          await Deno.remove(join(dst, "20240502"), { recursive: true });
          assertAllOk(await transport.send([night, sub], never), [night, sub]);
          await assertDelivered(dst, [night, sub]);
        });
      }
    }
  } finally {
    await sshd.stop();
  }
});

Deno.test("scp and rsync: a night folder removed while the copies of a batch are written into it is said plainly; the next attempt makes it again and every file arrives", async () => {
  const bin = await serverTools();
  // The server's tar waits (in the batch's upload folder, entered) until the test lets it go.
  const hold = join(bin, "hold");
  await Deno.remove(join(bin, "tar"));
  await Deno.writeTextFile(
    join(bin, "tar"),
    `#!/bin/sh\ntouch '${hold}.started'\nwhile [ -e '${hold}' ]; do sleep 0.05; done\n` +
      `exec /usr/bin/tar "$@"\n`,
    { mode: 0o755 },
  );
  await Deno.chmod(bin, 0o777);
  const sshd = await startSshd({ sessionEnv: { PATH: bin } });
  try {
    for (const method of ["scp", "rsync"] as const) {
      await withTransport(sshd, method, {}, async ({ src, dst, transport }) => {
        await Deno.remove(`${hold}.started`).catch(() => {}); // Left by the last tar.
        await Deno.writeTextFile(hold, "");
        const items = await Promise.all(
          [0, 1, 2].map((i) => makeItem(src, `20240601/a${i}.fits`, randomBytes(5000))),
        );
        const sending = transport.send(items, never);
        await waitFor(() => exists(`${hold}.started`), 30_000, "tar started");
        // The archive's clean-up removes the night folder, the batch's upload folder with it.
        await Deno.remove(join(dst, "20240601"), { recursive: true });
        await Deno.remove(hold);
        const outcomes = await sending;
        for (const outcome of outcomes) {
          // Before: "tar: a1.fits: Cannot open: No such file or directory ...".
          assert.match(
            outcome.error?.message ?? "",
            /the upload folder \S+ was removed while the copies were written into it/,
            method,
          );
          assert.equal(outcome.error?.kind, "retry", method);
        }
        assertAllOk(await transport.send(items, never), items);
        await assertDelivered(dst, items);
      });
    }
  } finally {
    await sshd.stop();
    await Deno.remove(bin, { recursive: true });
  }
});

Deno.test("a file whose upload needs longer than transfer_timeout_seconds (a large file on a slow link), where its copy starts over (scp; rsync without resume_partial_hours), is given twice as long at each next attempt, so it arrives; then the timeout is the configured one again", async (t) => {
  const sshd = await startSshd();
  try {
    for (const method of ["scp", "rsync"] as const) {
      await t.step(method, async () => {
        // 3 MB at 1 MB/s: about 3 s of upload against a 1 s timeout.
        const slow = {
          transfer_timeout_seconds: 1,
          bandwidth_limit: "1MB/s",
          resume_partial_hours: 0,
        };
        await withTransport(sshd, method, slow, async ({ src, dst, transport }) => {
          const item = await makeItem(src, "20240601/big frame.fits", randomBytes(3_000_000));
          const given: number[] = [];
          let outcome: TransferOutcome | undefined;
          for (let attempt = 1; attempt <= 8 && outcome?.error !== null; attempt++) {
            given.push(transport.longestCallMs!([item]));
            [outcome] = await transport.send([item], never);
            if (outcome.error !== null) {
              assert.match(outcome.error.message, new RegExp(`${method} timed out after`));
            }
          }
          assert.equal(outcome?.error, null, `arrived after ${given.length} attempt(s)`);
          assert.ok(given.length >= 2, "the first attempt timed out");
          assert.deepEqual(given, given.map((_, i) => 1000 * 2 ** i), "twice as long each time");
          await assertDelivered(dst, [item]);
          assert.equal(transport.longestCallMs!([item]), 1000, "the configured timeout again");
        });
      });
    }
  } finally {
    await sshd.stop();
  }
});
