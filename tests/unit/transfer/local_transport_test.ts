/**
 * The `local` transport against real folders: exact bytes in every verify
 * mode, temp-then-rename, stale and missing sources, aborts, unusable
 * destinations and hostile names.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { basename, join } from "node:path";
import { testJob } from "../../helpers/jobs.ts";
import type { JobConfig, VerifyMode } from "../../../src/config/types.ts";
import { TransferError } from "../../../src/errors.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import { copyData } from "../../../src/transfer/local/copy.ts";
import type { Throttle } from "../../../src/transfer/throttle.ts";
import {
  closeSource,
  giveChunk,
  hashSource,
  openSource,
  takeChunk,
} from "../../../src/transfer/source.ts";
import { jobOwner, tempNameFor } from "../../../src/transfer/temp_name.ts";
import { isTempName } from "../../../src/layout/destination.ts";
import type { TransferItem } from "../../../src/transfer/transport.ts";
import { exists, listFiles, randomBytes, sha256Of, waitFor } from "../../helpers/files.ts";
import { whileImmutable } from "../../helpers/immutable.ts";
import { inOwnProcess } from "../../helpers/processes.ts";

/** A local job with the schema defaults, pointed at `dest`. */
function localJob(dest: string, overrides: Partial<JobConfig> = {}): JobConfig {
  return testJob("test", {
    watch_path: "/unused",
    remote_base_path: dest,
    transfer_method: "local",
    verify_transfer: "size",
  }, overrides);
}

/** Write `bytes` to `root/rel` and describe it as a transfer item to `destination`. */
async function source(
  root: string,
  rel: string,
  bytes: Uint8Array,
  destination = `20240315/${rel}`,
): Promise<TransferItem> {
  const path = join(root, ...rel.split("/"));
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeFile(path, bytes);
  const info = await Deno.stat(path);
  return { source: path, destination, size: info.size, mtimeMs: info.mtime!.getTime() };
}

