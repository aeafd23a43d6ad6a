/**
 * Large files with the scp transport: streamed into the remote receiver where
 * the server has python3, sent with scp where it has not, against a real
 * OpenSSH server. The server's PATH starts with a folder holding a `python3`
 * wrapper that records each call and can act as if python3 were missing, or
 * corrupt what it receives.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import type { JobConfig } from "../src/config/types.ts";
import { createTransport } from "../src/transfer/factory.ts";
import { isTempName } from "../src/transfer/temp_name.ts";
import type { TransferItem } from "../src/transfer/transport.ts";
import { listFiles, listFolders, randomBytes, sha256OfFile } from "./helpers/files.ts";
import { startSshd } from "./helpers/sshd.ts";

const MiB = 1024 * 1024;
const never = new AbortController().signal;

/**
 * `python3` for the server's sessions: logs `probe` or `receiver` per call;
 * exits 127 while `absent` exists; flips the first byte of the input while
 * `corrupt` exists; else runs the real python3.
 */
function wrapper(shims: string, python: string): string {
  return [
    "#!/bin/sh",
    `d='${shims}'`,
    `if [ "$2" = 'import hashlib' ]; then echo probe >>"$d/calls"; else echo receiver >>"$d/calls"; fi`,
    `[ -e "$d/absent" ] && { echo 'sh: 1: python3: not found' >&2; exit 127; }`,
    `if [ -e "$d/corrupt" ]; then { printf X; tail -c +2; } | '${python}' "$@"; exit $?; fi`,
    `exec '${python}' "$@"`,
    "",
  ].join("\n");
}

/** The system's PATH for the server's sessions (not this user's: root may have a pyenv shim). */
const SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin";

/** Where `program` is on {@linkcode SYSTEM_PATH}; fails naming the package when missing. */
async function which(program: string): Promise<string> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `command -v ${program}`],
    env: { PATH: SYSTEM_PATH },
  }).output();
  const path = new TextDecoder().decode(out.stdout).trim();
  assert.ok(out.success && path, `${program} is needed on this machine (apt-get install python3)`);
  return path;
}

async function makeItem(root: string, destination: string, size: number): Promise<TransferItem> {
  const source = join(root, ...destination.split("/"));
  await Deno.mkdir(dirname(source), { recursive: true });
  await Deno.writeFile(source, randomBytes(size));
  const info = await Deno.stat(source);
  return { source, destination, size: info.size, mtimeMs: info.mtime!.getTime() };
}

/** Every item arrived byte-exact, and nothing else (no upload folder) is left. */
async function assertDelivered(base: string, items: TransferItem[]): Promise<void> {
  assert.deepEqual(await listFiles(base), items.map((item) => item.destination).sort());
  assert.deepEqual((await listFolders(base)).filter((rel) => rel.split("/").some(isTempName)), []);
  for (const item of items) {
    const copy = join(base, ...item.destination.split("/"));
    assert.equal(await sha256OfFile(copy), await sha256OfFile(item.source), item.destination);
  }
}

