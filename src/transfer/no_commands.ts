/**
 * A login that works but runs no commands (an sftp-only account, a login shell like nologin):
 * SSH's transfers need a POSIX shell on the server for their remote steps.
 *
 * @module
 */
import { type CommandRun, lastLine } from "../errors.ts";
import type { FailureContext } from "./classify.ts";

/**
 * What a server prints where an account runs no commands: sshd for `ForceCommand internal-sftp`,
 * nologin, rssh.
 */
const NO_COMMANDS =
  /This service allows sftp connections only\.?|This account is currently not available\.?|This account is restricted by rssh\.?/i;

/**
 * Why nothing can be sent through a login that works but runs no commands, quoting what the
 * server said; `null` when `run` shows no such account. Only a command that ended with an exit
 * code of its own counts (ssh's own failures end with 255). `ranTrue`: the command was `true`, so
 * any such exit code shows one, whatever was said.
 */
export function noCommandsReason(
  c: FailureContext,
  run: CommandRun,
  ranTrue = false,
): string | null {
  if (run.code === null || run.code === 0 || run.code === 255 || run.timedOut) return null;
  const text = `${run.stdout ?? ""}\n${run.stderr}`;
  const said = text.match(NO_COMMANDS)?.[0] ?? (ranTrue ? lastLine(text, { cap: 200 }) : undefined);
  if (said === undefined) return null;
  return `logged in to ${c.destination}, but the account runs no commands (an sftp-only ` +
    `account, or a login shell like nologin)${said ? `; the server said: "${said}"` : ""}: ` +
    "image-transfer needs a POSIX shell on the server for its remote steps (making folders, " +
    "checking and renaming the copies, and rsync's own end): ask the server's admin for a login " +
    "shell such as /bin/sh or /bin/bash for that account (and no ForceCommand internal-sftp " +
    `for it), or give ${c.fromTo ? "the user in --to" : "remote_user"} an account that has one`;
}
