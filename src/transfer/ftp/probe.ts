/**
 * The probe of an `ftp` destination (`doctor`): connect, TLS, login, create the base folder,
 * write a probe under a hidden temporary name, check its size, rename it,
 * remove it, and say what the server offers for checksums and free space.
 *
 * @module
 */
import { Readable } from "node:stream";
import type { JobConfig } from "../../config/types.ts";
import type { ProbeCheck } from "../transport.ts";
import {
  classifyFtpError,
  connectFtp,
  type FtpConnection,
  ftpUser,
  SESSION_REUSE_FIX,
} from "./connect.ts";
import { tempNameFor } from "../temp_name.ts";

/** Below this much free space (where the server reports it), `doctor` fails, as for SSH. */
const MIN_FREE_BYTES = 1024 ** 3;

const PROBE = new TextEncoder().encode("image-transfer doctor\n");

/** Names of the connection steps as `doctor` prints them. */
const STEP_NAMES = { connect: "connect", tls: "TLS", login: "login", setup: "session setup" };

/** Check `job`'s FTP destination: one {@linkcode ProbeCheck} per check. Never throws. */
export async function probeFtpDestination(job: JobConfig): Promise<ProbeCheck[]> {
  const checks: ProbeCheck[] = [];
  const report = {
    line: (verdict: ProbeCheck["verdict"], check: string, detail: string) =>
      void checks.push({ verdict, check, detail }),
  };
  await checkFtpDestination(job, report);
  return checks;
}

async function checkFtpDestination(
  job: JobConfig,
  report: { line(verdict: ProbeCheck["verdict"], check: string, detail: string): void },
): Promise<void> {
  const order: (keyof typeof STEP_NAMES)[] = job.ftp_tls === "required"
    ? ["connect", "tls", "login", "setup"]
    : ["connect", "login", "setup"];
  let next = order[0];
  let connection: FtpConnection;
  try {
    connection = await connectFtp(job, (step, detail) => {
      report.line("ok", STEP_NAMES[step], detail);
      next = order[order.indexOf(step) + 1] ?? "setup";
    });
  } catch (error) {
    report.line("fail", STEP_NAMES[next], classifyFtpError(error, job, next).message);
    return;
  }
  if (job.ftp_tls === "off") {
    report.line("warn", "TLS", "ftp_tls: off: the password and the data travel readable");
  }
  const { client, features, home } = connection;
  try {
    const base = job.remote_base_path.startsWith("/")
      ? job.remote_base_path
      : `${home.replace(/\/$/, "")}/${job.remote_base_path}`;
    let step = "write";
    const probe = `${base.replace(/\/$/, "")}/${tempNameFor("doctor-probe")}`;
    const renamed = `${base.replace(/\/$/, "")}/${tempNameFor("doctor-probe-renamed")}`;
    try {
      await client.sendIgnoringError(`MKD ${base}`);
      await client.uploadFrom(Readable.from([PROBE]), probe);
      const size = await client.size(probe);
      if (size !== PROBE.length) throw new Error(`SIZE says ${size} bytes, wrote ${PROBE.length}`);
      report.line("ok", "write", `${base} (SIZE matches)`);
      step = "rename";
      await client.rename(probe, renamed);
      report.line("ok", "rename", "RNFR/RNTO within the destination folder");
    } catch (error) {
      const reason = classifyFtpError(error, job, step).message.replace(/\.$/, "");
      const fix = /session reuse/.test(reason)
        ? ""
        : job.ftp_tls === "required" && /FIN packet/.test(String(error))
        ? `; the data connection was closed: ${SESSION_REUSE_FIX}`
        : `; check that ${ftpUser(job)} may write ${base}`;
      report.line("fail", step, `${reason}${fix}`);
      return;
    } finally {
      await client.sendIgnoringError(`DELE ${probe}`).catch(() => {});
      await client.sendIgnoringError(`DELE ${renamed}`).catch(() => {});
    }
    if (features.hash || features.xsha256) {
      report.line("ok", "checksum", `${features.hash ? "HASH" : "XSHA256"} (SHA-256) offered`);
    } else {
      report.line(
        job.verify_transfer === "checksum" ? "warn" : "skip",
        "checksum",
        "the server offers no HASH or XSHA256: arrivals are verified by size only",
      );
    }
    const avbl = await client.sendIgnoringError(`AVBL ${base}`).catch(() => null);
    const free = avbl !== null && avbl.code === 213 ? Number(avbl.message.slice(4).trim()) : NaN;
    if (Number.isFinite(free)) {
      const gib = `${(free / 1024 ** 3).toFixed(1)} GiB (AVBL)`;
      if (free < MIN_FREE_BYTES) report.line("fail", "free space", `only ${gib}; free some space`);
      else report.line("ok", "free space", gib);
    } else {
      report.line("skip", "free space", "the server does not report it (no AVBL)");
    }
  } finally {
    client.close();
  }
}