Deno.test("scp transport streams large files where the server has python3", async (t) => {
  const shims = await Deno.makeTempDir({ prefix: "itx-shims-" });
  await Deno.chmod(shims, 0o777);
  await Deno.writeTextFile(join(shims, "python3"), wrapper(shims, await which("python3")));
  await Deno.chmod(join(shims, "python3"), 0o755);
  const sshd = await startSshd({ sessionEnv: { PATH: `${shims}:${SYSTEM_PATH}` } });
  const calls = async () => {
    const text = await Deno.readTextFile(join(shims, "calls")).catch(() => "");
    await Deno.remove(join(shims, "calls")).catch(() => {});
    return text.split("\n").filter((line) => line !== "");
  };
  const flag = (name: string, on: boolean) =>
    on ? Deno.writeTextFile(join(shims, name), "") : Deno.remove(join(shims, name));

  async function withTransport(
    overrides: Partial<JobConfig>,
    fn: (
      ctx: {
        src: string;
        dst: string;
        send: (items: TransferItem[]) => Promise<(string | null)[]>;
      },
    ) => Promise<void>,
  ): Promise<void> {
    const src = await Deno.makeTempDir({ prefix: "itx-src-" });
    const runtime = await Deno.makeTempDir({ prefix: "itx-rt-" });
    const dst = await sshd.makeRemoteDir();
    const transport = createTransport(
      sshd.job({ transfer_method: "scp", remote_base_path: dst, ...overrides }),
      runtime,
    );
    const send = async (items: TransferItem[]) =>
      (await transport.send(items, never)).map((outcome) => outcome.error?.message ?? null);
    try {
      await fn({ src, dst, send });
    } finally {
      await transport.close();
      await Deno.remove(src, { recursive: true });
      await Deno.remove(runtime, { recursive: true });
    }
  }

  try {
    await t.step("large files (16 MiB and more) stream, small ones go by scp", async () => {
      await withTransport(
        { verify_transfer: "checksum", remote_sync: true },
        async ({ src, dst, send }) => {
          const items = [
            await makeItem(src, "20240401/exactly-16MiB.fits", 16 * MiB),
            await makeItem(src, "20240401/new\nline $(touch canary) 'q'.fits", 16 * MiB + 1),
            await makeItem(src, "20240402/-dash caf\u00e9.fits", 40 * MiB + 7),
            await makeItem(src, "20240401/small.fits", 16 * MiB - 1),
            await makeItem(src, "20240402/tiny.fits", 10),
          ];
          assert.deepEqual(await send(items), items.map(() => null));
          await assertDelivered(dst, items);
          // One probe for the session, then one receiver per large file.
          assert.deepEqual((await calls()).sort(), ["probe", "receiver", "receiver", "receiver"]);
          assert.deepEqual(await send([]), []);
          const again = [await makeItem(src, "20240403/next.fits", 20 * MiB)];
          assert.deepEqual(await send(again), [null]);
          await assertDelivered(join(dst, "20240403"), [{
            ...again[0],
            destination: "next.fits",
          }]);
          assert.deepEqual(await calls(), ["receiver"], "the probe's answer is kept");
        },
      );
    });

    await t.step("without python3 on the server, large files go by scp, verified", async () => {
      await flag("absent", true);
      try {
        for (const verify of ["checksum", "size"] as const) {
          await withTransport({ verify_transfer: verify }, async ({ src, dst, send }) => {
            const items = [
              await makeItem(src, "20240405/a.fits", 24 * MiB),
              await makeItem(src, "20240405/b.fits", 17 * MiB),
            ];
            assert.deepEqual(await send(items), [null, null]);
            await assertDelivered(dst, items);
            assert.deepEqual(await calls(), ["probe"], "no receiver runs");
            assert.deepEqual(await send([await makeItem(src, "20240405/c.fits", 17 * MiB)]), [
              null,
            ]);
            assert.deepEqual(await calls(), [], "the server is not probed again");
          });
        }
      } finally {
        await flag("absent", false);
      }
    });

    await t.step(
      "python3 gone after the probe: that file fails, the next batch uses scp",
      async () => {
        await withTransport({ verify_transfer: "checksum" }, async ({ src, dst, send }) => {
          const first = await makeItem(src, "20240406/first.fits", 17 * MiB);
          assert.deepEqual(await send([first]), [null]);
          await flag("absent", true);
          try {
            const second = await makeItem(src, "20240406/second.fits", 17 * MiB);
            const [error] = await send([second]);
            assert.match(error ?? "", /Cannot send .*second\.fits/);
            assert.deepEqual(await listFiles(dst), ["20240406/first.fits"]);
            assert.deepEqual(await send([second]), [null]);
            await assertDelivered(dst, [first, second]);
            assert.deepEqual(await calls(), ["probe", "receiver", "receiver", "probe"]);
          } finally {
            await flag("absent", false);
          }
        });
      },
    );

    await t.step("a copy whose SHA-256 differs is removed and the file fails", async () => {
      await withTransport({ verify_transfer: "checksum" }, async ({ src, dst, send }) => {
        const item = await makeItem(src, "20240407/bad.fits", 17 * MiB);
        await flag("corrupt", true);
        try {
          const [error] = await send([item]);
          assert.match(error ?? "", /SHA-256 of the copy differs from the source/);
          assert.deepEqual(await listFiles(dst), [], "no final file and no copy left");
        } finally {
          await flag("corrupt", false);
        }
        assert.deepEqual(await send([item]), [null]);
        await assertDelivered(dst, [item]);
      });
    });

    await t.step(
      "with verify_transfer: size a corrupted stream of the right size passes",
      async () => {
        // The contract of `size`: only the length is compared (documents what checksum adds).
        await withTransport({ verify_transfer: "size" }, async ({ src, dst, send }) => {
          const item = await makeItem(src, "20240408/sized.fits", 17 * MiB);
          await flag("corrupt", true);
          try {
            assert.deepEqual(await send([item]), [null]);
          } finally {
            await flag("corrupt", false);
          }
          const copy = await Deno.readFile(join(dst, "20240408", "sized.fits"));
          assert.equal(copy.length, item.size);
          assert.equal(copy[0], "X".charCodeAt(0));
        });
      },
    );
  } finally {
    await sshd.stop();
    await Deno.remove(shims, { recursive: true });
  }
});
