/**
 * Resumed copies and parts of growing files, for the methods that continue
 * copies (local, rsync against a real OpenSSH server): an interrupted copy is
 * continued (only the rest is written: measured, for local by the bytes a
 * process of its own wrote, for rsync by its own `--stats`); one whose start differs
 * from the source's is not continued as it is; an expired one is removed; a
 * planted link under our name is never written through; parts of a growing
 * file append only what it gained. Names are hostile throughout.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import type { LogRecord } from "@logtape/logtape";
import { jobOwner, tempNameFor, uploadFolderPrefix } from "../../../src/transfer/temp_name.ts";
import { isTempName, TEMP_SUFFIX } from "../../../src/layout/destination.ts";
import type { TransferItem } from "../../../src/transfer/transport.ts";
import { listFiles, listFolders, randomBytes, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { captureLogs, type LogCapture } from "../../helpers/log_capture.ts";
import { startSshd } from "../../helpers/sshd.ts";
import { itemFor, type TransportCase, withTransport } from "../../helpers/transports.ts";

const MiB = 1024 * 1024;
const never = new AbortController().signal;
const HOSTILE = "-x $(touch pwned) 'q\"\nnl ü.fits";

/** Bytes rsync reported sending (its `--stats`) in the records captured since `from`. */
function rsyncSent(logs: LogCapture, from = 0): number {
  return logs.records.slice(from).filter((r: LogRecord) =>
    String(r.rawMessage).startsWith("rsync sent")
  ).reduce((sum, r) => sum + Number(r.properties.bytes), 0);
}

/** What {@linkcode sendCounted} saw of one send. */
interface CountedSend {
  error: string | null;
  /** The part sent, for a part of a growing file. */
  part: { bytes: number; appended: number } | null;
  /** Bytes that travelled: for local what its process wrote, for rsync its own `--stats`. */
  sent: number;
  /** The log messages of the send. */
  messages: string[];
}

/**
 * Send `item` (or with `part` the part of a growing file) as `ctx`'s transport
 * would and count what travelled. Local copies run in a process of their own,
 * since the tests run in parallel in this one and its write count is shared.
 */
async function sendCounted(
  ctx: TransportCase,
  logs: LogCapture,
  item: TransferItem,
  part = false,
): Promise<CountedSend> {
  if (ctx.method !== "local") {
    const mark = logs.records.length;
    const result = part
      ? { error: null, part: await ctx.transport.sendPart!(item, never) }
      : { error: (await ctx.transport.send([item], never))[0].error?.message ?? null, part: null };
    const messages = logs.records.slice(mark).map((record) => String(record.rawMessage));
    return { ...result, sent: rsyncSent(logs, mark), messages };
  }
  const request = await Deno.makeTempFile({ prefix: "itx-send-" });
  try {
    const runtimeDir = ctx.src;
    await Deno.writeTextFile(request, JSON.stringify({ job: ctx.job, runtimeDir, item, part }));
    const helper = new URL("../../helpers/send_measured.ts", import.meta.url).pathname;
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--quiet", helper, request],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder();
    assert.equal(code, 0, text.decode(stderr));
    const { written, ...result } = JSON.parse(text.decode(stdout));
    return { ...result, sent: written };
  } finally {
    await Deno.remove(request);
  }
}

/** A source of `size` random bytes (every MiB differs). */
async function randomSource(ctx: TransportCase, name: string, size: number) {
  const path = join(ctx.src, name);
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let done = 0; done < size;) {
    const chunk = randomBytes(Math.min(MiB, size - done));
    await file.write(chunk);
    done += chunk.length;
  }
  return await itemFor(path, `20240601/${name}`);
}

/** The temporary copies at the destination and their sizes. */
async function temporaries(ctx: TransportCase): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for (const rel of await listFiles(ctx.dst).catch(() => [])) {
    if (rel.split("/").some(isTempName)) found.set(rel, (await Deno.stat(join(ctx.dst, rel))).size);
  }
  return found;
}

/** Start sending `item`, abort once its copy holds at least `bytes`; the kept copy and its size. */
async function interruptAt(
  ctx: TransportCase,
  item: TransferItem,
  bytes: number,
): Promise<[string, number]> {
  const stop = new AbortController();
  const sending = ctx.transport.send([item], stop.signal).then(() => null, (error) => error);
  await waitFor(
    async () => [...(await temporaries(ctx)).values()].some((size) => size >= bytes),
    60_000,
    `a copy of ${bytes} bytes`,
  );
  stop.abort(new Error("interrupted by the test"));
  assert.match(String(await sending), /interrupted by the test/);
  // The receiving side may still write what reached it: wait until the copy stops growing.
  let last = "";
  let sameSince = Date.now();
  await waitFor(
    async () => {
      const now = JSON.stringify([...(await temporaries(ctx)).entries()]);
      if (now !== last) [last, sameSince] = [now, Date.now()];
      return Date.now() - sameSince >= 1000;
    },
    60_000,
    "the interrupted copy to stop growing",
  );
  const copies = await temporaries(ctx);
  assert.equal(copies.size, 1, `one kept copy: ${[...copies.keys()]}`);
  const [kept] = copies.entries();
  assert.ok(kept[1] < item.size, "the copy is not complete");
  return kept;
}

