/**
 * The probe of an `ftp` destination (`doctor`): connect, TLS, login, create the base folder,
 * write a probe under a hidden temporary name, check its size, rename it,
 * remove it, and say what the server offers for checksums and free space.
 *
 * @module
 */
import { Readable } from "node:stream";
import type { ProbeCheck } from "../transport.ts";
import { tempNameFor } from "../temp_name.ts";
import { freeSpaceCheck } from "../../config/free_space.ts";
import { checksumCheck } from "./read_back.ts";
import { baseGoneReason } from "../base_folder.ts";
import {
  classifyFtpError,
  connectFtp,
  type FtpConnection,
  type FtpJob,
  ftpUser,
  SESSION_REUSE_FIX,
} from "./connect.ts";

const PROBE = new TextEncoder().encode("image-transfer doctor\n");

/** Names of the connection steps as `doctor` prints them. */
const STEP_NAMES = { connect: "connect", tls: "TLS", login: "login", setup: "session setup" };

/**
 * Check `job`'s FTP destination: one {@linkcode ProbeCheck} per check (`arrivedBefore`: files
 * arrived in its base folder before, which is then not made again). Never throws.
 */
export async function probeFtpDestination(
  job: FtpJob,
  arrivedBefore = false,
): Promise<ProbeCheck[]> {
  const checks: ProbeCheck[] = [];
  const report = {
    line: (verdict: ProbeCheck["verdict"], check: string, detail: string) =>
      void checks.push({ verdict, check, detail }),
  };
  await checkFtpDestination(job, report, arrivedBefore);
  return checks;
}

async function checkFtpDestination(
  job: FtpJob,
  report: { line(verdict: ProbeCheck["verdict"], check: string, detail: string): void },
  arrivedBefore: boolean,
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
    const off = job.fromTo ? "an ftp:// --to (no TLS)" : "ftp_tls: off";
    report.line("warn", "TLS", `${off}: the password and the data travel readable`);
  }
  const { client, features, home } = connection;
  try {
    const base = job.remote_base_path.startsWith("/")
      ? job.remote_base_path
      : `${home.replace(/\/$/, "")}/${job.remote_base_path}`;
    // A folder that is not there is not made (a share not mounted would get it on the disk
    // below): the folder the first transfer makes it in is probed instead.
    let folder = base.replace(/\/$/, "");
    const enters = (path: string) => client.send(`CWD ${path}`).then(() => true, () => false);
    if (!(await enters(base))) {
      const made = folder;
      if (await client.size(made).then(() => true, () => false)) {
        report.line("fail", "destination folder", `${made} is a file, not a folder; give a folder`);
        return;
      }
      if (arrivedBefore) {
        // As a batch finds it: not made again, nothing sent (see `ensureFolders`).
        report.line("fail", "destination folder", `${made}: ${baseGoneReason(made)}`);
        return;
      }
      // The first transfer makes the folders missing above it too: probed where they start.
      const up = (path: string) => path.slice(0, path.lastIndexOf("/")) || "/";
      folder = up(folder);
      while (folder !== "/" && !(await enters(folder))) folder = up(folder);
      report.line(
        "warn",
        "destination folder",
        `${made} does not exist: the first transfer makes it, in ${folder} (if files ` +
          "arrived there before, it is a share that is not mounted: transfers wait for it)",
      );
    }
    let step = "write";
    let checksum: Awaited<ReturnType<typeof checksumCheck>> | null = null;
    const probe = `${folder.replace(/\/$/, "")}/${tempNameFor("doctor-probe")}`;
    const renamed = `${folder.replace(/\/$/, "")}/${tempNameFor("doctor-probe-renamed")}`;
    try {
      await client.uploadFrom(Readable.from([PROBE]), probe);
      const size = await client.size(probe);
      if (size !== PROBE.length) throw new Error(`SIZE says ${size} bytes, wrote ${PROBE.length}`);
      report.line("ok", "write", `${folder} (SIZE matches)`);
      step = "rename";
      await client.rename(probe, renamed);
      report.line("ok", "rename", "RNFR/RNTO within the destination folder");
      checksum = await checksumCheck(client, features, job.verify_transfer, renamed);
    } catch (error) {
      const reason = classifyFtpError(error, job, step).message.replace(/\.$/, "");
      const fix = /session reuse/.test(reason)
        ? ""
        : job.ftp_tls === "required" && /FIN packet/.test(String(error))
        ? `; the data connection was closed: ${SESSION_REUSE_FIX}`
        : `; check that ${ftpUser(job)} may write ${folder}`;
      report.line("fail", step, `${reason}${fix}`);
      return;
    } finally {
      await client.sendIgnoringError(`DELE ${probe}`).catch(() => {});
      await client.sendIgnoringError(`DELE ${renamed}`).catch(() => {});
    }
    if (checksum !== null) report.line(checksum.verdict, "checksum", checksum.detail);
    const avbl = await client.sendIgnoringError(`AVBL ${base}`).catch(() => null);
    const free = avbl !== null && avbl.code === 213 ? Number(avbl.message.slice(4).trim()) : NaN;
    const { verdict, detail } = freeSpaceCheck(
      base,
      Number.isFinite(free) ? { availableBytes: free, totalBytes: null } : null,
      job.min_free_space,
      "the server does not report its free space (no AVBL)",
    );
    report.line(verdict, "free space", detail);
  } finally {
    client.close();
  }
}
