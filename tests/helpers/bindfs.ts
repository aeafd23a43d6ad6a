/**
 * FUSE views of a folder for tests (Linux, `/dev/fuse`): `bindfs`, where files
 * written into the folder itself raise no event on the view, as files written
 * by another machine raise none on an NFS or SMB mount; and a view that
 * damages the copies written into it, for the checks that must catch that.
 *
 * @module
 */

async function run(program: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(program, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${program} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/**
 * Mount a bindfs view of `folder` at `mountPoint` (created if needed); `readOnly`: a share
 * mounted read-only (every change through the view fails with EROFS).
 */
export async function mountBindfs(
  folder: string,
  mountPoint: string,
  { readOnly = false }: { readOnly?: boolean } = {},
): Promise<void> {
  await Deno.mkdir(mountPoint, { recursive: true });
  await run("bindfs", [...(readOnly ? ["-r"] : []), folder, mountPoint]);
}

/**
 * Mount a bindfs view of `folder` at `mountPoint` served by a process of the
 * caller's (`bindfs -f`): killing it leaves a mount whose every access fails
 * with ENOTCONN, as a share whose client died. Resolves once it is mounted.
 */
export function mountBindfsProcess(
  folder: string,
  mountPoint: string,
): Promise<Deno.ChildProcess> {
  return serveView("bindfs", ["-f", folder, mountPoint], mountPoint);
}

/**
 * Mount `tests/fixtures/programs/corrupting_fs.py`'s view of `folder` at
 * `mountPoint`, open to every account: while the file `flag` holds a folder
 * below `mountPoint`, what is written into a file there has its first byte
 * changed on the way to the disk (a destination that stores other bytes than
 * it was given). Resolves once it is mounted; unmount with
 * {@linkcode unmountBindfs}, then wait for the process.
 */
export function mountCorruptingView(
  folder: string,
  mountPoint: string,
  flag: string,
): Promise<Deno.ChildProcess> {
  const program = new URL("../fixtures/programs/corrupting_fs.py", import.meta.url).pathname;
  return serveView("/usr/bin/python3", [program, folder, mountPoint, flag], mountPoint);
}

/**
 * Mount `tests/fixtures/programs/holding_fs.py`'s view of `folder` at
 * `mountPoint`: while the file `hold` exists, every write into a file of the
 * view waits (the file is created, its bytes wait), so a test can act in the
 * middle of a copy into it. Resolves once it is mounted; unmount with
 * {@linkcode unmountBindfs}, then wait for the process.
 */
export function mountHoldingView(
  folder: string,
  mountPoint: string,
  hold: string,
): Promise<Deno.ChildProcess> {
  const program = new URL("../fixtures/programs/holding_fs.py", import.meta.url).pathname;
  return serveView("/usr/bin/python3", [program, folder, mountPoint, hold], mountPoint);
}

/**
 * Mount `tests/fixtures/programs/no_links_fs.py`'s view of `folder` at `mountPoint`: as
 * {@linkcode mountHoldingView}'s, but every hard link asked of it fails with EPERM (as on FAT).
 * Resolves once it is mounted; unmount with {@linkcode unmountBindfs}, then wait for the process.
 */
export function mountNoLinksView(
  folder: string,
  mountPoint: string,
  hold: string,
): Promise<Deno.ChildProcess> {
  const program = new URL("../fixtures/programs/no_links_fs.py", import.meta.url).pathname;
  return serveView("/usr/bin/python3", [program, folder, mountPoint, hold], mountPoint);
}

/** Start `program` serving a FUSE view at `mountPoint`; resolves once it is mounted. */
async function serveView(
  program: string,
  args: string[],
  mountPoint: string,
): Promise<Deno.ChildProcess> {
  await Deno.mkdir(mountPoint, { recursive: true });
  const child = new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 30_000;
  while (!(await isMounted(mountPoint))) {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error(`${program} did not mount ${mountPoint} within 30 s`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return child;
}

/** Unmount the view at `mountPoint` (lazily: an open file does not keep it). */
export async function unmountBindfs(mountPoint: string): Promise<void> {
  await run("fusermount", ["-u", "-z", mountPoint]);
}

/** Whether a bindfs view is mounted at `mountPoint` now. */
export async function isMounted(mountPoint: string): Promise<boolean> {
  const real = await Deno.realPath(mountPoint).catch(() => mountPoint);
  const table = await Deno.readTextFile("/proc/self/mountinfo");
  // A space in a mount point is written \040 there.
  const unescape = (field = "") =>
    field.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
  return table.split("\n").some((line) => unescape(line.split(" ")[4]) === real);
}

/**
 * Mount a bindfs view of `folder` at `mountPoint`, run `fn`, and unmount it
 * afterwards (if still mounted), whatever happens.
 */
export async function withBindfs<T>(
  folder: string,
  mountPoint: string,
  fn: () => Promise<T>,
): Promise<T> {
  await mountBindfs(folder, mountPoint);
  try {
    return await fn();
  } finally {
    if (await isMounted(mountPoint)) await unmountBindfs(mountPoint);
  }
}
