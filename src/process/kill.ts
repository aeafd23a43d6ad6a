/**
 * Killing processes this program did not start itself (a process group, a
 * shared SSH connection's master): `Deno.kill` needs the power to run
 * anything, which the permission set gives; under a narrower one (a list of
 * programs) the `kill` program is used.
 *
 * @module
 */

/** Whether `Deno.kill` is allowed (it needs unrestricted run permission). */
function mayKillDirectly(): boolean {
  try {
    return Deno.permissions.querySync({ name: "run" }).state === "granted";
  } catch {
    return false;
  }
}

/**
 * Send SIGKILL to process `pid`, or to the whole process group `-pid` when
 * `pid` is negative. Never throws: a process already gone, or a system
 * without a `kill` program, is not an error here (the caller does not wait
 * for the kill, it only bounds its own wait).
 *
 * @returns whether the signal was sent
 */
export async function killProcess(pid: number): Promise<boolean> {
  if (!Number.isSafeInteger(pid) || pid === 0 || pid === -1) return false;
  if (Deno.build.os === "windows") return false; // Only a child's own handle can kill there.
  if (mayKillDirectly()) {
    try {
      Deno.kill(pid, "SIGKILL");
      return true;
    } catch {
      return false;
    }
  }
  try {
    const { success } = await new Deno.Command("kill", {
      args: ["-s", "KILL", "--", String(pid)],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false; // No kill program, or not allowed to run it.
  }
}
