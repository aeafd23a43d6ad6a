/**
 * Carry out a service plan: check that the service manager is usable, then
 * write and remove files, create folders and run the service manager's
 * commands. When a step fails, the plan's rollback runs and every file and
 * folder the steps touched is put back, so a failed install leaves nothing
 * behind. With a root prefix (`--root`), files go under that folder and no
 * command or check runs (for tests and packaging). Also the notes printed
 * after it ({@linkcode installNotes}).
 *
 * @module
 */
import { dirname, join } from "node:path";
import { CommandError } from "../errors.ts";
import { neverStarted, runProcess } from "../process/run.ts";
import { displayArgv } from "./escape.ts";
import { pathExists } from "../config/paths.ts";
import type {
  DaemonLaunch,
  PlannedCommand,
  PlannedFile,
  ServiceCheck,
  ServicePlan,
  ServiceTarget,
} from "./plan.ts";
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
 * Check that the service manager of `plan` is usable, changing nothing.
 *
 * @param plan the plan
 * @throws {Error} the first failed check's problem, saying that nothing was changed
 */
export async function checkServiceManager(plan: ServicePlan): Promise<void> {
  for (const check of plan.checks) {
    const failure = await failedCheck(check);
    if (failure !== undefined) {
      throw new Error(
        `Cannot install the service: ${check.problem} (${failure}). Nothing was changed.`,
      );
    }
  }
}

/**
 * Check the service manager, then run every step of `plan` in order; undo
 * them when one fails.
 *
 * @param plan the plan
 * @param options root prefix and output
 * @throws {Error} when a check fails (nothing is written)
 * @throws {CommandError} when a command (and its fallback) fails and may not (after the rollback)
 * @throws {Deno.errors.PermissionDenied} when a file cannot be written (run with sudo?)
 */
