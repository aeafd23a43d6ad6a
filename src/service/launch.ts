/**
 * The command line a service starts (the compiled binary itself, or, when running from source,
 * `deno run` with the project's permission set), and, for a service file made for another OS
 * (`--os` with `--print` or `--root`), which of the paths in it are this machine's.
 *
 * The program, the source checkout, the config file and the home folder are known only here:
 * nothing tells where they are on the machine the file is for. The file keeps this machine's
 * (in that OS's path form), and the output says plainly that they must be changed there.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { posix, win32 } from "node:path";
import { isDenoRuntime, RUNTIME_FLAGS } from "../version.ts";
import type { ServiceOs, ServiceTarget } from "./plan.ts";

/** The source checkout, used when running from source (`deno run`). */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** How each OS is named in the words of the output, and its service file. */
const OS_NAMES: Record<ServiceOs, [os: string, file: string]> = {
  linux: ["Linux", "a systemd unit"],
  darwin: ["macOS", "a launchd plist"],
  windows: ["Windows", "a Task Scheduler task"],
};

/**
 * Build the argv that starts the daemon with `configPath`.
 *
 * A compiled binary runs as `<exe> run -c <config>`. From source (the
 * executable is deno), it is `<deno> run -q -P=image-transfer --config
 * <repo>/deno.json <repo>/main.ts run -c <config>`, the same permission set
 * as `deno task image-transfer` (which lets hooks run: the config check
 * guards them, not a flag).
 *
 * @param os the OS the service runs on (picks the path style)
 * @param execPath absolute path of the running executable
 * @param repoRoot the source checkout (used only when running from source)
 * @param configPath absolute config file
 * @returns program and arguments
 */
export function daemonArgv(
  os: ServiceOs,
  execPath: string,
  repoRoot: string,
  configPath: string,
): string[] {
  const path = os === "windows" ? win32 : posix;
  const exec = path.normalize(execPath);
  const config = path.normalize(configPath);
  if (!isDenoRuntime(execPath)) return [exec, "run", "-c", config];
  return [
    exec,
    "run",
    "-q",
    "-P=image-transfer",
    ...RUNTIME_FLAGS,
    "--config",
    path.join(repoRoot, "deno.json"),
    path.join(repoRoot, "main.ts"),
    "run",
    "-c",
    config,
  ];
}

/**
 * The lines that say, for a service file made on `here` for `target.os`, which of its paths are
 * this machine's and must be changed to that machine's before it is installed there; none when
 * the file is for this OS.
 *
 * @param target the OS and account the file is for (its home is this machine's account's)
 * @param here the OS this runs on
 * @param execPath the running executable
 * @param repoRoot the source checkout (named only when running from source)
 * @param configPath the config file the service reads
 */
export function thisMachinePaths(
  target: ServiceTarget,
  here: string,
  execPath: string,
  repoRoot: string,
  configPath: string,
): string[] {
  if (target.os === here) return [];
  const path = target.os === "windows" ? win32 : posix;
  const [there, file] = OS_NAMES[target.os];
  const hereName = OS_NAMES[here as ServiceOs]?.[0] ?? here;
  const paths: Array<[string, string]> = [
    [isDenoRuntime(execPath) ? "the deno program" : "the image-transfer program", execPath],
    ...(isDenoRuntime(execPath) ? [["the source checkout", repoRoot] as [string, string]] : []),
    ["the config file", configPath],
    ["the home folder, and the paths below it", target.home],
  ];
  return [
    `warning: this is ${file} for ${there}, made on ${hereName}: these paths in it are this ` +
    `machine's, written as ${there} writes paths; change them, in the file and in the commands, ` +
    "to where each is on the machine you copy it to (or run `install-service --print` there):",
    ...paths.map(([what, p]) => `  ${what}: ${path.normalize(p)}`),
  ];
}
