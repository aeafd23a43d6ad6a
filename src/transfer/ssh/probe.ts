/**
 * The probe of an SSH destination (`Transport.probe`, which `doctor` prints):
 * the local programs, a login without a prompt, then one call of
 * `remote/probe.sh`, which uses the same remote helpers as the transfers (the
 * SHA-256 tool they would pick, the free space they would see, whether a disk
 * mounted on the base path when files arrived is still there). Also the
 * remote `df` of the base path that the free-space guard reads.
 *
 * @module
 */
import { posix } from "node:path";
import type { JobConfig } from "../../config/types.ts";
import { CommandError, lastLine } from "../../errors.ts";
import { baseGoneReason, danglingBaseReason, otherBase } from "../base_folder.ts";
import { classifyFailure, type FailureContext, noisyShellReason } from "../classify.ts";
import { type DiskSpace, freeSpaceCheck } from "../../config/free_space.ts";
import { noCommandsReason } from "../no_commands.ts";
import { randomPart } from "../temp_name.ts";
import type { ProbeCheck } from "../transport.ts";
import { UNMOUNTED_BASE } from "./remote_folders.ts";
import { runProcess } from "../../process/run.ts";
import { noSftpReason, sftpSubsystemFailure } from "./sftp_subsystem.ts";
import { buildScript, call, parseResults, type RemoteScript } from "./remote_script.ts";
import type { SshTransport } from "./transport.ts";

/** Every check of an SSH destination, in order; stops where the next ones cannot run. */
export async function probeSshDestination(
  { job, session, context, remoteBase }: SshTransport,
  base: string,
): Promise<ProbeCheck[]> {
  const checks: ProbeCheck[] = [];
  const haveSsh = await probeProgram(checks, "ssh", ["ssh", "-V"], "openssh-client");
  if (job.transfer_method === "rsync") {
    await probeProgram(checks, "rsync", ["rsync", "--version"], "rsync");
  } else {
    await probeProgram(checks, "scp", ["scp"], "openssh-client");
  }
  if (!haveSsh) return checks;
  const timeoutMs = job.transfer_timeout_seconds * 1000;
  const started = performance.now();
  try {
    const run = await session.run(await session.sshArgv(["true"]), { timeoutMs });
    const ms = Math.round(performance.now() - started);
    checks.push(ok("login", `${session.destination} without a password prompt (${ms} ms)`));
    const said = lastLine(new TextDecoder().decode(run.stdout));
    if (said !== "") checks.push(noisyShellCheck(job, said, context));
  } catch (error) {
    // Logged in, but `true` did not run: said as such, not as a login that failed.
    const noCommands = error instanceof CommandError
      ? noCommandsReason(context, error.run, true)
      : null;
    const failure = classifyFailure(error, `log in to ${session.destination}`, context);
    checks.push(fail("login", noCommands ?? failure.message));
    return checks;
  }
  if (job.transfer_method === "scp") {
    checks.push(await sftpCheck(checks, session, context, timeoutMs));
  }
  const where = session.remoteSpec(job.remote_base_path);
  const probeName = `.image-transfer-probe-${randomPart()}`;
  const script = buildScript(["probe", "disk_space", "make_folders"], [
    call("probe_destination", base, probeName),
    call("disk_space", base),
    // Files arrived on a disk mounted there: an empty folder that is no mount point is none.
    ...remoteBase.wasMountPoint
      ? [`${call("check_base_mount", base, "mounted", 0)} || report unmounted`]
      : [],
  ]);
  let results: Map<string, string>;
  try {
    const stdout = await session.runScript(script.text, { timeoutMs });
    results = new Map(parseResults(stdout, script.marker).map((r) => [r.word, r.detail]));
  } catch (error) {
    const detail = error instanceof CommandError ? lastLine(error.run.stderr) : String(error);
    checks.push(fail("remote checks", `cannot run sh on the remote host: ${detail}`));
    return checks;
  }
  // A folder that is not there is not made (a share not mounted would get it on the disk below).
  const folder = results.get("folder") ?? "";
  const nearest = folder.match(/^missing (.*)$/)?.[1];
  const probed = nearest === undefined ? where : session.remoteSpec(nearest);
  const dangling = folder.match(/^dangling (.*)$/s)?.[1];
  if (results.has("unmounted")) {
    checks.push(fail("destination folder", `${where}: ${baseGoneReason(base, UNMOUNTED_BASE)}`));
  } else if (dangling !== undefined) {
    const why = danglingBaseReason(
      base,
      dangling,
      remoteBase.filesArrived,
      context.fromTo,
      " there",
    );
    checks.push(fail("destination folder", `${where}: ${why}`));
  } else if (nearest !== undefined && remoteBase.filesArrived) {
    // As a batch finds it (`make_folders` with `keep`): not made again, nothing sent.
    checks.push(fail("destination folder", `${where}: ${baseGoneReason(base)}`));
  } else if (folder === "not-a-folder") {
    checks.push(fail(
      "destination folder",
      `${where} is a file, not a folder: rename or remove it there, or ${
        otherBase(context.fromTo)
      }`,
    ));
  } else {
    checks.push(
      folder === "exists" ? ok("destination folder", `${where} exists`) : nearest !== undefined
        ? {
          check: "destination folder",
          verdict: "warn",
          detail: `${where} does not exist: the first transfer makes it, in ${probed} (if files ` +
            "arrived there before, it is a share that is not mounted: transfers wait for it)",
        }
        : fail("destination folder", `${where}: no answer from the remote checks`),
    );
    const left = results.get("writable-left");
    checks.push(
      results.has("writable")
        ? ok("destination writable", `created and removed a test folder in ${probed}`)
        : left !== undefined
        ? {
          check: "destination writable",
          verdict: "warn",
          detail: `created a test folder in ${probed}, but could not remove it (${left}): ` +
            `${probed}/${probeName} is left there; remove it`,
        }
        : fail(
          "destination writable",
          `${probed}: ${results.get("not-writable") ?? "no answer"}; make the folder writable ` +
            `for ${session.destination}`,
        ),
    );
  }
  checks.push(
    freeSpaceCheck(
      where,
      diskSpaceOfResult(results.get("disk-space") ?? ""),
      job.min_free_space,
      `df -Pk gave no answer for ${where}`,
    ),
  );
  if (job.verify_transfer === "checksum") {
    const tool = results.get("hash-tool") ?? "";
    checks.push(
      tool !== "" ? ok("remote SHA-256", tool) : fail(
        "remote SHA-256",
        "none of openssl, sha256sum or shasum found: install one there (e.g. coreutils) " +
          "or set verify_transfer: size",
      ),
    );
  }
  if (job.transfer_method === "rsync") {
    const version = results.get("rsync") ?? "";
    checks.push(
      version !== "" ? ok("remote rsync", version) : fail(
        "remote rsync",
        "rsync not found on the PATH of the remote host's logins for commands: install it " +
          'there, or give its path with rsync_options: ["--rsync-path=/path/to/rsync"]',
      ),
    );
  }
  return checks;
}

