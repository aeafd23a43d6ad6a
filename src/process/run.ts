/**
 * Running a program, the one way the program starts any (see
 * {@linkcode runHere} for what a run is and how it ends). Where programs
 * start: in this thread, or, once the daemon has given up starting programs
 * itself, through the launcher it started beforehand
 * ({@linkcode startProgramsThrough}, `launcher.ts`), which may start only the
 * programs its config names.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { killHere, runHere, type RunOptions, type RunResult } from "./run_here.ts";

export { neverStarted, type RunOptions, type RunResult } from "./run_here.ts";

const logger = getLogger(["image-transfer", "process"]);

/** What starts programs and kills processes for {@linkcode runProcess} and {@linkcode killProcess}. */
export interface ProgramStarter {
  run(argv: string[], options: RunOptions): Promise<RunResult>;
  kill(pid: number): Promise<boolean>;
}

/** The launcher programs start through; `null`: here, with this thread's permissions. */
let starter: ProgramStarter | null = null;

/**
 * Start every program from now on through `next` (`null`: here again). The
 * daemon calls it once it has given up starting programs itself.
 */
export function startProgramsThrough(next: ProgramStarter | null): void {
  starter = next;
}

/**
 * Run `argv[0]` with the arguments `argv.slice(1)` and wait for it, here or
 * through the launcher ({@linkcode startProgramsThrough}); see {@linkcode runHere}
 * for what it returns and throws.
 */
export function runProcess(argv: string[], options: RunOptions = {}): Promise<RunResult> {
  logger.debug("Running {argv}", { argv });
  const safe = withoutLinkerVariables(options);
  return starter ? starter.run(argv, safe) : runHere(argv, safe);
}

/**
 * Variables that make the dynamic linker load other code into a program
 * (`LD_PRELOAD`, `LD_LIBRARY_PATH`, `DYLD_INSERT_LIBRARIES`, ...): the runtime
 * refuses to start a program with any of them unless every program may be
 * started, so the programs the daemon starts get this process's environment
 * without them (`faketime`, for one, sets `LD_PRELOAD`).
 */
const LINKER_VARIABLE = /^(LD|DYLD)_/;

/** This process's environment without linker variables; `null`: it has none (or cannot be read). */
let inheritedEnvironment: Record<string, string> | null | undefined;

/** `options` for a program that inherits this process's environment, minus linker variables. */
function withoutLinkerVariables(options: RunOptions): RunOptions {
  if (options.clearEnv) return options;
  if (inheritedEnvironment === undefined) {
    try {
      const all = Deno.env.toObject();
      const names = Object.keys(all).filter((name) => LINKER_VARIABLE.test(name));
      for (const name of names) delete all[name];
      inheritedEnvironment = names.length > 0 ? all : null;
    } catch {
      inheritedEnvironment = null;
    }
  }
  if (inheritedEnvironment === null) return options;
  return { ...options, clearEnv: true, env: { ...inheritedEnvironment, ...options.env } };
}

/**
 * Send SIGKILL to process `pid`, or to the whole process group `-pid` when
 * `pid` is negative. Never throws: a process already gone, or a system
 * without a `kill` program, is not an error here (the caller does not wait
 * for the kill, it only bounds its own wait).
 *
 * @returns whether the signal was sent
 */
export function killProcess(pid: number): Promise<boolean> {
  return starter ? starter.kill(pid) : killHere(pid);
}
