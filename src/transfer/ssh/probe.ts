/**
 * The probe of an SSH destination (`Transport.probe`, which `doctor` prints):
 * the local programs, a login without a prompt, then one call of
 * `remote/probe.sh`, which uses the same remote helpers as the transfers
 * (the SHA-256 tool they would pick, the free space they would see).
 *
 * @module
 */
import type { JobConfig } from "../../config/types.ts";
import { CommandError } from "../../errors.ts";
import { runProcess } from "../../process/run.ts";
import { classifyFailure, type FailureContext, lastLine } from "../classify.ts";
import { buildScript, call, parseResults } from "./remote_script.ts";
import type { SshSession } from "./connection.ts";
import { randomPart } from "../temp_name.ts";
import type { ProbeCheck } from "../transport.ts";

/** Below this much free space at a destination, the probe fails. */
const MIN_FREE_BYTES = 1024 ** 3;

/** Every check of an SSH destination, in order; stops where the next ones cannot run. */
export async function probeSshDestination(
  job: JobConfig,
  session: SshSession,
  base: string,
  context: FailureContext,
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
    await session.run(await session.sshArgv(["true"]), { timeoutMs });
    const ms = Math.round(performance.now() - started);
    checks.push(ok("login", `${session.destination} without a password prompt (${ms} ms)`));
  } catch (error) {
    const failure = classifyFailure(error, `log in to ${session.destination}`, context);
    checks.push(fail("login", failure.message));
    return checks;
  }
  const where = session.remoteSpec(job.remote_base_path);
  const script = buildScript("probe", [
    call("probe_destination", base, `.image-transfer-probe-${randomPart()}`),
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
  const folder = results.get("folder");
  checks.push(
    folder !== undefined ? ok("destination folder", `${where} ${folder}`) : fail(
      "destination folder",
      `${where}: cannot create it (${results.get("folder-failed") ?? "no answer"}); ` +
        "create it on the remote host or fix remote_base_path",
    ),
  );
  checks.push(
    results.has("writable")
      ? ok("destination writable", `created and removed a test folder in ${where}`)
      : fail(
        "destination writable",
        `${where}: ${results.get("not-writable") ?? "no answer"}; make the folder writable ` +
          `for ${session.destination}`,
      ),
  );
  checks.push(freeSpace(results.get("space-left") ?? "", where));
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
      version !== ""
        ? ok("remote rsync", version)
        : fail("remote rsync", "rsync not found on the remote host: install it there"),
    );
  }
  return checks;
}

function ok(check: string, detail: string): ProbeCheck {
  return { check, verdict: "ok", detail };
}

function fail(check: string, detail: string): ProbeCheck {
  return { check, verdict: "fail", detail };
}

function freeSpace(kibText: string, where: string): ProbeCheck {
  if (!/^\d+$/.test(kibText)) return fail("free space", `df -Pk gave no answer for ${where}`);
  const free = Number(kibText) * 1024;
  const amount = free >= 1024 ** 3
    ? `${(free / 1024 ** 3).toFixed(1)} GiB`
    : `${(free / 1024 ** 2).toFixed(0)} MiB`;
  return free >= MIN_FREE_BYTES
    ? ok("free space", `${amount} free at ${where}`)
    : fail("free space", `${amount} free at ${where} (less than 1 GiB: free space there)`);
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
