/**
 * Running one test against every transfer method with fresh source and
 * destination folders. Each method is one entry of {@linkcode transportFixtures}:
 * how to make a destination it can write (visible on this machine, for the
 * checks) and a job pointed at it. A new method (FTP, say) is one more entry,
 * with its own server started in {@linkcode startDestinations}.
 *
 * @module
 */
import { lchown } from "node:fs/promises";
import { dirname, join } from "node:path";
import { testJob } from "./jobs.ts";
import type { JobConfig } from "../../src/config/types.ts";
import {
  createTransport,
  type TransferItem,
  type Transport,
} from "../../src/transfer/transport.ts";
import { jobOwner } from "../../src/transfer/temp_name.ts";
import { Ledger } from "../../src/ledger/ledger.ts";
import { randomBytes } from "./files.ts";
import { startSshd, type TestSshd } from "./sshd.ts";
import { startVsftpd, type TestVsftpd } from "./vsftpd.ts";
import { mountCorruptingView, unmountBindfs } from "./bindfs.ts";

/**
 * The methods {@linkcode withTransport} runs against one sshd. Every method,
 * ftp included, is in {@linkcode startDestinations}' fixtures.
 */
export const METHODS = ["local", "scp", "rsync"] as const;
export type Method = typeof METHODS[number] | "ftp";

/** How to run one method's transport against a real destination of its kind. */
export interface TransportFixture {
  method: Method;
  /** A fresh destination folder on this machine, writable by the transport's account. */
  makeDestination(): Promise<string>;
  /** A job of this method sending to `dst`, with `overrides`. */
  job(dst: string, overrides: Partial<JobConfig>): JobConfig;
  /** Make `path` (at the destination) owned by the account the transport writes as. */
  own(path: string): Promise<void>;
  /** Destinations that damage copies on request (fixtures of {@linkcode startDestinations}). */
  corrupting?: CorruptingDestination;
  /** Destinations the method cannot carry (they must fail for good, saying why). */
  cannotCarry?: RegExp;
}

/**
 * Where a method's copies can be damaged: its server's `tar` and SFTP server
 * for scp and rsync, a FUSE view that changes what is written for local and
 * ftp (see `corrupting_fs.py`).
 */
export interface CorruptingDestination {
  /** A fresh destination folder, as {@linkcode TransportFixture.makeDestination}. */
  makeDestination(): Promise<string>;
  /** While on, every copy written into `dst` has its first byte changed. */
  corrupt(dst: string, on: boolean): Promise<void>;
}

/** What a test gets from {@linkcode withTransport}. */
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
  /** See {@linkcode TransportFixture.own}. */
  own(path: string): Promise<void>;
  fixture: TransportFixture;
}

/** A local job with the schema defaults, pointed at `dst`. */
function localJob(dst: string, overrides: Partial<JobConfig>): JobConfig {
  return testJob("local-test", {
    watch_path: "/nonexistent-watch",
    remote_base_path: dst,
    transfer_method: "local",
    verify_transfer: "size",
  }, overrides);
}

/** The servers the fixtures send to; stop them when done. */
export interface Destinations {
  sshd: TestSshd;
  vsftpd: TestVsftpd;
  fixtures: TransportFixture[];
  stop(): Promise<void>;
}

/**
 * Start the servers every method needs (one sshd, whose SFTP server can be
 * made to corrupt what it receives, and one vsftpd with TLS) and return the
 * fixtures.
 */
