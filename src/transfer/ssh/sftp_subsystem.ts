/**
 * Whether the SFTP subsystem of an SSH destination starts, which scp needs: OpenSSH 9's scp sends
 * with the SFTP protocol by default (image-transfer never passes `-O`, the legacy protocol, whose
 * remote paths go through the remote login shell). A server whose sshd_config has no
 * `Subsystem sftp` line takes logins and commands (the one-call batches of small files arrive) but
 * refuses the subsystem; through a shared connection scp then says only `Connection closed`, as
 * of a connection lost. Asked with `ssh -s DEST sftp`, its input closed, so the SFTP server ends
 * at once: `doctor` asks it, and the scp transport asks it after such a failure, so that it is
 * said as what it is (a fix on the server), not as a host that cannot be reached.
 *
 * @module
 */
import { CommandError, type TransferErrorKind } from "../../errors.ts";
import { ExplainedFailure, type FailureContext } from "../classify.ts";
import type { SshSession } from "./connection.ts";

/**
 * `null` where the SFTP subsystem of `session`'s destination starts; else how `ssh -s DEST sftp`
 * ended (255: the server has no such subsystem; 127: the program its line names is not there),
 * where a login works at the same time (ssh says 255 of a lost connection too). `null` as well
 * where neither could be asked (a connection lost, a timeout): nothing is known then.
 */
export async function sftpSubsystemFailure(
  session: SshSession,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<number | null> {
  try {
    const argv = await session.sshArgv(["sftp"]);
    argv.splice(argv.lastIndexOf("--"), 0, "-s");
    await session.run(argv, { timeoutMs, signal });
    return null;
  } catch (error) {
    if (!(error instanceof CommandError) || error.run.timedOut || error.run.code === null) {
      return null;
    }
    try {
      await session.run(await session.sshArgv(["true"]), { timeoutMs, signal });
    } catch {
      return null;
    }
    return error.run.code;
  }
}

/**
 * Why scp cannot send to a server where logins work but the SFTP subsystem does not start
 * (`code`: see {@linkcode sftpSubsystemFailure}), and what to do.
 */
export function noSftpReason(c: FailureContext, code: number): string {
  const why = code === 255
    ? `the SSH server of ${c.host} offers no SFTP subsystem (its sshd_config has no ` +
      '"Subsystem sftp" line)'
    : `the SFTP server of ${c.host} does not start (the program the "Subsystem sftp" line of ` +
      `its sshd_config names ${code === 127 ? "is not installed" : `ends with exit code ${code}`})`;
  return `${why}, which scp uses (OpenSSH 9 and later send with the SFTP protocol); logins ` +
    'work, so the host is up: add "Subsystem sftp internal-sftp" to its sshd_config and reload ' +
    `sshd, or use ${c.fromTo ? "--method rsync" : "transfer_method: rsync"}`;
}

/**
 * What an scp call's failure `error` was, where scp said only `Connection closed`: the server's
 * SFTP subsystem not starting while logins work (a failure of `kind`: `fatal`, needing a fix
 * there, for a file that can go by scp only), else `null` (a connection lost, as it says).
 */
export async function scpClosedBySftp(
  error: unknown,
  session: SshSession,
  context: FailureContext,
  options: { timeoutMs: number; signal: AbortSignal; kind: TransferErrorKind },
): Promise<ExplainedFailure | null> {
  const { timeoutMs, signal, kind } = options;
  if (!(error instanceof CommandError) || error.run.timedOut || signal.aborted) return null;
  if (!/Connection closed/.test(error.run.stderr)) return null;
  const code = await sftpSubsystemFailure(session, timeoutMs, signal);
  return code === null
    ? null
    : new ExplainedFailure(noSftpReason(context, code), kind, { cause: error });
}
