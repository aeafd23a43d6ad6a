/**
 * A FUSE view of a folder for tests (`bindfs`, Linux, `/dev/fuse`): files
 * written into the folder itself raise no event on the view, as files written
 * by another machine raise none on an NFS or SMB mount.
 *
 * @module
 */

async function run(program: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(program, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${program} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Mount a bindfs view of `folder` at `mountPoint` (created if needed). */
export async function mountBindfs(folder: string, mountPoint: string): Promise<void> {
  await Deno.mkdir(mountPoint, { recursive: true });
  await run("bindfs", [folder, mountPoint]);
}

/**
 * Mount a bindfs view of `folder` at `mountPoint` served by a process of the
 * caller's (`bindfs -f`): killing it leaves a mount whose every access fails
 * with ENOTCONN, as a share whose client died. Resolves once it is mounted.
 */
export async function mountBindfsProcess(
  folder: string,
  mountPoint: string,
): Promise<Deno.ChildProcess> {
  await Deno.mkdir(mountPoint, { recursive: true });
  const child = new Deno.Command("bindfs", {
    args: ["-f", folder, mountPoint],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 30_000;
  while (!(await isMounted(mountPoint))) {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`bindfs did not mount ${mountPoint} within 30 s`);
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
  return table.split("\n").some((line) => line.split(" ")[4] === real);
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
