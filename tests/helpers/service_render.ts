/**
 * Shared by the service rendering tests: a daemon launch to render, and
 * running the tools that read the rendered files (xmllint, systemd-analyze).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { DaemonLaunch } from "../../src/service/plan.ts";

/** A daemon launch with `argv`, writing its state and log folders (and `written`), reading `read`. */
export function launch(
  argv: string[],
  folders: { own?: string[]; written?: string[]; read?: string[] } = {},
): DaemonLaunch {
  return {
    argv,
    configPath: argv[argv.length - 1],
    logFile: "/home/obs/logs/image_transfer.log",
    ownFolders: folders.own ?? ["/home/observer/.local/state/image-transfer", "/home/obs/logs"],
    writtenFolders: folders.written ?? [],
    readPaths: folders.read ?? ["/home/observer/camera"],
  };
}

/**
 * A new temporary folder outside `/tmp` and `/var/tmp` (in the home folder),
 * for units that must keep their private `/tmp`.
 */
export async function makeTempDirOutsideTmp(prefix: string): Promise<string> {
  const home = Deno.env.get("HOME");
  if (!home || /^\/(var\/)?tmp(\/|$)/.test(home)) throw new Error(`HOME ${home} is in /tmp`);
  return await Deno.makeTempDir({ dir: home, prefix: `.${prefix}` });
}

/** Run a tool and capture its output. */
export async function run(
  program: string,
  args: string[],
  env?: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(program, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** Evaluate an XPath expression with xmllint (the value, without xmllint's final newline). */
export async function xpath(file: string, expr: string): Promise<string> {
  const out = await run("xmllint", ["--nonet", "--xpath", expr, file]);
  assert.equal(out.code, 0, out.stderr);
  return out.stdout.replace(/\n$/, "");
}
