/**
 * Running one test against every transfer method (local, scp, rsync) with
 * fresh source and destination folders; the SSH ones against a test sshd.
 *
 * @module
 */
import { lchown } from "node:fs/promises";
import { dirname, join } from "node:path";
import { jobSchema } from "../../src/config/schema.ts";
import type { JobConfig } from "../../src/config/types.ts";
import { createTransport } from "../../src/transfer/factory.ts";
import { jobOwner } from "../../src/transfer/temp_name.ts";
import type { TransferItem, Transport } from "../../src/transfer/transport.ts";
import type { TestSshd } from "./sshd.ts";

/** The transfer methods. */
export const METHODS = ["local", "scp", "rsync"] as const;
export type Method = typeof METHODS[number];

/** What a test gets from {@linkcode withEachTransport}. */
export interface TransportCase {
  method: Method;
  /** Local folder for sources. */
  src: string;
  /** The destination folder (`remote_base_path`), on this machine for every method. */
  dst: string;
  job: JobConfig;
  transport: Transport;
  /** The owner id in this daemon's temporary names (see `jobOwner`). */
  owner: string;
  /**
   * Make `path` (at the destination) owned by the account the transport
   * writes as: the sshd's login user for scp and rsync, root for local.
   */
  own(path: string): Promise<void>;
}

/** A local job with the schema defaults, pointed at `dst`. */
function localJob(dst: string, overrides: Partial<JobConfig>): JobConfig {
  const input = jobSchema.parse({
    watch_path: "/nonexistent-watch",
    remote_base_path: dst,
    transfer_method: "local",
  });
  return { ...input, name: "local-test", verify_transfer: "size", ...overrides };
}

/**
 * Run `fn` for `method` with fresh folders and a new transport (closed and
 * removed after).
 */
export async function withTransport(
  method: Method,
  sshd: TestSshd,
  overrides: Partial<JobConfig>,
  fn: (ctx: TransportCase) => Promise<void>,
): Promise<void> {
  const src = await Deno.makeTempDir({ prefix: "itx-src-" });
  const runtime = await Deno.makeTempDir({ prefix: "itx-rt-" });
  const dst = method === "local"
    ? await Deno.makeTempDir({ prefix: "itx-dst-" })
    : await sshd.makeRemoteDir();
  const job = method === "local"
    ? localJob(dst, overrides)
    : sshd.job({ transfer_method: method, remote_base_path: dst, ...overrides });
  const transport = createTransport(job, runtime);
  const own = async (path: string) => {
    if (method !== "local") await lchown(path, sshd.uid, sshd.gid);
  };
  try {
    await fn({ method, src, dst, job, transport, owner: jobOwner(job), own });
  } finally {
    await transport.close();
    for (const path of [src, runtime, dst]) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
}

/** Write a source file (mode `mode`) and return the item that sends it to `destination`. */
export async function makeItem(
  src: string,
  destination: string,
  data: Uint8Array,
  mode = 0o644,
): Promise<TransferItem> {
  const source = join(src, ...destination.split("/"));
  await Deno.mkdir(dirname(source), { recursive: true });
  await Deno.writeFile(source, data);
  await Deno.chmod(source, mode);
  return await itemFor(source, destination);
}

/** The item that sends the existing file `source` to `destination`. */
export async function itemFor(source: string, destination: string): Promise<TransferItem> {
  const info = await Deno.stat(source);
  return { source, destination, size: info.size, mtimeMs: info.mtime!.getTime() };
}