async function assertArrivedOnce(ctx: TransportCase, item: TransferItem): Promise<void> {
  const final = join(ctx.dst, ...item.destination.split("/"));
  assert.equal(await sha256OfFile(final), await sha256OfFile(item.source), "byte-exact");
  assert.deepEqual(await temporaries(ctx), new Map(), "no temporary copy left");
  const uploadFolders = (await listFolders(ctx.dst)).filter((rel) => rel.includes(".incoming"));
  assert.deepEqual(uploadFolders, [], "no upload folder left");
}

Deno.test("rsync: a batch continuing several copies a killed run left says so in one INFO line, each copy at DEBUG, and the bytes arrive", async () => {
  const sshd = await startSshd();
  const logs = await captureLogs();
  try {
    await withTransport("rsync", sshd, { verify_transfer: "checksum" }, async (ctx) => {
      const night = join(ctx.dst, "20240601");
      const leftover = join(night, `${uploadFolderPrefix(ctx.owner)}left${TEMP_SUFFIX}`);
      await Deno.mkdir(leftover, { recursive: true, mode: 0o700 });
      // Over what goes in one call: sent by rsync, which continues the copies.
      const items: TransferItem[] = [];
      for (const [index, name] of ["a $(x).fits", "-b.fits", "c\nd.fits"].entries()) {
        const item = await randomSource(ctx, name, 9 * MiB);
        items.push(item);
        const start = (await Deno.readFile(item.source)).subarray(0, (index + 1) * 1_000_000);
        await Deno.writeFile(join(leftover, name), start);
        await ctx.own(join(leftover, name));
      }
      for (const path of [leftover, night]) await ctx.own(path);
      const mark = logs.records.length;
      const outcomes = await ctx.transport.send(items, never);
      assert.deepEqual(outcomes.map((outcome) => outcome.error), [null, null, null]);
      for (const item of items) await assertArrivedOnce(ctx, item);
      const said = logs.records.slice(mark);
      const resuming = said.filter((r) => String(r.rawMessage).startsWith("Resuming"));
      // Before: an INFO line per copy (hundreds after a crash mid-burst).
      assert.deepEqual(
        resuming.map((r) => [r.level, r.properties.from]).sort(),
        [["debug", 1_000_000], ["debug", 2_000_000], ["debug", 3_000_000]],
      );
      const batch = said.filter((r) => String(r.rawMessage).startsWith("Continuing"));
      assert.deepEqual(
        batch.map((r) => [r.level, r.properties.count, r.properties.bytes]),
        [["info", 3, 6_000_000]],
      );
    });
  } finally {
    await logs.stop();
    await sshd.stop();
  }
});