/**
 * The check of a login shell that printed `said` on a command's output: rsync
 * cannot get through it; scp only where the server starts its SFTP server
 * through the shell (an `sftp-server` program rather than `internal-sftp`).
 */
function noisyShellCheck(job: JobConfig, said: string, context: FailureContext): ProbeCheck {
  const printed = `(it printed: ${JSON.stringify(said.slice(0, 80))})`;
  return job.transfer_method === "rsync"
    ? fail("login shell", `${noisyShellReason(context, "rsync")} ${printed}`)
    : {
      check: "login shell",
      verdict: "warn",
      detail: `${
        noisyShellReason(context, "scp (where the server starts its SFTP server through it)")
      } ${printed}`,
    };
}

/**
 * The check of the server's SFTP subsystem, which scp of OpenSSH 9 and later sends with (the
 * `ssh` check of `checks` gives the version; older ones use the legacy protocol, no SFTP).
 */
async function sftpCheck(
  checks: ProbeCheck[],
  session: SshTransport["session"],
  context: FailureContext,
  timeoutMs: number,
): Promise<ProbeCheck> {
  const version = checks.find((c) => c.check === "ssh")?.detail.match(/OpenSSH_(\d+)\./)?.[1];
  if (version !== undefined && Number(version) < 9) {
    return { check: "sftp", verdict: "skip", detail: `scp of OpenSSH ${version} does not use it` };
  }
  const code = await sftpSubsystemFailure(session, timeoutMs);
  return code === null
    ? ok("sftp", "the server starts its SFTP subsystem, which scp sends with")
    : fail("sftp", noSftpReason(context, code));
}

function ok(check: string, detail: string): ProbeCheck {
  return { check, verdict: "ok", detail };
}

function fail(check: string, detail: string): ProbeCheck {
  return { check, verdict: "fail", detail };
}

/** Add the check of a local program (its version line); whether it is there. */
async function probeProgram(
  checks: ProbeCheck[],
  name: string,
  argv: string[],
  debianPackage: string,
): Promise<boolean> {
  try {
    const result = await runProcess(argv, { timeoutMs: 10_000 });
    const out = new TextDecoder().decode(result.stdout).trim() || result.stderr;
    checks.push(ok(name, out.split("\n")[0].trim()));
    return true;
  } catch (error) {
    // scp has no version option: its usage text (exit code 1) proves it is installed.
    if (error instanceof CommandError && error.run.code !== null) {
      checks.push(ok(name, "installed"));
      return true;
    }
    checks.push(
      fail(name, `not found on PATH; install it (Debian/Ubuntu: apt install ${debianPackage})`),
    );
    return false;
  }
}

/**
 * The remote script (`remote/disk_space.sh`) asking for the space of the file
 * system holding `base` (or its nearest existing parent).
 */
export function remoteDiskSpaceScript(base: string): RemoteScript {
  return buildScript("disk_space", [call("disk_space", posix.normalize(base))]);
}

/** The space a {@linkcode remoteDiskSpaceScript} reported, or `null` for no answer. */
export function parseRemoteDiskSpace(script: RemoteScript, stdout: string): DiskSpace | null {
  const result = parseResults(stdout, script.marker).find((r) => r.word === "disk-space");
  return result ? diskSpaceOfResult(result.detail) : null;
}

/** The space of a `disk-space TOTAL_KIB AVAILABLE_KIB` result's detail, or `null`. */
function diskSpaceOfResult(detail: string): DiskSpace | null {
  const match = detail.match(/^(\d+) (\d+)$/);
  if (!match) return null;
  return { totalBytes: Number(match[1]) * 1024, availableBytes: Number(match[2]) * 1024 };
}