export async function applyPlan(plan: ServicePlan, options: ApplyOptions): Promise<void> {
  if (options.root === undefined) await checkServiceManager(plan);
  const undo = new Undo();
  try {
    for (const step of plan.steps) {
      if (step.kind === "write") {
        const path = underRoot(options.root, step.file.path);
        await undo.makeFolders(dirname(path));
        const bytes = encodeFile(step.file);
        if (sameBytes(await undo.keep(path), bytes)) {
          options.log(`unchanged ${path}`); // Installed already, as it is now.
          continue;
        }
        await writeAtomically(path, bytes);
        options.log(`wrote ${path}`);
      } else if (step.kind === "mkdir") {
        // The daemon's own folders are its data, not part of a package: not under --root.
        if (options.root !== undefined) {
          options.log(`skipped (--root): create ${step.path}`);
          continue;
        }
        const created = await undo.makeFolders(step.path);
        if (step.owner && Deno.uid() === 0) {
          for (const folder of created) await Deno.chown(folder, step.owner.uid, step.owner.gid);
        }
        if (created.length > 0) options.log(`created ${step.path}`);
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
  } catch (error) {
    for (const step of plan.rollback) {
      if (step.kind === "restore") await undo.restore(options.warn);
      else if (options.root === undefined) await runOnce(step.argv);
    }
    if (plan.rollback.length > 0) options.warn("undid the install: nothing was left behind");
    if (plan.failureHint && error instanceof Error) error.message += `; ${plan.failureHint}`;
    throw error;
  }
}

/** What the steps changed on disk, to put back after a failure. */
class Undo {
  /** Files written, with their bytes before (`null`: the file did not exist). */
  #files: [string, Uint8Array | null][] = [];
  /** Folders created, parents first. */
  #folders: string[] = [];

  /** Remember `path`'s current contents before it is overwritten; they (`null`: none there). */
  async keep(path: string): Promise<Uint8Array | null> {
    let bytes: Uint8Array | null = null;
    try {
      bytes = await Deno.readFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    this.#files.push([path, bytes]);
    return bytes;
  }

  /** Create `path` and its missing parents; return the folders created, parents first. */
  async makeFolders(path: string): Promise<string[]> {
    const missing: string[] = [];
    for (let folder = path; !(await pathExists(folder, false)); folder = dirname(folder)) {
      missing.unshift(folder);
      if (dirname(folder) === folder) break;
    }
    await Deno.mkdir(path, { recursive: true });
    this.#folders.push(...missing);
    return missing;
  }

  /** Put every file back as it was and remove the folders created (when empty). */
  async restore(warn: (line: string) => void): Promise<void> {
    for (const [path, before] of this.#files.reverse()) {
      try {
        if (before === null) await Deno.remove(path);
        else await writeAtomically(path, before);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) {
          warn(`Cannot restore ${path}: ${(error as Error).message}`);
        }
      }
    }
    for (const folder of this.#folders.reverse()) {
      await Deno.remove(folder).catch(() => {}); // only an empty folder goes
    }
    this.#files = [];
    this.#folders = [];
  }
}

async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  const temp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeFile(temp, bytes, { mode: 0o644 });
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}

/** Run one check; `undefined` when it passes, else what failed. */
async function failedCheck(check: ServiceCheck): Promise<string | undefined> {
  if (check.kind === "exists") {
    return (await pathExists(check.path, false)) ? undefined : `${check.path} does not exist`;
  }
  return (await runOnce(check.argv))?.message;
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

/**
 * Run one command; return its error instead of throwing it, with stdout added
 * to the message (some service managers report errors there).
 *
 * @throws the system's error when the program exists but cannot be started
 */
async function runOnce(argv: string[]): Promise<CommandError | undefined> {
  try {
    await runProcess(argv);
    return undefined;
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    if (neverStarted(error)) {
      if (!(error.cause instanceof Deno.errors.NotFound)) throw error.cause;
      return new CommandError(
        `Cannot run ${argv[0]}: not found; is this system's service manager installed?`,
        error.run,
        { cause: error.cause },
      );
    }
    const output = [error.run.stderr, error.run.stdout ?? ""].filter((text) => text !== "")
      .join("\n").slice(0, 2000);
    const ending = error.run.timedOut
      ? "timed out"
      : error.run.signal
      ? `killed by ${error.run.signal}`
      : `exit code ${error.run.code}`;
    return new CommandError(
      `Cannot complete ${displayArgv(argv)}: ${ending}${output ? `: ${output}` : ""}`,
      error.run,
    );
  }
}

/**
 * The lines an install prints after it: the plan's notes, then each folder the sandboxed system
 * service must write that does not exist, with what to do. With `--root` (`root`: a system image
 * or package built under that folder) the folders are looked for there, and a missing one is to
 * be made on the system installed from it; nothing here is looked at.
 */
export async function installNotes(
  target: ServiceTarget,
  launch: DaemonLaunch,
  plan: ServicePlan,
  root: string | undefined,
): Promise<string[]> {
  const notes = [...plan.notes];
  if (target.os !== "linux" || target.scope !== "system") return notes;
  const why = "the service may write only into folders that exist when it starts";
  for (const folder of launch.writtenFolders) {
    const path = underRoot(root, folder);
    if (await pathExists(path)) continue;
    const writable = `writable by ${target.user}`;
    notes.push(
      root === undefined
        ? `Note: the folder ${folder} does not exist, and ${why}: create it (${writable}) ` +
          "before the service starts, or restart the service once it is there " +
          "(sudo systemctl restart image-transfer)"
        : `Note: the folder ${folder} is not in --root ${root} (${path} does not exist), and ` +
          `${why}: on the system installed from ${root}, create ${folder} (${writable}) ` +
          "before the service starts",
    );
  }
  return notes;
}

/** Whether `a` holds exactly the bytes `b`. */
function sameBytes(a: Uint8Array | null, b: Uint8Array): boolean {
  return a !== null && a.length === b.length && a.every((byte, i) => byte === b[i]);
}
