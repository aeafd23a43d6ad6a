/**
 * Sizes of delivered files, for the catch-up: on this machine, through a
 * real OpenSSH server (scp and rsync transports) and a real vsftpd (ftp),
 * hostile names included.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FtpTransport } from "../../../src/transfer/ftp/ftp.ts";
import { startSshd } from "../../helpers/sshd.ts";
import { FTP_USER, startVsftpd } from "../../helpers/vsftpd.ts";
import { withTransport } from "../../helpers/transports.ts";

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

Deno.test("destinationSizes over ftp: SIZE per file; missing and folders are null", async () => {
  const server = await startVsftpd({ tls: false });
  const dest = await server.makeRemoteDir();
  const transport = new FtpTransport(server.job({ remote_base_path: dest }));
  try {
    await Deno.mkdir(join(dest, "20240315"));
    const names = ["20240315/a.fits", "20240315/-n $(x) 'q' .fits", "20240315/ünï.fits"];
    for (const [i, name] of names.entries()) {
      await Deno.writeFile(join(dest, name), new Uint8Array(100 + i));
    }
    await Deno.mkdir(join(dest, "20240315", "folder.fits"));
    for (const path of [join(dest, "20240315"), ...names.map((name) => join(dest, name))]) {
      const { uid, gid } = await userIds(FTP_USER);
      await Deno.chown(path, uid, gid);
    }
    const asked = [
      ...names,
      "20240315/missing.fits",
      "20240315/folder.fits",
      "20240315/line\nbreak.fits",
    ];
    const sizes = await transport.destinationSizes(asked, new AbortController().signal);
    assert.deepEqual([...sizes.entries()], [
      [names[0], 100],
      [names[1], 101],
      [names[2], 102],
      ["20240315/missing.fits", null],
      ["20240315/folder.fits", null],
      ["20240315/line\nbreak.fits", null],
    ]);
  } finally {
    await transport.close();
    await server.stop();
  }
});

async function userIds(user: string): Promise<{ uid: number; gid: number }> {
  const ids = async (flag: string) => {
    const out = await new Deno.Command("id", { args: [flag, user] }).output();
    return Number(new TextDecoder().decode(out.stdout).trim());
  };
  return { uid: await ids("-u"), gid: await ids("-g") };
}