async function withDirs(fn: (src: string, dest: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "itx-local-" });
  try {
    const src = join(root, "src");
    const dest = join(root, "dest");
    await Deno.mkdir(src);
    await fn(src, dest);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

for (const mode of ["checksum", "size", "none"] as VerifyMode[]) {
  Deno.test(`LocalTransport (${mode}): delivers exact bytes into nested folders, no temp left`, async () => {
    await withDirs(async (src, dest) => {
      const transport = new LocalTransport(localJob(dest, { verify_transfer: mode }));
      const contents = new Map<string, Uint8Array>([
        ["a.fits", randomBytes(3 * 1024 * 1024 + 17)], // more than one copy buffer
        ["night/flats/b.fits", randomBytes(1000)],
        ["night/flats/deep/er/c.fits", randomBytes(0)],
      ]);
      const items: TransferItem[] = [];
      for (const [rel, bytes] of contents) items.push(await source(src, rel, bytes));
      const outcomes = await transport.send(items, new AbortController().signal);
      assert.equal(outcomes.length, items.length);
      for (const [i, outcome] of outcomes.entries()) {
        assert.equal(outcome.item, items[i], "outcomes in the order given");
        assert.equal(outcome.error, null, String(outcome.error));
      }
      assert.deepEqual(
        (await listFiles(dest)).sort(),
        [...contents.keys()].map((rel) => `20240315/${rel}`).sort(),
        "only the final names exist",
      );
      for (const [rel, bytes] of contents) {
        const arrived = await Deno.readFile(join(dest, "20240315", ...rel.split("/")));
        assert.equal(arrived.length, bytes.length);
        assert.equal(sha256Of(arrived), sha256Of(bytes), `bytes of ${rel}`);
      }
      await transport.close();
      await transport.close();
    });
  });
}

Deno.test("LocalTransport: this daemon's leftover temporary files are swept, others' are not", async () => {
  await withDirs(async (src, dest) => {
    const job = localJob(dest, { verify_transfer: "checksum" });
    const transport = new LocalTransport(job);
    const bytes = randomBytes(5000);
    const item = await source(src, "night/a.fits", bytes);
    const folder = join(dest, "20240315", "night");
    await Deno.mkdir(folder, { recursive: true });
    const leftover = tempNameFor("a.fits", jobOwner(job));
    await Deno.writeFile(join(folder, leftover), randomBytes(20_000));
    const othersTemp = tempNameFor("a.fits", "0123456789");
    await Deno.writeFile(join(folder, othersTemp), randomBytes(10));
    const [outcome] = await transport.send([item], new AbortController().signal);
    assert.equal(outcome.error, null);
    assert.deepEqual(await Deno.readFile(join(folder, "a.fits")), bytes);
    assert.deepEqual(await listFiles(dest), [
      `20240315/night/${othersTemp}`,
      "20240315/night/a.fits",
    ]);
  });
});

Deno.test("LocalTransport: copies left in a night folder while it was read-only are swept by the next batch into it, not left for good", async () => {
  await withDirs(async (src, dest) => {
    const job = localJob(dest, { verify_transfer: "checksum" });
    const transport = new LocalTransport(job);
    const signal = new AbortController().signal;
    try {
      const first = await source(src, "-first $(id).fits", randomBytes(3000));
      assert.equal((await transport.send([first], signal))[0].error, null);
      const folder = join(dest, "20240315");
      // A copy made just before the folder turned read-only: neither renamed nor removed.
      const left = tempNameFor("b 'x'\n.fits", jobOwner(job));
      await Deno.writeFile(join(folder, left), randomBytes(4000));
      const items = [
        await source(src, "b 'x'\n.fits", randomBytes(2000)),
        await source(src, "c.fits", randomBytes(2500)),
      ];
      const refused = await whileImmutable(folder, () => transport.send(items, signal));
      for (const outcome of refused) assert.ok(outcome.error instanceof TransferError);
      // Writable again: the files are sent again, into the same folder.
      const outcomes = await transport.send(items, signal);
      for (const outcome of outcomes) assert.equal(outcome.error, null);
      assert.deepEqual((await listFiles(dest)).sort(), [
        "20240315/-first $(id).fits",
        "20240315/b 'x'\n.fits",
        "20240315/c.fits",
      ]);
    } finally {
      await transport.close();
    }
  });
});

Deno.test("LocalTransport: an existing final file is replaced", async () => {
  await withDirs(async (src, dest) => {
    const transport = new LocalTransport(localJob(dest));
    await Deno.mkdir(join(dest, "20240315"), { recursive: true });
    await Deno.writeFile(join(dest, "20240315", "a.fits"), randomBytes(9000));
    const bytes = randomBytes(100);
    const [outcome] = await transport.send(
      [await source(src, "a.fits", bytes)],
      new AbortController().signal,
    );
    assert.equal(outcome.error, null);
    assert.deepEqual(await Deno.readFile(join(dest, "20240315", "a.fits")), bytes);
    assert.deepEqual(await listFiles(dest), ["20240315/a.fits"]);
  });
});

Deno.test("LocalTransport: a source that changed since it was judged complete fails retryably", async () => {
  for (const mode of ["checksum", "size", "none"] as VerifyMode[]) {
    await withDirs(async (src, dest) => {
      const transport = new LocalTransport(localJob(dest, { verify_transfer: mode }));
      // Grown after the size was recorded.
      const grown = await source(src, "grown.fits", randomBytes(1000));
      await Deno.writeFile(grown.source, randomBytes(10), { append: true });
      // Same size, new mtime (rewritten in place).
      const touched = await source(src, "touched.fits", randomBytes(1000));
      const later = new Date(touched.mtimeMs + 5000);
      await Deno.utime(touched.source, later, later);
      // Shrunk; an older copy already sits under the final name and must stay.
      const shrunk = await source(src, "shrunk.fits", randomBytes(1000));
      await Deno.truncate(shrunk.source, 10);
      await Deno.mkdir(join(dest, "20240315"), { recursive: true });
      const older = randomBytes(77);
      await Deno.writeFile(join(dest, "20240315", "shrunk.fits"), older);
      const fine = await source(src, "fine.fits", randomBytes(500));

      const outcomes = await transport.send(
        [grown, touched, shrunk, fine],
        new AbortController().signal,
      );
      for (const outcome of outcomes.slice(0, 3)) {
        assert.ok(outcome.error instanceof TransferError, `${mode}: ${outcome.item.source}`);
        assert.equal(outcome.error.kind, "retry");
        assert.equal(outcome.error.retryable, true);
        assert.ok(outcome.error.message.includes(outcome.item.source), outcome.error.message);
        assert.match(outcome.error.message, /changed/);
      }
      // Each says what changed: the size, or (the same size) the modification time.
      assert.match(outcomes[0].error!.message, /\(size 1000 -> 1010\)$/);
      const touchedAt = new Date(touched.mtimeMs).toISOString();
      const touchedEnd = `(same size, modified ${touchedAt} -> ${later.toISOString()})`;
      assert.ok(outcomes[1].error!.message.endsWith(touchedEnd), outcomes[1].error!.message);
      assert.equal(outcomes[3].error, null);
      assert.deepEqual(
        (await listFiles(dest)).sort(),
        ["20240315/fine.fits", "20240315/shrunk.fits"],
        `${mode}: no final name for a stale source, no temp files`,
      );
      assert.deepEqual(await Deno.readFile(join(dest, "20240315", "shrunk.fits")), older);
    });
  }
});

Deno.test("LocalTransport: a source rewritten while it is copied fails retryably, checked through the file read", async () => {
  await withDirs(async (src, dest) => {
    // A bandwidth limit makes the copy take seconds, so the source changes while it is read.
    const transport = new LocalTransport(
      localJob(dest, { verify_transfer: "checksum", bandwidth_limit: "1MiB/s" }),
    );
    const item = await source(src, "slow.fits", randomBytes(3 << 20));
    const folder = join(dest, "20240315");
    const sending = transport.send([item], new AbortController().signal);
    // The copy has begun: its temporary file is there.
    await waitFor(async () =>
      (await listFiles(dest).catch(() => [])).some((path) => isTempName(basename(path)))
    );
    // Same size, a new mtime: only a check of the file read after the read tells.
    const later = new Date(item.mtimeMs + 5000);
    await Deno.utime(item.source, later, later);
    const [outcome] = await sending;
    assert.ok(outcome.error instanceof TransferError, "a rewritten source must not be delivered");
    assert.equal(outcome.error.kind, "retry");
    assert.match(outcome.error.message, /changed/);
    assert.equal(await exists(join(folder, "slow.fits")), false);
    assert.deepEqual(await listFiles(dest), [], "no copy left behind");
  });
});
Deno.test("LocalTransport: a source written in place while it is copied, its size and mtime set back, fails retryably", async () => {
  await withDirs(async (src, dest) => {
    const transport = new LocalTransport(
      localJob(dest, { verify_transfer: "checksum", bandwidth_limit: "1MiB/s" }),
    );
    // 4 MiB at 1 MiB/s: the copy takes 4 s, whatever the machine's load.
    const item = await source(src, "kept.fits", randomBytes(4 << 20));
    const sending = transport.send([item], new AbortController().signal);
    await waitFor(async () =>
      (await listFiles(dest).catch(() => [])).some((path) => isTempName(basename(path)))
    );
    // The runtime gives the change time to the second: the write comes in a later one.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    // Its first bytes rewritten, then its mtime set back (`touch -r`): size and mtime as judged.
    const file = await Deno.open(item.source, { write: true });
    await file.write(randomBytes(4096));
    file.close();
    const mtime = new Date(item.mtimeMs);
    await Deno.utime(item.source, mtime, mtime);
    const [outcome] = await sending;
    assert.ok(outcome.error instanceof TransferError, "a copy of two versions must not arrive");
    assert.equal(outcome.error.kind, "retry");
    assert.match(outcome.error.message, /written to or its attributes changed while it was read/);
    assert.deepEqual(await listFiles(dest), [], "no copy left behind");
  });
});

Deno.test("LocalTransport: a missing source fails that item only", async () => {
  await withDirs(async (src, dest) => {
    const transport = new LocalTransport(localJob(dest, { verify_transfer: "checksum" }));
    const first = await source(src, "1.fits", randomBytes(300));
    const missing = await source(src, "2.fits", randomBytes(300));
    await Deno.remove(missing.source);
    const third = await source(src, "3.fits", randomBytes(300));
    const outcomes = await transport.send([first, missing, third], new AbortController().signal);
    assert.deepEqual(outcomes.map((o) => o.item), [first, missing, third]);
    assert.equal(outcomes[0].error, null);
    assert.equal(outcomes[2].error, null);
    const error = outcomes[1].error;
    assert.ok(error instanceof TransferError);
    assert.equal(error.kind, "retry");
    assert.ok(error.message.startsWith(`Cannot send ${missing.source}`), error.message);
    assert.ok(error.cause instanceof Deno.errors.NotFound);
    assert.deepEqual((await listFiles(dest)).sort(), ["20240315/1.fits", "20240315/3.fits"]);
  });
});

Deno.test("LocalTransport: a destination below a regular file fails that item only", async () => {
  await withDirs(async (src, dest) => {
    const transport = new LocalTransport(localJob(dest));
    await Deno.mkdir(dest, { recursive: true });
    await Deno.writeTextFile(join(dest, "blocker"), "a file, not a folder");
    const blocked = await source(src, "a.fits", randomBytes(100), "blocker/night/a.fits");
    const fine = await source(src, "b.fits", randomBytes(100));
    const outcomes = await transport.send([blocked, fine], new AbortController().signal);
    const error = outcomes[0].error;
    assert.ok(error instanceof TransferError);
    assert.equal(error.kind, "retry");
    assert.ok(error.message.startsWith(`Cannot send ${blocked.source}: `), error.message);
    // In the user's words, with the file at fault.
    assert.ok(
      error.message.includes(
        `a file named blocker is in the way at ${join(dest, "blocker")}, where a folder must be`,
      ),
      error.message,
    );
    assert.doesNotMatch(error.message, /Not a directory|os error/);
    assert.equal(outcomes[1].error, null);
    assert.deepEqual((await listFiles(dest)).sort(), ["20240315/b.fits", "blocker"]);
    assert.equal(await Deno.readTextFile(join(dest, "blocker")), "a file, not a folder");
  });
});

Deno.test("LocalTransport: a base path that is a regular file fails every item", async () => {
  await withDirs(async (src, dest) => {
    await Deno.writeTextFile(dest, "not a folder");
    const transport = new LocalTransport(localJob(dest));
    const nested = await source(src, "a.fits", randomBytes(10));
    const flat = await source(src, "b.fits", randomBytes(10), "b.fits");
    const outcomes = await transport.send([nested, flat], new AbortController().signal);
    for (const outcome of outcomes) {
      assert.ok(outcome.error instanceof TransferError, "fails");
      assert.ok(outcome.error.retryable);
    }
    assert.equal(await Deno.readTextFile(dest), "not a folder");
  });
});

Deno.test("LocalTransport: an already aborted signal throws before touching anything", async () => {
  await withDirs(async (src, dest) => {
    const transport = new LocalTransport(localJob(dest));
    const item = await source(src, "a.fits", randomBytes(100));
    const controller = new AbortController();
    const reason = new Error("stopping");
    controller.abort(reason);
    await assert.rejects(() => transport.send([item], controller.signal), (e) => e === reason);
    assert.equal(await exists(dest), false);
  });
});

Deno.test("LocalTransport: an abort during a copy throws and, without resuming, leaves no temporary file", async () => {
  await withDirs(async (src, dest) => {
    const transport = new LocalTransport(localJob(dest, { resume_partial_hours: 0 }));
    // 64 chunks: the copy is still running when the temporary file appears.
    const item = await source(src, "slow.fits", randomBytes(64 * 1024 * 1024));
    const folder = join(dest, "20240315");
    await Deno.mkdir(folder, { recursive: true });
    const controller = new AbortController();
    const reason = new Error("stopping");
    using watcher = Deno.watchFs(folder);
    const sending = transport.send([item], controller.signal);
    const settled = sending.then(() => "resolved", (e) => e);
    let temp = "";
    for await (const event of watcher) {
      temp = event.paths.find((path) => isTempName(basename(path))) ?? "";
      if (temp !== "") break;
    }
    controller.abort(reason);
    assert.equal(await settled, reason, "send rejects with the abort reason");
    assert.equal(await exists(temp), false, "temporary file removed");
    assert.deepEqual(await listFiles(dest), [], "no final name");
  });
});

Deno.test("LocalTransport: a part of a growing file whose night folder is removed while it is copied fails as that folder removed under the part (no batch); the file then arrives whole", async () => {
  await withDirs(async (src, dest) => {
    // Paced: the part is still being copied when its temporary file appears.
    const job = localJob(dest, { resume_partial_hours: 24, bandwidth_limit: "8MiB/s" });
    const transport = new LocalTransport(job);
    try {
      const bytes = randomBytes(16 * 1024 * 1024);
      const item = await source(src, "growing 'x' $(id).fits", bytes);
      const night = join(dest, "20240315");
      await Deno.mkdir(night, { recursive: true });
      using watcher = Deno.watchFs(night);
      const part = transport.sendPart!(item, new AbortController().signal);
      const settled = part.then(() => "sent", (error) => error);
      for await (const event of watcher) {
        if (event.paths.some((path) => isTempName(basename(path)))) break;
      }
      // The archive's clean-up takes the night folder away, the part's copy with it.
      await Deno.remove(night, { recursive: true });
      const error = await settled;
      // Before: the part was counted as sent, into a copy that no longer was anywhere.
      assert.ok(error instanceof TransferError, String(error));
      // Said as what it was: a part of the growing file, not a batch, copied again from its start.
      assert.equal(
        error.message,
        `Cannot send a part of ${item.source}: the destination folder ${night} was removed while ` +
          "this part of the growing file was copied into it; the next part, or the complete " +
          "file, is copied from its start, in the folder made again",
      );
      assert.equal(error.kind, "retry");
      // The complete file is sent as any file: whole, into the folder made again.
      const [outcome] = await transport.send([item], new AbortController().signal);
      assert.equal(outcome.error, null);
      assert.deepEqual(await Deno.readFile(join(night, "growing 'x' $(id).fits")), bytes);
      assert.deepEqual(await listFiles(dest), ["20240315/growing 'x' $(id).fits"]);
    } finally {
      await transport.close();
    }
  });
});

Deno.test("LocalTransport: hostile and very long names arrive byte for byte", async () => {
  await withDirs(async (src, dest) => {
    const transport = new LocalTransport(localJob(dest, { verify_transfer: "checksum" }));
    const names = [
      "with space.fits",
      "$(touch pwned).fits",
      "`id`.fits",
      "semi;colon.fits",
      "-leading dash.fits",
      "--help.fits",
      "new\nline.fits",
      "quote'\"s.fits",
      "star*.fits",
      "back\\slash.fits",
      "caf\u00e9 NFC.fits",
      "cafe\u0301 NFD.fits",
      "日本語 🔭.fits",
      "x".repeat(240) + ".fits", // the temporary name would be too long: hashed
      "$(x) dir/-sub dir/a b.fits",
    ];
    const items: TransferItem[] = [];
    const bytes = new Map<string, Uint8Array>();
    for (const [i, name] of names.entries()) {
      const content = randomBytes(100 + i);
      bytes.set(name, content);
      items.push(await source(src, name, content, `20240315/${name}`));
    }
    const outcomes = await transport.send(items, new AbortController().signal);
    for (const outcome of outcomes) assert.equal(outcome.error, null, String(outcome.error));
    assert.deepEqual(
      (await listFiles(dest)).sort(),
      names.map((n) => `20240315/${n}`).sort(),
      "exactly these names, no temp files",
    );
    for (const [name, content] of bytes) {
      assert.deepEqual(await Deno.readFile(join(dest, "20240315", ...name.split("/"))), content);
    }
    assert.equal(await exists(join(src, "..", "pwned")), false);
    assert.equal(await exists("pwned"), false);
  });
});

/** Worker threads of this process (the runtime names them `worker-N`). */
function workerThreads(): number {
  return [...Deno.readDirSync("/proc/self/task")].filter((task) => {
    try {
      return Deno.readTextFileSync(`/proc/self/task/${task.name}/comm`).startsWith("worker-");
    } catch {
      return false; // Ended meanwhile.
    }
  }).length;
}

const COPIER_THREADS_TEST =
  "LocalTransport: a lone file is copied on the daemon's thread; batches of several go to the copier's two threads in turn, which stop with the transport";

Deno.test(COPIER_THREADS_TEST, async () => {
  // It counts the process's worker threads: other test files' (watchers, copiers) are left out.
  if (!await inOwnProcess(COPIER_THREADS_TEST, import.meta.url)) return;
  await withDirs(async (src, dest) => {
    const transport = new LocalTransport(localJob(dest, { verify_transfer: "checksum" }));
    const before = workerThreads();
    const batch = async (names: string[]) => {
      const items = await Promise.all(names.map((name) => source(src, name, randomBytes(5000))));
      const outcomes = await transport.send(items, new AbortController().signal);
      assert.deepEqual(outcomes.map((outcome) => outcome.error), items.map(() => null));
      for (const item of items) {
        const copy = await Deno.readFile(join(dest, ...item.destination.split("/")));
        assert.deepEqual(copy, await Deno.readFile(item.source));
      }
    };
    try {
      await batch(["lone.fits"]);
      assert.equal(workerThreads(), before, "no thread started for one file");
      await batch(["a.fits", "b.fits", "c.fits"]);
      assert.equal(workerThreads(), before + 1);
      await batch(["d.fits", "e.fits"]);
      assert.equal(workerThreads(), before + 2);
      // Once a thread runs, a lone file goes to it too.
      await batch(["f.fits"]);
      assert.equal(workerThreads(), before + 2);
    } finally {
      await transport.close();
    }
    await waitFor(() => workerThreads() === before);
    assert.deepEqual((await listFiles(dest)).length, 7, "no temporary file left");
  });
});

Deno.test("LocalTransport: describeTarget joins the base path and the destination", () => {
  const transport = new LocalTransport(localJob("/data/archive"));
  assert.equal(
    transport.describeTarget("20240315/n/a b.fits"),
    "/data/archive/20240315/n/a b.fits",
  );
  assert.equal(transport.method, "local");
  assert.ok(transport.maxBatchFiles >= 1);
});

Deno.test("copyData: the SHA-256 of what it copied, read in one chunk, in several (a chunk's size and one byte either side), after a larger file, or grown meanwhile", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-copydata-" });
  const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
  const copy = async (item: TransferItem, grow?: Uint8Array) => {
    const from = openSource(item);
    const target = join(root, `copy-${basename(item.source)}`);
    const out = openSync(target, "wx+");
    // Paced after each chunk; with `grow`, the writer appends to the file after the first one.
    let chunks = 0;
    const throttle = {
      sent: async () => {
        if (grow && chunks++ === 0) await Deno.writeFile(item.source, grow, { append: true });
      },
    } as unknown as Throttle;
    try {
      const signal = new AbortController().signal;
      const written = await copyData(from, out, signal, { hashIt: true, throttle });
      return { written, bytes: await Deno.readFile(target) };
    } finally {
      closeSync(out);
      closeSource(from);
    }
  };
  try {
    // The read buffers are reused: the files after a large one find its bytes in them.
    const mib = 1024 * 1024;
    const sizes = [0, 1, 200 * 1024, 5 * mib + 17, mib, mib + 1, mib + 2, 1000, 1, 0];
    for (const [i, size] of sizes.entries()) {
      const data = randomBytes(size);
      const { written, bytes } = await copy(await source(root, `f${i}-${size}.fits`, data));
      assert.equal(written.bytes, size);
      assert.deepEqual(bytes, data, `bytes of ${size}`);
      assert.equal(written.sha256, sha(data), `SHA-256 of ${size} bytes`);
    }
    const first = randomBytes(1000);
    const more = randomBytes(3000);
    const { written, bytes } = await copy(await source(root, "grown.fits", first), more);
    const all = new Uint8Array([...first, ...more]);
    assert.equal(written.bytes, 4000);
    assert.deepEqual(bytes, all);
    assert.equal(written.sha256, sha(all), "the hash of what was copied, not of its first chunk");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("hashSource: sources hashed all at once, small and larger than a chunk, each get their own SHA-256; a small one's read buffer is back before the next starts", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-hashes-" });
  try {
    const contents = Array.from(
      { length: 40 },
      (_, i) => randomBytes(i % 10 === 9 ? 2 * 1024 * 1024 + i : 1000 * i),
    );
    const items = await Promise.all(
      contents.map((bytes, i) => source(root, `f${i}.fits`, bytes)),
    );
    const hashes = await Promise.all(items.map((item) => hashSource(item)));
    assert.deepEqual(hashes, contents.map(sha256Of));
    // Read whole before any await, a small source gives its buffer back at once: the next read
    // takes the same one (a burst does not allocate a buffer per file).
    const first = takeChunk();
    giveChunk(first);
    const hashing = hashSource(items[1]);
    const next = takeChunk();
    giveChunk(next);
    assert.equal(next, first);
    assert.equal(await hashing, sha256Of(contents[1]));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
