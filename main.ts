/**
 * image-transfer: watch a folder, wait until each file is complete, ship it
 * into night folders with scp, rsync or a local copy.
 *
 * Permissions are listed once, in `deno.json` (`permissions.image-transfer`),
 * and used by both `deno task image-transfer` and `deno task compile`.
 * This file is the only place the program exits.
 *
 * @module
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runCli } from "./src/cli/program.ts";
import {
  errorChain,
  ExitCode,
  exitCodeFor,
  guardedPathReason,
  OutcomeError,
  UsageError,
} from "./src/errors.ts";
import { logExit, shutdownLogging } from "./src/log/logging.ts";
import { cleanUpAfterCrash } from "./src/process/crash_cleanup.ts";

/**
 * Longest wait, on a crash, for what the stops undo otherwise (the SSH
 * masters, which answer within milliseconds when well): a crash never hangs.
 */
const CRASH_CLEANUP_MS = 8_000;

/** Print an error the way every command does and return its exit code. */
function reportError(error: unknown, verbose: boolean): number {
  const code = exitCodeFor(error);
  // The runtime's advice to run with --allow-all, which this program never takes: said plainly.
  const guarded = guardedPathReason(error);
  const message = (error instanceof Error ? error.message : String(error)).replace(
    /Requires all access to "[^"]*", run again with the --allow-all flag/,
    () => guarded ?? "",
  );
  console.error(`error: ${message}`);
  if (verbose) {
    // The causes only: the message itself (every line of it) was said above.
    for (const cause of errorChain(error).slice(1)) {
      // The runtime's own words, without its advice to run with --allow-all (see above).
      const said = cause.replace(
        /(Requires all access to "[^"]*"), run again with the --allow-all flag/,
        "$1",
      );
      console.error(`  ${said.replaceAll("\n", "\n  ")}`);
    }
    // An outcome to report (files not sent) is no bug: its message says it all.
    const expected = error instanceof OutcomeError;
    if (code === ExitCode.failure && error instanceof Error && error.stack && !expected) {
      console.error(error.stack);
    }
  } else if (error instanceof UsageError) {
    console.error("(run with --help for usage)");
  }
  return code;
}

/**
 * A bug that escaped every handler (an unhandled promise rejection): write it
 * to the log file and stderr, with its stack, end the SSH masters and remove
 * the runtime folder (best effort, bounded in time), and exit 1.
 */
async function crash(error: unknown): Promise<never> {
  logExit(error, ExitCode.failure);
  await cleanUpAfterCrash(CRASH_CLEANUP_MS);
  await shutdownLogging().catch(() => {});
  reportError(error, true);
  Deno.exit(ExitCode.failure);
}

if (import.meta.main) {
  // `deno task image-transfer ...` runs in the project's folder and says in INIT_CWD where the
  // command was typed: relative paths (`-c config.yaml`, `--to ./out`) mean what they mean there.
  // Only then: a program started elsewhere may have inherited INIT_CWD from a task around it.
  const typedIn = Deno.env.get("INIT_CWD");
  if (typedIn && resolve(Deno.cwd()) === resolve(fileURLToPath(new URL(".", import.meta.url)))) {
    try {
      Deno.chdir(typedIn);
    } catch { /* gone since: paths stay relative to the project's folder */ }
  }
  const verbose = Deno.args.includes("-v") || Deno.args.includes("--verbose");
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    void crash(event.reason);
  });
  globalThis.addEventListener("error", (event) => {
    event.preventDefault();
    void crash(event.error);
  });
  // For tests only (CONTRIBUTING.md): a crash on demand, to check what the crash path ends.
  if (Deno.env.get("IMAGE_TRANSFER_TEST_CRASH_ON") === "SIGUSR2") {
    Deno.addSignalListener("SIGUSR2", () => void Promise.reject(new Error("crash asked for")));
  }
  let code: number;
  try {
    code = await runCli(Deno.args);
  } catch (error) {
    code = reportError(error, verbose);
  }
  Deno.exit(code);
}
