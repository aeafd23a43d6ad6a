/**
 * The command line a service starts: the compiled binary itself, or, when
 * running from source, `deno run` with the project's permission set.
 *
 * @module
 */
import { posix, win32 } from "node:path";
import type { ServiceOs } from "./plan.ts";
import { isDenoRuntime } from "../version.ts";

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
    "--v8-flags=--optimize-for-size",
    "--config",
    path.join(repoRoot, "deno.json"),
    path.join(repoRoot, "main.ts"),
    "run",
    "-c",
    config,
  ];
}