Deno.test("resumed copies and parts of growing files, local and rsync", async (t) => {
  const sshd = await startSshd();
  const logs = await captureLogs();
  try {
    for (const method of ["local", "rsync"] as const) {
      // Slow enough to interrupt halfway: 64 MiB at 32 MiB/s.
      const slow = { bandwidth_limit: "32MiB/s", verify_transfer: "checksum" as const };

      await t.step(
        `${method}: an interrupted copy is continued; only the rest travels`,
        () =>
          withTransport(method, sshd, slow, async (ctx) => {
            const item = await randomSource(ctx, HOSTILE, 64 * MiB);
            const [, kept] = await interruptAt(ctx, item, 24 * MiB);
            const { error, sent } = await sendCounted(ctx, logs, item);
            assert.equal(error, null);
            const rest = item.size - kept;
            // `sent` counts everything the sending process wrote: a busy machine's first run also
            // writes Deno's module cache. Whole, the file would be 24 MiB more than the rest.
            assert.ok(sent >= rest && sent < rest + 8 * MiB, `sent ${sent}, the rest is ${rest}`);
            await assertArrivedOnce(ctx, item);
          }),
      );

      await t.step(
        `${method}: a copy whose start differs from the source is not kept as it is`,
        () =>
          withTransport(method, sshd, slow, async (ctx) => {
            const item = await randomSource(ctx, HOSTILE, 64 * MiB);
            const [, kept] = await interruptAt(ctx, item, 24 * MiB);
            // Someone rewrites the start of the source (same size).
            {
              using file = await Deno.open(item.source, { write: true });
              await file.write(randomBytes(4096));
            }
            const changed = await itemFor(item.source, item.destination);
            const { error, sent, messages } = await sendCounted(ctx, logs, changed);
            assert.equal(error, null);
            if (method === "local") {
              assert.ok(sent >= item.size, `sent whole: wrote ${sent} of ${item.size}`);
              const said = messages.filter((text) => text.includes("does not match the source"));
              assert.equal(said.length, 1, messages.join("\n"));
            } else {
              // rsync appends the rest, its whole-file check over the continued copy fails, and it
              // sends the file again (its delta algorithm: the blocks that differ).
              assert.ok(sent >= item.size - kept);
            }
            await assertArrivedOnce(ctx, changed);
          }),
      );

      // local judges a copy's age by its status change time too, which cannot be set back: its
      // copies are kept 3.6 s here, and the test waits until that much time has passed.
      const keptBriefly = method === "local" ? { resume_partial_hours: 0.001 } : {};
      await t.step(
        `${method}: an expired copy is removed, not continued`,
        () =>
          withTransport(method, sshd, { ...slow, ...keptBriefly }, async (ctx) => {
            const item = await randomSource(ctx, "old.fits", 64 * MiB);
            const [rel] = await interruptAt(ctx, item, 24 * MiB);
            // Nothing written there for 25 hours: the copy, nor (rsync) its upload folder.
            const long = new Date(Date.now() - 25 * 3600_000);
            await Deno.utime(join(ctx.dst, rel), long, long);
            if (method === "rsync") await Deno.utime(dirname(join(ctx.dst, rel)), long, long);
            if (method === "local") {
              const keepMs = ctx.job.resume_partial_hours * 3_600_000;
              const changedAt = async () => (await Deno.stat(join(ctx.dst, rel))).ctime!.getTime();
              await waitFor(
                async () => Date.now() - await changedAt() > keepMs,
                keepMs + 60_000,
                "the copy to be idle past resume_partial_hours",
              );
            }
            const { error, sent, messages } = await sendCounted(ctx, logs, item);
            assert.equal(error, null);
            assert.deepEqual(messages.filter((text) => /^Resum/.test(text)), []);
            assert.ok(sent >= item.size, `sent whole: ${sent} of ${item.size}`);
            await assertArrivedOnce(ctx, item);
          }),
      );
    }

    await t.step(
      "rsync: an upload that fails at its start says nothing kept and leaves no upload folder; a copy kept before stays kept",
      async () => {
        // The server's rsync: one that ends at once while the gate is closed (as rsync missing
        // there, or the server closing the connection, would).
        const gateDir = await sshd.makeRemoteDir("itx-gate-");
        const closed = join(gateDir, "closed");
        const gate = join(gateDir, "rsync-gate");
        await Deno.writeTextFile(
          gate,
          `#!/bin/sh\n[ -e '${closed}' ] && exit 1\nexec rsync "$@"\n`,
        );
        await Deno.chmod(gate, 0o755);
        const kept = (messages: string[]) =>
          messages.filter((text) => text.startsWith("Kept the interrupted copy")).length;
        const uploadFolders = async (ctx: TransportCase) =>
          (await listFolders(ctx.dst)).filter((rel) => rel.includes(".incoming"));
        const options = {
          bandwidth_limit: "32MiB/s",
          verify_transfer: "checksum" as const,
          rsync_options: [`--rsync-path=${gate}`],
        };
        try {
          await withTransport("rsync", sshd, options, async (ctx) => {
            const item = await randomSource(ctx, HOSTILE, 64 * MiB);
            await Deno.writeTextFile(closed, "");
            const failed = await sendCounted(ctx, logs, item);
            assert.notEqual(failed.error, null);
            // Before the fix: "Kept the interrupted copy" of nothing, and its empty upload folder.
            assert.equal(kept(failed.messages), 0, failed.messages.join("\n"));
            assert.deepEqual(await uploadFolders(ctx), []);

            // A copy cut halfway, then an attempt that fails at its start: the copy stays.
            await Deno.remove(closed);
            const [, size] = await interruptAt(ctx, item, 24 * MiB);
            await Deno.writeTextFile(closed, "");
            const again = await sendCounted(ctx, logs, item);
            assert.notEqual(again.error, null);
            assert.equal(kept(again.messages), 1, again.messages.join("\n"));
            assert.deepEqual([...(await temporaries(ctx)).values()], [size]);
            // And it is continued.
            await Deno.remove(closed);
            const { error, sent } = await sendCounted(ctx, logs, item);
            assert.equal(error, null);
            assert.ok(sent < item.size, `sent ${sent} of ${item.size}: the rest only`);
            await assertArrivedOnce(ctx, item);
          });
        } finally {
          await Deno.remove(gateDir, { recursive: true });
        }
      },
    );

    await t.step(
      "local: a link planted under this daemon's temporary name is not written through",
      () =>
        withTransport("local", sshd, {}, async (ctx) => {
          const item = await randomSource(ctx, HOSTILE, MiB);
          const folder = join(ctx.dst, "20240601");
          await Deno.mkdir(folder, { recursive: true });
          const victim = join(ctx.src, "victim");
          await Deno.writeTextFile(victim, "precious");
          const planted = join(folder, tempNameFor(HOSTILE, jobOwner(ctx.job)));
          await Deno.symlink(victim, planted);
          const [outcome] = await ctx.transport.send([item], never);
          assert.equal(outcome.error, null, outcome.error?.message);
          assert.equal(await Deno.readTextFile(victim), "precious");
          assert.equal(await sha256OfFile(join(folder, HOSTILE)), await sha256OfFile(item.source));
        }),
    );

    for (const method of ["local", "rsync"] as const) {
      await t.step(
        `${method}: parts of a growing file append only what it gained`,
        () =>
          withTransport(method, sshd, { verify_transfer: "checksum" }, async (ctx) => {
            const path = join(ctx.src, HOSTILE);
            await Deno.writeFile(path, new Uint8Array());
            // Bytes that travelled while the transport sent (not the source's growth).
            let total = 0;
            let appended = 0;
            for (let i = 0; i < 5; i++) {
              await Deno.writeFile(path, randomBytes(4 * MiB), { append: true });
              const item = await itemFor(path, `20240601/${HOSTILE}`);
              const { part, sent } = await sendCounted(ctx, logs, item, true);
              total += sent;
              assert.equal(part?.bytes, (i + 1) * 4 * MiB);
              appended += part!.appended;
              const temps = [...(await temporaries(ctx)).keys()];
              assert.deepEqual(await listFiles(ctx.dst), temps, "no final name yet");
            }
            await Deno.writeFile(path, randomBytes(MiB), { append: true });
            const item = await itemFor(path, `20240601/${HOSTILE}`);
            const { error, sent } = await sendCounted(ctx, logs, item);
            total += sent;
            assert.equal(error, null);
            assert.equal(appended, 20 * MiB);
            // Sending each part whole would move 4+8+12+16+20+21 = 81 MiB. Allow
            // half the file again for what a busy process writes besides (a local
            // copy's count is all its process wrote, not only the file).
            assert.ok(
              total >= item.size && total < item.size * 1.5,
              `sent ${total} for ${item.size}`,
            );
            await assertArrivedOnce(ctx, item);
          }),
      );
    }
  } finally {
    await logs.stop();
    await sshd.stop();
  }
});

