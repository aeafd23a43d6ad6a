/**
 * A small tmpfs for tests (Linux, root): a destination that fills up, and
 * grows again with a remount.
 *
 * @module
 */
import { captureLogs, type LogCapture } from "./log_capture.ts";

async function mountCommand(args: string[]): Promise<void> {
  const out = await new Deno.Command(args[0], { args: args.slice(1), stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Options of {@linkcode withTmpfs}. */
export interface TmpfsOptions {
  /** Owner of the file system's root folder. */
  uid?: number;
  gid?: number;
  /** Mounted read-only. */
  readOnly?: boolean;
  /** The most files and folders it holds, its root folder counted (full with room left). */
  inodes?: number;
}

/**
 * Mount a tmpfs of `size` (e.g. `"30m"`) at `path` (created if needed), run
 * `fn`, and unmount it afterwards, whatever happens.
 */
export async function withTmpfs<T>(
  path: string,
  size: string,
  fn: (path: string) => Promise<T>,
  options: TmpfsOptions = {},
): Promise<T> {
  await Deno.mkdir(path, { recursive: true });
  const owner = options.uid === undefined ? "" : `,uid=${options.uid},gid=${options.gid}`;
  await mountCommand([
    "mount",
    "-t",
    "tmpfs",
    "-o",
    `size=${size},mode=0755${owner}${options.readOnly ? ",ro" : ""}${
      options.inodes === undefined ? "" : `,nr_inodes=${options.inodes}`
    }`,
    "tmpfs",
    path,
  ]);
  try {
    return await fn(path);
  } finally {
    // Lazy: a process that still has a file open there must not keep the mount.
    await mountCommand(["umount", "-l", path]);
  }
}

/**
 * Mount the folder `source` at `path` too (`mount --bind`: the same disk, so the same device),
 * run `fn`, and unmount it afterwards, whatever happens.
 */
export async function withBindMount<T>(source: string, path: string, fn: () => Promise<T>) {
  await Deno.mkdir(source, { recursive: true });
  await Deno.mkdir(path, { recursive: true });
  await mountCommand(["mount", "--bind", source, path]);
  try {
    return await fn();
  } finally {
    await mountCommand(["umount", "-l", path]);
  }
}

/** What {@linkcode withTmpfsRun} gives its function besides the file system. */
export interface TmpfsRun {
  /** A fresh runtime folder for the transports. */
  runtime: string;
  /** The product's log records meanwhile. */
  logs: LogCapture;
}

/**
 * {@linkcode withTmpfs}, with a fresh runtime folder and the product's log records captured
 * meanwhile (an in-process run of a job into a destination that fills up); afterwards the capture
 * is stopped and the folder removed, whatever happens.
 */
export async function withTmpfsRun<T>(
  path: string,
  size: string,
  fn: (run: TmpfsRun) => Promise<T>,
  options: TmpfsOptions = {},
): Promise<T> {
  const runtime = await Deno.makeTempDir({ prefix: "itx-tmpfs-rt-" });
  const logs = await captureLogs();
  try {
    return await withTmpfs(path, size, () => fn({ runtime, logs }), options);
  } finally {
    await logs.stop();
    await Deno.remove(runtime, { recursive: true });
  }
}

/**
 * Change the size of the tmpfs at `path` (growing it frees space for writers), and the files it
 * holds where `inodes` is given.
 */
export async function resizeTmpfs(path: string, size: string, inodes?: number): Promise<void> {
  const files = inodes === undefined ? "" : `,nr_inodes=${inodes}`;
  await mountCommand(["mount", "-o", `remount,size=${size}${files}`, path]);
}

/** Mount the tmpfs at `path` read-only, or (`readOnly: false`) read-write again. */
export async function remountTmpfs(path: string, readOnly: boolean): Promise<void> {
  await mountCommand(["mount", "-o", `remount,${readOnly ? "ro" : "rw"}`, path]);
}

/**
 * Make a small ext4 file system of `mib` MiB in an image file, mount it (loop) at `path`, owned by
 * `options.uid`, run `fn`, and unmount and remove it afterwards. Unlike tmpfs, a full ext4 refuses
 * a new folder (`mkdir` needs a block) while an empty file can still be created.
 */
export async function withExt4<T>(
  path: string,
  mib: number,
  fn: (path: string) => Promise<T>,
  options: TmpfsOptions = {},
): Promise<T> {
  const image = `${path}.img`;
  await Deno.mkdir(path, { recursive: true });
  await Deno.writeFile(image, new Uint8Array());
  await Deno.truncate(image, mib * 1024 * 1024);
  try {
    await mountCommand(["mkfs.ext4", "-q", "-F", image]);
    await mountCommand(["mount", "-o", "loop", image, path]);
    try {
      if (options.uid !== undefined) await Deno.chown(path, options.uid, options.gid ?? null);
      return await fn(path);
    } finally {
      await mountCommand(["umount", "-l", path]);
    }
  } finally {
    await Deno.remove(image);
  }
}
