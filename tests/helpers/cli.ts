/**
 * Run the real CLI the way users do from source: `deno run` with exactly the
 * project's permission set (`deno.json` → `permissions.image-transfer`), so a
 * missing permission fails the test.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ceilingMs, LEAST_CEILING_MS } from "./files.ts";
import { RUNTIME_FLAGS } from "../../src/version.ts";

/** Repository root. */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/**
 * The argv prefix that starts the CLI, shared by every CLI test;
 * `extraFlags` adds to the permission set as a user's command line would
 * (`--deny-net=…`).
 */
export function cliArgv(args: string[], extraFlags: string[] = []): string[] {
  return [
    "run",
    "-q",
    "-P=image-transfer",
    ...extraFlags,
    ...RUNTIME_FLAGS,
    "--config",
    `${REPO_ROOT}deno.json`,
    `${REPO_ROOT}main.ts`,
    ...args,
  ];
}

/**
 * Run `code` (a module body) as a script under the project's permission set alone (no runtime
 * flags, no CLI), which must exit 0; its standard output.
 */
export async function runUnderPermissionSet(code: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "itx-confined-" });
  try {
    const script = join(dir, "probe.ts");
    await Deno.writeTextFile(script, code);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-q", "-P=image-transfer", "--config", join(REPO_ROOT, "deno.json"), script],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder();
    assert.equal(out.code, 0, text.decode(out.stderr));
    return text.decode(out.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Result of a finished CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@linkcode runCli} and {@linkcode startCli}. */
export interface CliOptions {
  /** Extra environment (merged over the current one). */
  env?: Record<string, string>;
  cwd?: string;
  /** Text fed to standard input. */
  stdin?: string;
  /**
   * Run without the power to read or write any file regardless of its mode, nor to replace
   * another account's file in a folder with the sticky bit (Linux: `setpriv` drops
   * CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER), so a test running as root sees
   * permissions as an ordinary user would.
   */
  honourFileModes?: boolean;
  /** Flags added after the permission set, e.g. `--allow-net=127.0.0.1:9000`. */
  extraFlags?: string[];
  /**
   * Run in a new user namespace (Linux, `unshare -Ur`) that allows this many
   * inotify watches (`user.max_inotify_watches`), leaving the machine's limit alone.
   */
  inotifyWatches?: number;
  /**
   * Lead a process group (and session) of its own (`setsid`, Linux), as a program started from a
   * terminal does: a signal sent to `-pid` reaches it and every program it started in its group,
   * as Ctrl-C in the terminal does.
   */
  ownProcessGroup?: boolean;
  /** Run under this open-file limit, soft and hard (`prlimit --nofile`, Linux). */
  openFiles?: number;
}

/** Program and arguments that start the CLI with `args` under `options`. */
function command(args: string[], options: CliOptions): [string, string[]] {
  if (options.openFiles !== undefined) {
    const [program, argv] = command(args, { ...options, openFiles: undefined });
    const limit = `--nofile=${options.openFiles}:${options.openFiles}`;
    return ["prlimit", [limit, "--", program, ...argv]];
  }
  if (options.ownProcessGroup) {
    // setsid makes its own process the leader (it forks only when it leads a group already).
    const [program, argv] = command(args, { ...options, ownProcessGroup: false });
    return ["setsid", [program, ...argv]];
  }
  // Only root can drop these powers, and only root has them.
  const argv = cliArgv(args, options.extraFlags ?? []);
  if (options.inotifyWatches !== undefined) {
    // A fixed script; the limit and the command come as its arguments.
    const script = 'echo "$0" > /proc/sys/user/max_inotify_watches && exec "$@"';
    return [
      "unshare",
      ["-Ur", "sh", "-c", script, String(options.inotifyWatches), Deno.execPath(), ...argv],
    ];
  }
  if (!options.honourFileModes || Deno.uid() !== 0) return [Deno.execPath(), argv];
  return [
    "setpriv",
    ["--bounding-set=-dac_override,-dac_read_search,-fowner", "--", Deno.execPath(), ...argv],
  ];
}

/**
 * Run `deno task image-transfer …args` as a user of a clone would, typed in `cwd`, to completion.
 */
export async function runTask(
  args: string[],
  options: { cwd: string; env: Record<string, string> },
): Promise<CliResult> {
  // Deno keeps an INIT_CWD it inherits (from the task running the tests): as typed in `cwd`.
  const env = { ...Deno.env.toObject(), ...options.env };
  delete env.INIT_CWD;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "--config", `${REPO_ROOT}deno.json`, "image-transfer", ...args],
    cwd: options.cwd,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Run the CLI to completion and capture its output. */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const [program, argv] = command(args, options);
  return await runProgram(program, argv, options);
}

/**
 * Run `program` with `args` to completion, feeding it `options.stdin` (else no input), and
 * capture its output.
 */
export async function runProgram(
  program: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdin?: string } = {},
): Promise<CliResult> {
  const child = new Deno.Command(program, {
    args,
    env: options.env,
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** A CLI process left running (the daemon). */
export interface RunningCli {
  process: Deno.ChildProcess;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Everything written to stdout so far. */
  stdout(): string;
  /** Resolve when stderr or stdout contains `text` (rejects after `timeoutMs`, at least a minute). */
  waitForOutput(text: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Whether the process has ended (its status is known). */
  exited(): boolean;
  /** Send `signal` and wait for exit; returns the exit status. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/** Start the CLI in the background, collecting its output. */
export function startCli(args: string[], options: CliOptions = {}): RunningCli {
  const [program, argv] = command(args, options);
  const process = new Deno.Command(program, {
    args: argv,
    env: options.env,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  let out = "";
  const decoder = () => new TextDecoderStream();
  const pumpErr = process.stderr.pipeThrough(decoder()).pipeTo(
    new WritableStream({ write: (chunk) => void (err += chunk) }),
  ).catch(() => {});
  const pumpOut = process.stdout.pipeThrough(decoder()).pipeTo(
    new WritableStream({ write: (chunk) => void (out += chunk) }),
  ).catch(() => {});
  let exited = false;
  const status = process.status.then((s) => {
    exited = true;
    return s;
  });
  return {
    process,
    stderr: () => err,
    stdout: () => out,
    exited: () => exited,
    async waitForOutput(text, timeoutMs = LEAST_CEILING_MS) {
      const deadline = Date.now() + ceilingMs(timeoutMs);
      const seen = () =>
        typeof text === "string" ? (err + out).includes(text) : text.test(err + out);
      while (!seen()) {
        if (exited) throw new Error(`CLI exited before printing ${text}:\n${err}\n${out}`);
        if (Date.now() > deadline) {
          throw new Error(`Timed out waiting for ${text}:\n${err}\n${out}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop(signal: Deno.Signal = "SIGTERM") {
      if (!exited) {
        try {
          process.kill(signal);
        } catch { /* already gone */ }
      }
      const s = await status;
      await Promise.all([pumpErr, pumpOut]);
      return s;
    },
  };
}

/**
 * Send SIGHUP to a daemon of one job and wait until its `nth` reload is in force: its job
 * watching again after each reload that changed it, or gone on untouched.
 */
export async function reloadDaemon(daemon: RunningCli, nth: number): Promise<void> {
  daemon.process.kill("SIGHUP");
  const count = (text: string) => daemon.stderr().split(text).length - 1;
  const deadline = Date.now() + ceilingMs(30_000);
  while (count("Watching ") - 1 + count("go on untouched") < nth) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for reload ${nth}:\n${daemon.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}
