/**
 * Sizes of delivered files, for the catch-up: on this machine and through a
 * real OpenSSH server (scp and rsync transports), hostile names included.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startSshd } from "./helpers/sshd.ts";
import { withTransport } from "./helpers/transports.ts";

const NAMES = ["20240315/a.fits", "20240315/-n $(x) 'q'\n.fits", "20240315/ünï.fits"];

Deno.test("destinationSizes: regular files by size; missing, links and folders are null", async (t) => {
  const sshd = await startSshd();
  try {
    for (const method of ["local", "scp", "rsync"] as const) {
      await t.step(method, async () => {
        await withTransport(method, sshd, {}, async ({ dst, transport, own }) => {
          await Deno.mkdir(join(dst, "20240315"));
          await own(join(dst, "20240315"));
          for (const [i, name] of NAMES.entries()) {
            await Deno.writeFile(join(dst, name), new Uint8Array(100 + i));
          }
          await Deno.mkdir(join(dst, "20240315", "folder.fits"));
          await Deno.symlink(join(dst, NAMES[0]), join(dst, "20240315", "link.fits"));
          const asked = [
            ...NAMES,
            "20240315/missing.fits",
            "20240315/folder.fits",
            "20240315/link.fits",
          ];
          const sizes = await transport.destinationSizes!(asked, new AbortController().signal);
          assert.deepEqual([...sizes.entries()], [
            [NAMES[0], 100],
            [NAMES[1], 101],
            [NAMES[2], 102],
            ["20240315/missing.fits", null],
            ["20240315/folder.fits", null],
            ["20240315/link.fits", null],
          ]);
        });
      });
    }
  } finally {
    await sshd.stop();
  }
});
