/**
 * A folder for one CLI test: a watch folder, a local destination, a state
 * folder, a log file and a config file tying them together (`local` method,
 * short stability window), with HOME inside it.
 *
 * @module
 */
import { join } from "node:path";
import { writeConfig } from "./files.ts";

/** The paths of one sandbox. */
export interface Sandbox {
  root: string;
  watch: string;
  dest: string;
  stateDir: string;
  logFile: string;
  config: string;
  /** Environment for the CLI: HOME inside the sandbox. */
  env: Record<string, string>;
  /**
   * Rewrite the config with the base fields and `extra`; `atomically`: written beside it and
   * renamed over it, as an editor saves (a reload never reads it half-written).
   */
  rewrite(extra: Record<string, unknown>, atomically?: boolean): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Make a sandbox; `extra` config fields override or add to the base ones. `configName` names
 * the config file in the sandbox (`config.yaml` unless given: a test of how messages quote a
 * path gives one with a space).
 */
export async function cliSandbox(
  extra: Record<string, unknown> = {},
  { configName = "config.yaml" }: { configName?: string } = {},
): Promise<Sandbox> {
  const root = await Deno.makeTempDir({ prefix: "itx-cli-" });
  const watch = join(root, "watch");
  const dest = join(root, "dest");
  const stateDir = join(root, "state");
  const logFile = join(root, "logs", "it.log");
  const config = join(root, configName);
  await Deno.mkdir(watch);
  await Deno.mkdir(join(root, "home"));
  const base = {
    watch_path: watch,
    remote_base_path: dest,
    transfer_method: "local",
    stability_window_seconds: 0.3,
    night_timezone: "UTC",
    state_dir: stateDir,
    log_file: logFile,
  };
  const rewrite = async (fields: Record<string, unknown>, atomically = false) => {
    if (!atomically) return await writeConfig(config, { ...base, ...fields });
    await writeConfig(`${config}.new`, { ...base, ...fields });
    await Deno.rename(`${config}.new`, config);
  };
  await rewrite(extra);
  return {
    root,
    watch,
    dest,
    stateDir,
    logFile,
    config,
    env: { HOME: join(root, "home"), XDG_STATE_HOME: "" },
    rewrite,
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true });
    },
  };
}

/**
 * An `on_transfer` hook in `root` that writes each file's relative path as a line of `hookLog`;
 * `runs()` reads those lines, sorted.
 */
export async function countingHook(
  root: string,
): Promise<{ hook: string; hookLog: string; runs(): Promise<string[]> }> {
  const hook = join(root, "hook.sh");
  const hookLog = join(root, "hook.log");
  await Deno.writeTextFile(
    hook,
    `#!/bin/sh\nprintf '%s\\n' "$IMAGE_TRANSFER_RELATIVE_PATH" >> '${hookLog}'\n`,
  );
  await Deno.chmod(hook, 0o755);
  const runs = async () =>
    (await Deno.readTextFile(hookLog).catch(() => "")).split("\n").filter((line) => line !== "")
      .sort();
  return { hook, hookLog, runs };
}
