/**
 * A daemon's config sending to a real server of each remote method: scp and rsync to a private
 * sshd, ftp (FTPS) to a private vsftpd, each logging in as an account that is not root, so the
 * modes of the destination's folders hold for it.
 *
 * @module
 */
import { join } from "node:path";
import { sshSandbox, startSshd } from "./sshd.ts";
import { ftpDaemonSandbox, startVsftpd } from "./vsftpd.ts";

/** The remote methods. */
export const REMOTE_METHODS = ["scp", "rsync", "ftp"] as const;

/** A daemon's config sending `watch` to `remote` (on this machine) through its server. */
export interface RemoteSandbox {
  /** A private folder holding the watch folder and the state folder. */
  root: string;
  watch: string;
  /** The destination folder (`remote_base_path`), owned by the login. */
  remote: string;
  config: string;
  /** Environment for the CLI: a private HOME. */
  env: Record<string, string>;
  /** The account the server writes as. */
  owner: { uid: number; gid: number };
  /** Stop the server and remove the sandbox. */
  stop(): Promise<void>;
}

/**
 * Start a server for `method` and make a sandbox sending to it (UTC night folders, no log file);
 * `values` are added to the config and win.
 */
export async function remoteSandbox(
  method: typeof REMOTE_METHODS[number],
  values: Record<string, unknown> = {},
): Promise<RemoteSandbox> {
  if (method === "ftp") {
    const server = await startVsftpd();
    const root = await Deno.makeTempDir({ prefix: "itx-ftp-" });
    const { dest, watch, config } = await ftpDaemonSandbox(server, root, values);
    await Deno.mkdir(join(root, "home"));
    return {
      root,
      watch,
      remote: dest,
      config,
      env: { HOME: join(root, "home") },
      owner: { uid: server.uid, gid: server.gid },
      async stop() {
        await server.stop();
        await Deno.remove(root, { recursive: true });
      },
    };
  }
  const sshd = await startSshd();
  const box = await sshSandbox(sshd, method, values);
  return {
    ...box,
    owner: { uid: sshd.uid, gid: sshd.gid },
    async stop() {
      await sshd.stop();
      await Deno.remove(box.root, { recursive: true });
    },
  };
}
