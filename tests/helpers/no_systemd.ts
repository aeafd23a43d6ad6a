/**
 * A stand-in for a machine where systemd is not process 1 (containers, WSL).
 *
 * @module
 */
import { join } from "node:path";

/**
 * Make a folder with a `systemctl` that answers as the real one does on a machine
 * where systemd is not process 1 (containers, WSL): on PATH first, it makes
 * the test the same on every machine, and nothing is ever installed for real.
 *
 * @param dir a temporary folder to put it in
 * @returns a PATH with that folder first
 */
export async function noSystemdPath(dir: string): Promise<string> {
  const bin = join(dir, "no-systemd-bin");
  await Deno.mkdir(bin);
  await Deno.writeTextFile(
    join(bin, "systemctl"),
    "#!/bin/sh\n" +
      'echo "System has not been booted with systemd as init system (PID 1). Can\'t operate." >&2\n' +
      "echo 'Failed to connect to bus: Host is down' >&2\nexit 1\n",
  );
  await Deno.chmod(join(bin, "systemctl"), 0o755);
  return `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`;
}
