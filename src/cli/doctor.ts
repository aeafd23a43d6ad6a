/**
 * `doctor`: check, job by job, everything a transfer needs — programs,
 * connection and non-interactive login, a writable destination, free space,
 * a remote SHA-256 tool — and say what to fix.
 *
 * @module
 */
import { Command } from "commander";
import { join } from "node:path";
import { checkFtpDestination } from "./doctor_ftp.ts";
import { checkInotifyLimits } from "./doctor_watch_limits.ts";
import { globalOptions } from "./options.ts";
import { loadConfig, resolveConfigPath } from "../config/load.ts";
import type { JobConfig } from "../config/types.ts";
import { CommandError, UsageError } from "../errors.ts";
import { classifyFailure, lastLine } from "../transfer/classify.ts";
import { createTransport } from "../transfer/factory.ts";
import { newMarker } from "../transfer/remote_verify.ts";
import { runCommand } from "../transfer/run_command.ts";
import {
  endpointFromJob,
  remoteBasePath,
  shellQuote,
  SSH_ENV,
  type SshEndpoint,
  SshSession,
} from "../transfer/ssh.ts";

/** Below this much free space at a destination, `doctor` reports a failure. */
const MIN_FREE_BYTES = 1024 ** 3;

/** One check's verdict (`WARN`: works, but should be fixed; does not fail `doctor`). */
type Verdict = "ok" | "WARN" | "FAIL" | "skip";

/** Prints verdict lines and remembers whether anything failed. */
class Report {
  failed = false;
  constructor(private readonly print: (line: string) => void) {}

  line(verdict: Verdict, check: string, detail: string): void {
    if (verdict === "FAIL") this.failed = true;
    this.print(`  ${verdict.padEnd(4)}  ${check}: ${detail}`);
  }

  header(text: string): void {
    this.print(text);
  }
}

/**
 * Run every check for `jobs`, printing one line per check.
 *
 * @param print where lines go (stdout in the CLI)
 * @returns whether every check passed
 */
export async function runDoctor(
  jobs: JobConfig[],
  print: (line: string) => void,
): Promise<boolean> {
  const report = new Report(print);
  for (const job of jobs) {
    if (job.transfer_method === "local") await checkLocalJob(job, report);
    else if (job.transfer_method === "ftp") await checkFtpJob(job, report);
    else await checkSshJob(job, report);
  }
  return !report.failed;
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 ** 3
    ? `${(bytes / 1024 ** 3).toFixed(1)} GiB`
    : `${(bytes / 1024 ** 2).toFixed(0)} MiB`;
}

async function checkWatchPath(job: JobConfig, report: Report): Promise<void> {
  try {
    const info = await Deno.stat(job.watch_path);
    if (!info.isDirectory) throw new Error("not a folder");
    for await (const _ of Deno.readDir(job.watch_path)) break;
    report.line("ok", "watch folder", job.watch_path);
    await checkInotifyLimits(job.watch_path, (...args) => report.line(...args));
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "does not exist"
      : error instanceof Error
      ? error.message
      : String(error);
    report.line("FAIL", "watch folder", `${job.watch_path}: ${reason}; fix watch_path`);
  }
}

async function checkLocalJob(job: JobConfig, report: Report): Promise<void> {
  report.header(`job ${job.name} (local -> ${job.remote_base_path})`);
  await checkWatchPath(job, report);
  const probe = join(job.remote_base_path, `.image-transfer-doctor-${Deno.pid}`);
  try {
    await Deno.mkdir(job.remote_base_path, { recursive: true });
    await Deno.writeTextFile(probe, "image-transfer doctor\n");
    await Deno.remove(probe);
    report.line("ok", "destination writable", job.remote_base_path);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    report.line(
      "FAIL",
      "destination writable",
      `${job.remote_base_path}: ${message}; create the folder or fix its permissions`,
    );
  }
  report.line("skip", "free space", "not checked for local destinations");
}

