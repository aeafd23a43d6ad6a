/**
 * The daemon's own places, checked before a start (see `start_checks.ts`) as the config file is
 * (`config/file_mode.ts`): a `state_dir` and the folder of a `log_file` that another account
 * could write in (group or others may write, the sticky bit or not, or another account than root
 * and the daemon's owns it) are refused, as whoever can write there can put a link in place of
 * the daemon's files (`reports/`, the log) that makes it write, and make private, whatever that
 * link leads to, or change `daemon.json`, which `status` trusts. And a `log_file` that is not a
 * log this program wrote (a link, a file with other names, another file: `log/logging.ts`'s
 * `notOurLog`), or that another account owns. POSIX modes and owners only; on Windows only the
 * log file itself is looked at.
 *
 * @module
 */
import { dirname } from "node:path";
import { othersOwn, ownedByAnother, writableByOthers } from "../config/file_mode.ts";
import { topKeyPlace } from "../config/key_lines.ts";
import type { Config } from "../config/types.ts";
import { ConfigError } from "../errors.ts";
import { notOurLog } from "../log/logging.ts";
import { posixWord } from "../shell_words.ts";

/**
 * What is wrong with the config's `state_dir` and `log_file` (see the module's doc), one line
 * each, with the key's line and what to do.
 *
 * @param runsAs user id of the account the daemon runs as (the current one unless told)
 */
export async function untrustedOwnFiles(config: Config, runsAs?: number | null): Promise<string[]> {
  const account = runsAs === undefined ? (Deno.build.os === "windows" ? null : Deno.uid()) : runsAs;
  const problems: string[] = [];
  const top = (key: "state_dir" | "log_file", problem: string | null) => {
    if (problem !== null) problems.push(`${topKeyPlace(config, key)}: ${problem}`);
  };
  top(
    "state_dir",
    await folderProblem(
      config.state_dir,
      account,
      "links in place of the daemon's files (reports/, the ledger) that make it write " +
        "elsewhere, or change daemon.json, which status trusts",
    ),
  );
  const log = config.log_file;
  if (log === "") return problems;
  const foreign = notOurLog(log);
  if (foreign !== null) {
    top("log_file", `refusing ${log}: ${foreign}`);
    return problems;
  }
  const owner = await Deno.lstat(log).then((info) => info.uid, () => null);
  if (othersOwn(owner, account)) {
    top(
      "log_file",
      `refusing ${log}: ${ownedByAnother(owner!, account!)}, who can read what the daemon ` +
        `logs; fix it with: sudo chown ${account} ${posixWord(log)}, or give a new file`,
    );
    return problems;
  }
  top(
    "log_file",
    await folderProblem(
      await nearestFolder(dirname(log)),
      account,
      `a link in place of ${log} that makes the daemon append to, and make private, whatever ` +
        "it leads to",
      log,
    ),
  );
  return problems;
}

/**
 * Refuse the config's `state_dir` and `log_file` (see {@linkcode untrustedOwnFiles}) before the
 * log file is opened. @throws {ConfigError} naming each with its key's line
 */
export async function assertOwnFilesTrusted(config: Config): Promise<void> {
  const problems = await untrustedOwnFiles(config);
  if (problems.length > 0) throw new ConfigError(problems.join("\n"), { file: config.file });
}

/**
 * Why the folder `folder` (that of `file`, when given) is not the daemon's alone: writable by
 * others (with the sticky bit too: they may still make names in it), or another account's; what
 * another account could do there is `could`. `null` when it is, or is missing (made private).
 */
async function folderProblem(
  folder: string,
  account: number | null,
  could: string,
  file?: string,
): Promise<string | null> {
  const info = await Deno.stat(folder).catch(() => null);
  if (info === null || !info.isDirectory || Deno.build.os === "windows") return null;
  const which = file === undefined ? folder : `the folder ${folder} of ${file}`;
  const writable = await writableByOthers(folder);
  if (writable !== undefined) {
    return `refusing ${which}: it is ${writable}, and whoever can write there can put ` +
      `${could}; fix it with: chmod go-w ${posixWord(folder)}, or give ` +
      (file === undefined ? "a folder" : "a file in a folder") + " only this account can write";
  }
  if (!othersOwn(info.uid, account)) return null;
  return `refusing ${which}: ${ownedByAnother(info.uid!, account!)}, and its owner can put ` +
    `${could}; fix it with: sudo chown ${account} ${posixWord(folder)}, or give ` +
    (file === undefined ? "a folder" : "a file in a folder") + " of that account's";
}

/** `folder`, or the nearest folder above it that exists (where the missing ones are made). */
async function nearestFolder(folder: string): Promise<string> {
  for (let at = folder;; at = dirname(at)) {
    if (await Deno.stat(at).then(() => true, () => false) || dirname(at) === at) return at;
  }
}
