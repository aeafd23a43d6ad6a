/**
 * Carry out a service plan: write and remove files, run the service
 * manager's commands. With a root prefix (`--root`), files go under that
 * folder and no command runs (for tests and packaging).
 *
 * @module
 */
import { dirname, join } from "node:path";
import { CommandError } from "../errors.ts";
import { displayArgv } from "./escape.ts";
import type { PlannedCommand, PlannedFile, ServicePlan } from "./plan.ts";
import { encodeUtf16LeBom } from "./task_scheduler.ts";

/** Options for {@linkcode applyPlan}. */
export interface ApplyOptions {
  /** Write under this folder instead of `/`, and run no commands. */
  root?: string;
  /** Receives one line per step done or skipped. */
  log: (line: string) => void;
  /** Receives warnings (a command allowed to fail did). */
  warn: (line: string) => void;
}

/**
 * Map a service file path under a root prefix: `/etc/x` becomes
 * `<root>/etc/x`, `C:\Users\x` becomes `<root>/C/Users/x`.
 *
 * @param root the prefix folder, or `undefined` for none
 * @param path absolute path from the plan
 * @returns the path to touch on this machine
 */
export function underRoot(root: string | undefined, path: string): string {
  if (root === undefined) return path;
  const relative = path.replace(/^([A-Za-z]):/, "$1").replaceAll("\\", "/").replace(/^\/+/, "");
  return join(root, ...relative.split("/"));
}

/**
 * Encode a planned file's contents in its encoding.
 *
 * @param file the planned file
 * @returns the bytes to write
 */
export function encodeFile(file: PlannedFile): Uint8Array {
  return file.encoding === "utf-16le-bom"
    ? encodeUtf16LeBom(file.contents)
    : new TextEncoder().encode(file.contents);
}

/**
 * Run every step of `plan` in order.
 *
 * @param plan the plan
 * @param options root prefix and output
 * @throws {CommandError} when a command (and its fallback) fails and may not
 * @throws {Deno.errors.PermissionDenied} when a file cannot be written (run with sudo?)
 */
export async function applyPlan(plan: ServicePlan, options: ApplyOptions): Promise<void> {
  for (const step of plan.steps) {
    if (step.kind === "write") {
      const path = underRoot(options.root, step.file.path);
      await Deno.mkdir(dirname(path), { recursive: true });
      const temp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
      try {
        await Deno.writeFile(temp, encodeFile(step.file), { mode: 0o644 });
        await Deno.rename(temp, path);
      } catch (error) {
        await Deno.remove(temp).catch(() => {});
        throw error;
      }
      options.log(`wrote ${path}`);
    } else if (step.kind === "remove") {
      const path = underRoot(options.root, step.path);
      try {
        await Deno.remove(path);
        options.log(`removed ${path}`);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    } else if (options.root !== undefined) {
      options.log(`skipped (--root): ${displayArgv(step.command.argv)}`);
    } else {
      await runPlanned(step.command, options);
    }
  }
}

async function runPlanned(command: PlannedCommand, options: ApplyOptions): Promise<void> {
  let failure = await runOnce(command.argv);
  if (failure && command.fallback) {
    options.warn(`${failure.message}; trying ${displayArgv(command.fallback)}`);
    failure = await runOnce(command.fallback);
  }
  if (!failure) return options.log(`ran ${displayArgv(command.argv)}`);
  if (command.mayFail) return options.warn(`${failure.message} (continuing)`);
  throw failure;
}

/** Run one command; return the error instead of throwing it. */
async function runOnce(argv: string[]): Promise<CommandError | undefined> {
  const started = Date.now();
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return new CommandError(
        `Cannot run ${argv[0]}: not found; is this system's service manager installed?`,
        { argv, code: null, signal: null, timedOut: false, stderr: "", durationMs: 0 },
        { cause: error },
      );
    }
    throw error;
  }
  if (output.success) return undefined;
  const decoder = new TextDecoder();
  const stderr = (decoder.decode(output.stderr) + decoder.decode(output.stdout)).trim()
    .slice(0, 2000);
  return new CommandError(
    `Cannot complete ${displayArgv(argv)}: exit code ${output.code}${stderr ? `: ${stderr}` : ""}`,
    {
      argv,
      code: output.code,
      signal: output.signal,
      timedOut: false,
      stderr,
      durationMs: Date.now() - started,
    },
  );
}