Deno.test("a growing file's last send is said as what it gained since its last part, not as a resumed copy, local and rsync", async (t) => {
  const sshd = await startSshd();
  const logs = await captureLogs();
  try {
    for (const method of ["local", "rsync"] as const) {
      await t.step(method, () =>
        withTransport(method, sshd, {}, async (ctx) => {
          const path = join(ctx.src, `${method} ${HOSTILE}`);
          const destination = `20240601/${method} ${HOSTILE}`;
          await Deno.writeFile(path, randomBytes(213_559));
          await ctx.transport.sendPart!(await itemFor(path, destination), never);
          await Deno.writeFile(path, randomBytes(1), { append: true });
          const mark = logs.records.length;
          const [outcome] = await ctx.transport.send([await itemFor(path, destination)], never);
          assert.equal(outcome.error, null, outcome.error?.message);
          await assertArrivedOnce(ctx, await itemFor(path, destination));
          const said = logs.records.slice(mark).filter((r) => r.properties.source === path);
          const words = said.map((r) => [r.level, String(r.rawMessage), r.properties.from]);
          // Before: INFO "Resuming <path> at byte 213559 of 213560", as if it had been cut short.
          assert.ok(
            words.some(([level, message, from]) =>
              level === "info" && from === 213_559 &&
              /^Sen(ding|t) what the growing file \{source\} gained since its last part/.test(
                String(message),
              )
            ),
            JSON.stringify(words),
          );
          assert.ok(!words.some(([, message]) => /^Resum/.test(String(message))), String(words));
        }));
    }
  } finally {
    await logs.stop();
    await sshd.stop();
  }
});
