/**
 * Over scp and rsync, a destination name the remote file system never takes fails that file for
 * good, said as a name too long for the destination's file system with what to do; a file of the
 * same batch (received in one call, by tar) is not failed for it: it goes again, and arrives.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createTransport } from "../../../src/transfer/transport.ts";
import { classifyText } from "../../../src/transfer/classify.ts";
import { randomBytes } from "../../helpers/files.ts";
import { makeItem } from "../../helpers/transports.ts";
import { startSshd } from "../../helpers/sshd.ts";

const never = new AbortController().signal;
const TOO_LONG =
  /: a destination name or path is too long for the destination's file system \(File name too long: names may have 255 bytes, paths 4095 on Linux\); use shorter file or folder names, or a shorter remote_base_path/;

for (const method of ["scp", "rsync"] as const) {
  Deno.test(`${method}: a destination name too long for the remote file system fails that file for good; the other of its batch arrives`, async () => {
    const sshd = await startSshd();
    const src = await Deno.makeTempDir({ prefix: "itx-long-src-" });
    const runtime = await Deno.makeTempDir({ prefix: "itx-long-rt-" });
    try {
      const dst = await sshd.makeRemoteDir();
      const data = randomBytes(3000);
      // Sources cannot have such a name; a destination whose file system takes less may.
      const long = await makeItem(src, `20240315/${"n".repeat(245)}.fits`, data);
      const short = await makeItem(src, "20240315/short.fits", data);
      const transport = createTransport(
        sshd.job({ transfer_method: method, remote_base_path: dst }),
        runtime,
      );
      try {
        const tooLong = { ...long, destination: `20240315/${"m".repeat(300)}.fits` };
        const [failed, other] = await transport.send([tooLong, short], never);
        assert.equal(failed.error?.kind, "fatal", failed.error?.message);
        assert.match(failed.error!.message, TOO_LONG);
        // Not failed for good for another's name: it goes again, and arrives.
        if (other.error !== null) {
          assert.notEqual(other.error.kind, "fatal", other.error.message);
          assert.doesNotMatch(other.error.message, TOO_LONG);
          assert.equal((await transport.send([short], never))[0].error, null);
        }
        assert.deepEqual(await Deno.readFile(join(dst, "20240315", "short.fits")), data);
      } finally {
        await transport.close();
      }
    } finally {
      await Deno.remove(src, { recursive: true });
      await Deno.remove(runtime, { recursive: true });
      await sshd.stop();
    }
  });
}

Deno.test("rsync's own upload: a destination name too long for the file system is fatal, said plainly", () => {
  const said = classifyText(
    'rsync: [Receiver] ERROR: cannot stat destination "/d/20240315/.incoming-x/' +
      `${"m".repeat(300)}.fits": File name too long (36)\n` +
      "rsync error: errors selecting input/output files, dirs (code 3) at main.c(789) [Receiver=3.5.0]",
    { host: "freya", destination: "obs@freya", port: null },
    3,
    "rsync",
  );
  assert.equal(said.kind, "fatal");
  assert.match(`: ${said.reason}`, TOO_LONG);
});
