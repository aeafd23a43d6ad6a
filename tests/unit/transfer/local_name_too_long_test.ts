/**
 * A `local` destination path that can never be made (a name longer than the file system takes,
 * or a path past PATH_MAX) fails that file for good, said as a name or path too long for the
 * destination's file system with its length, the limit and what to do; a 255-byte name still
 * arrives.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { testJob } from "../../helpers/jobs.ts";
import { randomBytes } from "../../helpers/files.ts";
import { itemFor, makeItem } from "../../helpers/transports.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";

const never = new AbortController().signal;

function transportTo(dest: string): LocalTransport {
  return new LocalTransport(
    testJob("long", {
      watch_path: "/unused",
      remote_base_path: dest,
      transfer_method: "local",
      verify_transfer: "checksum",
    }),
  );
}

Deno.test("local: a destination name or path too long for the file system fails for good, said plainly; a 255-byte name arrives", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-local-long-" });
  const transports: LocalTransport[] = [];
  try {
    const src = join(root, "src");
    // A base folder of about 3,900 bytes: a night folder and a 250-byte name go past 4096.
    const deep = join(root, ...Array.from({ length: 19 }, (_, i) => `${i}`.padEnd(200, "d")));
    await Deno.mkdir(deep, { recursive: true });
    const name = (bytes: number) => `${"n".repeat(bytes - 5)}.fits`;
    const data = randomBytes(3000);
    const pathItem = await makeItem(src, `20240315/${name(250)}`, data);
    const deepTransport = transportTo(deep);
    transports.push(deepTransport);
    const [tooDeep] = await deepTransport.send([pathItem], never);
    const total = new TextEncoder().encode(join(deep, pathItem.destination)).length;
    assert.ok(total > 4096, `${total}`);
    assert.equal(tooDeep.error?.kind, "fatal", tooDeep.error?.message);
    assert.match(
      tooDeep.error!.message,
      new RegExp(
        `the destination path ${join(deep, "20240315")}/n+\\.fits is too long for the ` +
          `destination's file system: ${total} bytes, where paths may have 4095 at most; use ` +
          "shorter file or folder names, or a shorter remote_base_path",
      ),
    );
    assert.doesNotMatch(tooDeep.error!.message, /os error|image-transfer-partial/);

    // So is one whose night folder cannot be made: its path is past PATH_MAX already.
    const deeper = join(deep, "x".repeat(4090 - new TextEncoder().encode(deep).length));
    await Deno.mkdir(deeper);
    const folderTransport = transportTo(deeper);
    transports.push(folderTransport);
    const [noFolder] = await folderTransport.send([pathItem], never);
    assert.equal(noFolder.error?.kind, "fatal", noFolder.error?.message);
    assert.match(
      noFolder.error!.message,
      /: the destination path \/.* is too long for the destination's file system: \d+ bytes, where paths may have 4095 at most; use shorter/,
    );

    // A name the file system does not take (sources cannot have one: a destination may).
    const dest = join(root, "dest");
    const transport = transportTo(dest);
    transports.push(transport);
    const source = await makeItem(src, `20240315/${name(200)}`, data);
    const [tooLong] = await transport.send(
      [{ ...source, destination: `20240315/${name(300)}` }],
      never,
    );
    assert.equal(tooLong.error?.kind, "fatal", tooLong.error?.message);
    assert.match(
      tooLong.error!.message,
      /: the destination name n+\.fits is too long for the destination's file system: 300 bytes, where names may have 255 at most; use shorter file or folder names, or a shorter remote_base_path$/,
    );

    // 255 bytes: its temporary name is shortened, and it arrives.
    const longest = await makeItem(src, `20240315/${name(255)}`, data);
    const [arrived] = await transport.send([longest], never);
    assert.equal(arrived.error, null, arrived.error?.message);
    assert.deepEqual(await Deno.readFile(join(dest, longest.destination)), data);
    // And so does one whose source is there under a name as long.
    const again = await itemFor(longest.source, `20240316/${name(255)}`);
    assert.equal((await transport.send([again], never))[0].error, null);
  } finally {
    for (const transport of transports) await transport.close();
    await Deno.remove(root, { recursive: true });
  }
});