async function checkFtpJob(job: JobConfig, report: Report): Promise<void> {
  report.header(`job ${job.name} (ftp -> ${createTransport(job, "").describeTarget("")})`);
  await checkWatchPath(job, report);
  await checkFtpDestination(job, report);
}

/** Run a program and return its output (stdout, or stderr when stdout is empty). */
async function versionOf(argv: string[]): Promise<string> {
  try {
    const result = await runCommand(argv, { timeoutMs: 10_000 });
    const out = new TextDecoder().decode(result.stdout).trim() || result.stderr;
    return out.split("\n")[0].trim();
  } catch (error) {
    // scp has no version option: its usage text proves it is installed.
    if (error instanceof CommandError && error.run.code !== null) return "installed";
    throw error;
  }
}

async function checkProgram(name: string, argv: string[], pkg: string, report: Report) {
  try {
    report.line("ok", name, await versionOf(argv));
    return true;
  } catch {
    report.line("FAIL", name, `not found on PATH; install it (Debian/Ubuntu: apt install ${pkg})`);
    return false;
  }
}

async function checkSshJob(job: JobConfig, report: Report): Promise<void> {
  let endpoint: SshEndpoint;
  try {
    endpoint = endpointFromJob(job);
  } catch (error) {
    report.header(`job ${job.name} (${job.transfer_method})`);
    report.line("FAIL", "config", error instanceof Error ? error.message : String(error));
    return;
  }
  const runtimeDir = await Deno.makeTempDir({ prefix: "itx-doctor-" });
  const session = new SshSession(endpoint, runtimeDir);
  const base = remoteBasePath(job.remote_base_path);
  report.header(
    `job ${job.name} (${job.transfer_method} -> ${session.remoteSpec(job.remote_base_path)})`,
  );
  try {
    await checkWatchPath(job, report);
    const haveSsh = await checkProgram("ssh", ["ssh", "-V"], "openssh-client", report);
    if (job.transfer_method === "scp") {
      await checkProgram("scp", ["scp"], "openssh-client", report);
    } else {
      await checkProgram("rsync", ["rsync", "--version"], "rsync", report);
    }
    if (!haveSsh) return;
    const context = {
      host: session.endpoint.host,
      destination: session.destination,
      port: session.endpoint.port,
    };
    const started = performance.now();
    try {
      await runCommand(await session.sshArgv(["true"]), {
        timeoutMs: job.transfer_timeout_seconds * 1000,
        env: SSH_ENV,
      });
      const ms = Math.round(performance.now() - started);
      report.line("ok", "login", `${session.destination} without a password prompt (${ms} ms)`);
    } catch (error) {
      const failure = classifyFailure(error, `log in to ${session.destination}`, context);
      report.line("FAIL", "login", failure.message);
      return;
    }
    await checkRemote(job, session, base, report);
  } finally {
    await session.close();
    await Deno.remove(runtimeDir, { recursive: true }).catch(() => {});
  }
}