export async function startDestinations(): Promise<Destinations> {
  const dir = await Deno.makeTempDir({ prefix: "itx-sftp-" });
  await Deno.chmod(dir, 0o755);
  const flag = join(dir, "corrupt");
  const wrapper = join(dir, "sftp-server");
  await Deno.writeTextFile(wrapper, sftpWrapper(flag));
  await Deno.chmod(wrapper, 0o755);
  const bin = join(dir, "bin");
  await Deno.mkdir(bin);
  await Deno.chmod(bin, 0o755);
  await Deno.writeTextFile(join(bin, "tar"), tarWrapper(flag));
  await Deno.chmod(join(bin, "tar"), 0o755);
  const sshd = await startSshd({
    sftpServer: wrapper,
    sessionEnv: { PATH: `${bin}:/usr/local/bin:/usr/bin:/bin` },
  });
  const vsftpd = await startVsftpd();
  // Local and ftp copies are written into a FUSE view that damages them on request.
  const view = join(dir, "view");
  const disk = join(dir, "disk");
  await Deno.mkdir(disk, { mode: 0o755 });
  await Deno.chmod(disk, 0o755);
  const viewServer = await mountCorruptingView(disk, view, flag);
  const corruptInView = async (dst: string, on: boolean) => {
    if (on) await Deno.writeTextFile(flag, dst);
    else await Deno.remove(flag);
  };
  const [local, scp, rsync] = transportFixtures(sshd, flag);
  local.corrupting = {
    makeDestination: () => Deno.makeTempDir({ dir: view, prefix: "itx-dst-" }),
    corrupt: corruptInView,
  };
  const ftp = ftpFixture(vsftpd);
  ftp.corrupting = {
    async makeDestination() {
      const path = await Deno.makeTempDir({ dir: view, prefix: "itx-ftpdst-" });
      await Deno.chown(path, vsftpd.uid, vsftpd.gid);
      return path;
    },
    corrupt: corruptInView,
  };
  return {
    sshd,
    vsftpd,
    fixtures: [local, scp, rsync, ftp],
    async stop() {
      await sshd.stop();
      await vsftpd.stop();
      await unmountBindfs(view);
      await viewServer.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * OpenSSH's sftp-server; while `flag` exists (it holds a folder), every file
 * in an upload folder below that folder gets its first byte changed when the
 * session ends, before scp returns.
 */
function sftpWrapper(flag: string): string {
  return [
    "#!/bin/sh",
    '/usr/lib/openssh/sftp-server "$@"',
    "status=$?",
    `if [ -e '${flag}' ]; then`,
    `  find "$(cat '${flag}')" -path '*/.incoming-*/*' -type f -exec sh -c ` +
    `'printf X | dd of="$1" bs=1 count=1 conv=notrunc 2>/dev/null' sh {} \\;`,
    "fi",
    "exit $status",
    "",
  ].join("\n");
}

/**
 * `tar` for the sessions of that sshd; while `flag` exists, the files it
 * unpacks into an upload folder below the flagged folder (the copies of a
 * batch sent in one call, see `ssh/one_call.ts`) have their first byte changed.
 */
function tarWrapper(flag: string): string {
  return [
    "#!/bin/sh",
    '/usr/bin/tar "$@" || exit',
    `if [ -e '${flag}' ]; then`,
    `  case $PWD in "$(cat '${flag}')"/*/.incoming-*)`,
    "    find . -type f -exec sh -c " +
    `'printf X | dd of="$1" bs=1 count=1 conv=notrunc 2>/dev/null' sh {} \\; ;;`,
    "  esac",
    "fi",
    "",
  ].join("\n");
}

/** One fixture per method: local into a folder here, scp and rsync through `sshd`. */
export function transportFixtures(sshd: TestSshd, corruptFlag?: string): TransportFixture[] {
  const sshFixture = (method: "scp" | "rsync"): TransportFixture => ({
    method,
    makeDestination: () => sshd.makeRemoteDir(),
    job: (dst, overrides) =>
      sshd.job({ transfer_method: method, remote_base_path: dst, ...overrides }),
    own: (path) => lchown(path, sshd.uid, sshd.gid),
  });
  const scp = sshFixture("scp");
  const rsync = sshFixture("rsync");
  if (corruptFlag !== undefined) {
    // Both methods send a small file in one call, whose copy the server's `tar` writes.
    for (const fixture of [scp, rsync]) {
      fixture.corrupting = {
        makeDestination: fixture.makeDestination,
        async corrupt(dst, on) {
          if (on) await Deno.writeTextFile(corruptFlag, dst);
          else await Deno.remove(corruptFlag);
        },
      };
    }
  }
  return [
    {
      method: "local",
      makeDestination: () => Deno.makeTempDir({ prefix: "itx-dst-" }),
      job: localJob,
      own: () => Promise.resolve(),
    },
    scp,
    rsync,
  ];
}

/** The ftp method against `vsftpd` (FTPS, the certificate trusted through `ftp_ca_file`). */
export function ftpFixture(vsftpd: TestVsftpd): TransportFixture {
  return {
    method: "ftp",
    makeDestination: () => vsftpd.makeRemoteDir(),
    job: (dst, overrides) => vsftpd.job({ remote_base_path: dst, ...overrides }),
    own: (path) => lchown(path, vsftpd.uid, vsftpd.gid),
    // The FTP control connection ends a command at a line break.
    cannotCarry: /[\r\n]/,
  };
}

/** Run `fn` with fresh folders and a new transport of `fixture` (closed and removed after). */
export async function withFixture(
  fixture: TransportFixture,
  overrides: Partial<JobConfig>,
  fn: (ctx: TransportCase) => Promise<void>,
): Promise<void> {
  const src = await Deno.makeTempDir({ prefix: "itx-src-" });
  const runtime = await Deno.makeTempDir({ prefix: "itx-rt-" });
  const dst = await fixture.makeDestination();
  const job = fixture.job(dst, overrides);
  const transport = createTransport(job, runtime);
  try {
    await fn({
      method: fixture.method,
      src,
      dst,
      job,
      transport,
      owner: jobOwner(job),
      own: (path) => fixture.own(path),
      fixture,
    });
  } finally {
    await transport.close();
    for (const path of [src, runtime, dst]) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
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
  const fixture = transportFixtures(sshd).find((candidate) => candidate.method === method)!;
  await withFixture(fixture, overrides, fn);
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

/**
 * One install of the daemon sending `job` (acquisition PCs cloned from one image): its own ledger
 * under `root/pc/state` and runtime folder `root/pc/run`, and its transport.
 */
export async function openInstall(
  job: JobConfig,
  root: string,
  pc: string,
): Promise<{ ledger: Ledger; transport: Transport }> {
  const runtime = join(root, pc, "run");
  await Deno.mkdir(runtime, { recursive: true });
  const ledger = Ledger.open(join(root, pc, "state"));
  return { ledger, transport: createTransport(job, runtime, ledger) };
}

/**
 * Overwrite the ledger in `stateDir` (and its journal) with random bytes: the next
 * `Ledger.open` sets it aside as damaged and starts a new one. (An install's is
 * `root/pc/state`, see {@linkcode openInstall}.)
 */
export function damageLedger(stateDir: string): void {
  for (const entry of Deno.readDirSync(stateDir)) {
    if (!entry.name.startsWith("ledger")) continue;
    Deno.writeFileSync(join(stateDir, entry.name), randomBytes(4096));
  }
}

/**
 * Make upload folder `name` in `night` holding a copy named `file`, owned by `owner` (the server's
 * login), with `mode`, its copy and itself written `at` (`null`: now).
 */
export async function plantUploadFolder(
  night: string,
  name: string,
  at: Date | null,
  owner: { uid: number; gid: number },
  mode: number,
  fileName = "frame.fits",
): Promise<string> {
  const folder = join(night, name);
  await Deno.mkdir(folder, { recursive: true, mode });
  await Deno.chmod(folder, mode);
  const file = join(folder, fileName);
  await Deno.writeFile(file, randomBytes(2048));
  for (const path of [night, folder, file]) await Deno.chown(path, owner.uid, owner.gid);
  if (at !== null) {
    await Deno.utime(file, at, at);
    await Deno.utime(folder, at, at);
  }
  return folder;
}
