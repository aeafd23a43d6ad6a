/**
 * The payload of a one-call SSH batch (`ssh/one_call.ts`): the sources read
 * into one buffer, as the bytes of one file or a tar archive that the real
 * `tar` extracts as the remote side does (`tar -x -p -o`), with hostile names,
 * and with sources that vanished or changed left out.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readPayload } from "../../../src/transfer/ssh/one_call.ts";
import { type SshDelivery, sshDelivery } from "../../../src/transfer/ssh/method.ts";
import { listFiles, randomBytes } from "../../helpers/files.ts";

/** A delivery of `source` (as it is now) whose copy is to be called `name`. */
async function deliveryOf(source: string, name: string, index: number): Promise<SshDelivery> {
  const info = await Deno.stat(source);
  return sshDelivery({
    index,
    item: {
      source,
      destination: `20240101/${name}`,
      size: info.size,
      mtimeMs: info.mtime!.getTime(),
    },
    finalPath: `/remote/20240101/${name}`,
    tempPath: `/remote/20240101/.upload/${name}`,
    error: null,
    source: null,
    sha256: null,
    done: false,
    checkedAfterRead: false,
  });
}

/** Extract `archive` with the system's tar, as `receive_copies` does, into a new folder. */
async function extract(archive: Uint8Array): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "itx-untar-" });
  const child = new Deno.Command("tar", {
    args: ["-x", "-p", "-o", "-f", "-"],
    cwd: dir,
    stdin: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(archive);
  await writer.close();
  const out = await child.output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return dir;
}

Deno.test("a one-call payload of several files is a tar archive of exactly the readable, unchanged ones", async () => {
  const src = await Deno.makeTempDir({ prefix: "itx-payload-" });
  const dirs = [src];
  try {
    const names = [
      "plain.fits",
      "-leading dash.fits",
      "with\nnewline.fits",
      "über $(touch CANARY) 'quoted'.fits",
      `${"long".repeat(40)}.fits`,
      "vanishes.fits",
      "grows.fits",
      "last.fits",
    ];
    const bytes = new Map<string, Uint8Array>();
    const deliveries: SshDelivery[] = [];
    for (const [index, name] of names.entries()) {
      const data = randomBytes(index === 0 ? 0 : 1000 + index * 777);
      bytes.set(name, data);
      const source = join(src, `source-${index}`);
      await Deno.writeFile(source, data, { mode: 0o640 });
      await Deno.utime(source, new Date("2024-01-01T22:00:00Z"), 1704146400 + index);
      deliveries.push(await deliveryOf(source, name, index));
    }
    await Deno.remove(join(src, "source-5"));
    await Deno.writeFile(join(src, "source-6"), randomBytes(10), { append: true });

    const read = readPayload(deliveries);
    assert.ok(read !== null);
    const sent = names.filter((name) => name !== "vanishes.fits" && name !== "grows.fits");
    assert.deepEqual(read.files.map(({ delivery }) => names[delivery.index]), sent);
    for (const { delivery, data } of read.files) {
      assert.deepEqual(data, bytes.get(names[delivery.index]), names[delivery.index]);
    }
    assert.match(deliveries[5].error!.message, /vanishes|source-5/);
    assert.match(deliveries[6].error!.message, /source changed/);

    const out = await extract(read.payload);
    dirs.push(out);
    assert.deepEqual(await listFiles(out), [...sent].sort());
    for (const name of sent) {
      assert.deepEqual(await Deno.readFile(join(out, name)), bytes.get(name), name);
      const info = await Deno.lstat(join(out, name));
      assert.equal(info.mode! & 0o777, 0o640, `${name}: permission bits`);
      const index = names.indexOf(name);
      assert.equal(info.mtime!.getTime(), (1704146400 + index) * 1000, `${name}: mtime`);
    }
  } finally {
    for (const dir of dirs) await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a one-call payload for a host without tar is one file's bytes; with tar, one file left is an archive of it", async () => {
  const src = await Deno.makeTempDir({ prefix: "itx-payload-" });
  const dirs = [src];
  try {
    const data = randomBytes(5000);
    await Deno.writeFile(join(src, "a"), data, { mode: 0o640 });
    await Deno.writeFile(join(src, "b"), randomBytes(300));
    const alone = readPayload([await deliveryOf(join(src, "a"), "a.fits", 0)], false);
    assert.deepEqual(alone?.payload, data);
    assert.throws(
      () => readPayload([0, 1].map((i) => ({ index: i }) as unknown as SshDelivery), false),
      /Only one file/,
    );

    const pair = [
      await deliveryOf(join(src, "b"), "b.fits", 0),
      await deliveryOf(join(src, "a"), "a.fits", 1),
    ];
    await Deno.remove(join(src, "b"));
    const left = readPayload(pair);
    assert.deepEqual(left?.files.map(({ delivery }) => delivery.index), [1]);
    const out = await extract(left!.payload);
    dirs.push(out);
    assert.deepEqual(await listFiles(out), ["a.fits"]);
    assert.deepEqual(await Deno.readFile(join(out, "a.fits")), data);
    assert.equal((await Deno.lstat(join(out, "a.fits"))).mode! & 0o777, 0o640);

    const none = [await deliveryOf(join(src, "a"), "a.fits", 0)];
    await Deno.remove(join(src, "a"));
    assert.equal(readPayload(none), null);
    assert.ok(none[0].error !== null);
  } finally {
    for (const dir of dirs) await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a released payload's memory carries the next payload, which holds none of the bytes before", async () => {
  const src = await Deno.makeTempDir({ prefix: "itx-payload-" });
  const dirs = [src];
  try {
    const first: SshDelivery[] = [];
    for (const index of [0, 1, 2]) {
      await Deno.writeFile(join(src, `big-${index}`), randomBytes(300_000 + index));
      first.push(await deliveryOf(join(src, `big-${index}`), `big-${index}.fits`, index));
    }
    const one = readPayload(first);
    assert.ok(one !== null);
    one.release();

    const second: SshDelivery[] = [];
    const bytes = [randomBytes(1000), randomBytes(70_001)];
    for (const [index, data] of bytes.entries()) {
      await Deno.writeFile(join(src, `small-${index}`), data);
      second.push(await deliveryOf(join(src, `small-${index}`), `small-${index}.fits`, index));
    }
    const two = readPayload(second);
    assert.ok(two !== null);
    assert.equal(two.payload.buffer, one.payload.buffer, "the released memory is reused");
    const out = await extract(two.payload);
    dirs.push(out);
    assert.deepEqual(await listFiles(out), ["small-0.fits", "small-1.fits"]);
    for (const [index, data] of bytes.entries()) {
      assert.deepEqual(await Deno.readFile(join(out, `small-${index}.fits`)), data);
    }
    // Not released: the next payload gets other memory.
    const three = readPayload([await deliveryOf(join(src, "small-0"), "again.fits", 0)], false);
    assert.notEqual(three?.payload.buffer, two.payload.buffer);
    assert.deepEqual(three?.payload, bytes[0]);
  } finally {
    for (const dir of dirs) await Deno.remove(dir, { recursive: true });
  }
});