/** One remote script: create/write the base folder, free space, hash tool, rsync. */
async function checkRemote(job: JobConfig, session: SshSession, base: string, report: Report) {
  const marker = newMarker();
  const script = [
    "LC_ALL=C; export LC_ALL",
    `N=${marker}; B=${shellQuote(base)}`,
    `say() { printf '%s %s\\n' "$N" "$*" | tr -d '\\r'; }`,
    `if [ -d "$B" ]; then say B exists; elif e=$(mkdir -p -- "$B" 2>&1); then say B created; ` +
    `else say B failed "$(printf '%s' "$e" | tr '\\n' ' ')"; fi`,
    `t="$B/.image-transfer-doctor.$$"`,
    `if e=$( (: >"$t") 2>&1); then rm -f -- "$t"; say W ok; ` +
    `else say W failed "$(printf '%s' "$e" | tr '\\n' ' ')"; fi`,
    `say D "$(df -Pk -- "$B" 2>/dev/null | tail -n 1)"`,
    `say H "$(command -v sha256sum || command -v shasum)"`,
    `say R "$(rsync --version 2>/dev/null | head -n 1)"`,
    `say P "$(python3 -c 'import hashlib,platform;print(platform.python_version())' 2>/dev/null)"`,
    "exit 0",
    "",
  ].join("\n");
  let stdout: string;
  try {
    stdout = await session.runScript(script, { timeoutMs: job.transfer_timeout_seconds * 1000 });
  } catch (error) {
    const detail = error instanceof CommandError ? lastLine(error.run.stderr) : String(error);
    report.line("FAIL", "remote checks", `cannot run sh on the remote host: ${detail}`);
    return;
  }
  const fields = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const match = line.match(/^(\S+) ([A-Z]) ?(.*)$/);
    if (match && match[1] === marker) fields.set(match[2], match[3]);
  }
  const where = session.remoteSpec(job.remote_base_path);
  const folder = fields.get("B") ?? "failed (no answer)";
  if (folder.startsWith("failed")) {
    report.line(
      "FAIL",
      "destination folder",
      `${where}: cannot create it (${
        folder.slice(7)
      }); create it on the remote host or fix remote_base_path`,
    );
  } else {
    report.line("ok", "destination folder", `${where} ${folder}`);
  }
  const write = fields.get("W") ?? "failed (no answer)";
  if (write === "ok") {
    report.line("ok", "destination writable", `created and removed a test file in ${where}`);
  } else {
    report.line(
      "FAIL",
      "destination writable",
      `${where}: ${write.slice(7)}; make the folder writable for ${session.destination}`,
    );
  }
  const df = (fields.get("D") ?? "").match(/\s(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%\s/);
  if (!df) {
    report.line("FAIL", "free space", `df -Pk gave no answer for ${where}`);
  } else {
    const free = Number(df[3]) * 1024;
    report.line(
      free >= MIN_FREE_BYTES ? "ok" : "FAIL",
      "free space",
      `${formatBytes(free)} free at ${where}` +
        (free >= MIN_FREE_BYTES ? "" : " (less than 1 GiB: free space there)"),
    );
  }
  if (job.verify_transfer === "checksum") {
    const tool = fields.get("H") ?? "";
    if (tool) report.line("ok", "remote SHA-256", tool);
    else {
      report.line(
        "FAIL",
        "remote SHA-256",
        "neither sha256sum nor shasum found: install coreutils there or set verify_transfer: size",
      );
    }
  }
  if (job.transfer_method === "scp") {
    const python = fields.get("P") ?? "";
    if (python) report.line("ok", "remote python3", `${python}: files of 16 MiB and more stream`);
    else {
      report.line(
        "skip",
        "remote python3",
        "not found: files of 16 MiB and more go by scp (install python3 there to stream them, " +
          "which is faster, most of all with verify_transfer: checksum)",
      );
    }
  }
  if (job.transfer_method === "rsync") {
    const version = fields.get("R") ?? "";
    if (version) report.line("ok", "remote rsync", version);
    else {report.line(
        "FAIL",
        "remote rsync",
        "rsync not found on the remote host: install it there",
      );}
  }
}

/** The `doctor` command. */
export function doctorCommand(): Command {
  return new Command("doctor")
    .description("check each job's programs, login, destination folder and free space")
    .option("--job <name>", "check only this job")
    .action(async (options: { job?: string }, command: Command) => {
      const config = await loadConfig(resolveConfigPath(globalOptions(command).config));
      const jobs = options.job === undefined
        ? config.jobs
        : config.jobs.filter((job) => job.name === options.job);
      if (jobs.length === 0) {
        throw new UsageError(
          `Cannot check job "${options.job}": no such job in ${config.file} ` +
            `(jobs: ${config.jobs.map((job) => job.name).join(", ")})`,
        );
      }
      const ok = await runDoctor(jobs, (line) => console.log(line));
      if (!ok) throw new Error("Cannot confirm every job will work: fix the FAIL lines above");
    });
}
