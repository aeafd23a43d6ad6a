/**
 * Sorting failures of ssh, scp, rsync and remote commands into retry,
 * retry-later and fatal, with a message that says what to do.
 *
 * @module
 */
import {
  CommandError,
  DESCRIPTOR_SHORTAGE_ADVICE,
  guardedPathReason,
  isDescriptorShortage,
  lastLine,
  TransferError,
  type TransferErrorKind,
} from "../errors.ts";
import { pastedWord } from "../shell_words.ts";
import { otherBase } from "./base_folder.ts";
import { noCommandsReason } from "./no_commands.ts";
import { tooLongReason } from "./too_long.ts";

/** Who was being talked to, for the what-to-do text. */
export interface FailureContext {
  /** Host name or alias as configured. */
  host: string;
  /** `user@host` or `host`. */
  destination: string;
  port: number | null;
  /** `ssh_identity_file`, for the `ssh` command a message suggests. */
  identityFile?: string | null;
  /** `ssh_options`, for the `ssh` command a message suggests. */
  options?: readonly string[];
  /**
   * Whether the host and user came from `--to` (a run without a config file): messages name that
   * option where they would name remote_host and remote_user.
   */
  fromTo?: boolean;
}

/** A failure reason and how to treat it. */
export interface Classification {
  kind: TransferErrorKind;
  /** Plain-language reason with what to do, without the failed action. */
  reason: string;
  /** The reason says all the tool's words do: they are left out of the message. */
  quiet?: boolean;
}

interface Rule {
  test: RegExp;
  kind: TransferErrorKind | ((match: RegExpMatchArray) => TransferErrorKind);
  reason: (context: FailureContext, match: RegExpMatchArray) => string;
  quiet?: boolean;
}

/** Where the host is given, to be checked or changed there. */
const hostKey = (c: FailureContext) => c.fromTo ? "the host in --to" : "remote_host";
/** Where the login name is given. */
const userKey = (c: FailureContext) => c.fromTo ? "the user in --to" : "remote_user";
/** Where `key` is given: the key, or, in a run without a config file (`fromTo`), its `--set`. */
export const keyGiven = (key: string, fromTo?: boolean) => fromTo ? `--set ${key}=\u2026` : key;
/** The `ssh` options of the config (port, identity file, ssh_options), each followed by a space. */
const sshFlags = (c: FailureContext) =>
  (c.port === null ? "" : `-p ${c.port} `) +
  (c.identityFile ? `-i ${wordForShell(c.identityFile)} ` : "") +
  (c.options ?? []).map((option) => `-o ${wordForShell(option)} `).join("");
/**
 * `word` as one word of a command to paste (quoted when it holds anything but plain characters);
 * a leading `~/` stays outside the quotes, where the shell makes it the home folder, as ssh does.
 */
const wordForShell = (word: string) =>
  word.startsWith("~/") ? `~/${pastedWord(word.slice(2))}` : pastedWord(word);
/**
 * The `ssh` command that asks whether to accept the host key: the config's options, where they
 * refuse to ask (`StrictHostKeyChecking`, `BatchMode`), overruled first (ssh takes an option's
 * first value).
 */
const acceptCommand = (c: FailureContext) =>
  "ssh " +
  (optionValue(c, "StrictHostKeyChecking") === null ? "" : "-o StrictHostKeyChecking=ask ") +
  (optionValue(c, "BatchMode") === null ? "" : "-o BatchMode=no ") +
  `${sshFlags(c)}${c.destination}`;
/** The value of ssh option `name` among the job's `ssh_options` (the first one, as ssh takes). */
const optionValue = (c: FailureContext, name: string) => {
  for (const option of c.options ?? []) {
    const value = new RegExp(`^\\s*${name}\\s*[=\\s]\\s*(\\S+)`, "i").exec(option)?.[1];
    if (value) return value;
  }
  return null;
};
/** The known-hosts file `ssh_options` name (`UserKnownHostsFile`, its first file), or `null`. */
const knownHostsFile = (c: FailureContext) => optionValue(c, "UserKnownHostsFile");
/** The port: `ssh_port`, else a `Port=` of `ssh_options`, else `null` (ssh's own default). */
const portOf = (c: FailureContext) => c.port ?? optionValue(c, "Port");
const keyscanCommand = (c: FailureContext) =>
  `ssh-keyscan ${portOf(c) === null ? "" : `-p ${portOf(c)} `}${c.host} >> ${
    wordForShell(knownHostsFile(c) ?? "~/.ssh/known_hosts")
  }`;
const keygenRemove = (c: FailureContext) => {
  const file = knownHostsFile(c);
  return `ssh-keygen ${file === null ? "" : `-f ${wordForShell(file)} `}-R '${knownHostsName(c)}'`;
};
const connectionLost = (c: FailureContext) =>
  `the connection to ${c.host} failed: check that the host is up and reachable and that sshd ` +
  `listens on port ${portOf(c) ?? "22 (or the Port of your ~/.ssh/config)"}`;
const knownHostsName = (c: FailureContext) =>
  portOf(c) === null ? c.host : `[${c.host}]:${portOf(c)}`;

/**
 * Why `tools` fail through a login shell of the destination that prints text
 * for commands (rsync's protocol and SFTP's are read from its output), and
 * what to do.
 */
export function noisyShellReason(c: FailureContext, tools = "scp and rsync"): string {
  return `the login shell of ${c.destination} prints text for non-interactive sessions (an ` +
    `echo or a program in ~/.bashrc, ~/.profile or /etc/bash.bashrc there), which ${tools} ` +
    `cannot get through: make them print nothing unless the shell is interactive (e.g. begin ` +
    `~/.bashrc with: [[ $- == *i* ]] || return), then check that "ssh ${sshFlags(c)}` +
    `${c.destination} true" prints nothing`;
}

/**
 * A source file of this machine that scp or rsync could not read: scp's SFTP client (`open local`,
 * `fstat local`, `read local`, ...), rsync's sender (`send_files failed to open`, `read errors
 * mapping`, `link_stat`); the path (quoted, as each tool quotes it) and the system's words.
 */
const LOCAL_READ =
  /(?:^|\n)(?:\S*scp: )?[a-z]+ local "((?:[^"\n]|"(?!: ))*)": ([^\n]*)|rsync: (?:\[sender\] )?(?:send_files failed to open|read errors mapping|link_stat|readlink_stat) "((?:[^"\n]|"(?!(?: failed)?: ))*)"(?: failed)?: ([^\n]*?)(?: \(\d+\))?(?:\n|$)/;

/**
 * Why a source file of this machine could not be read (`match`: of {@linkcode LOCAL_READ}): its
 * file system does not answer (a share), it vanished, or it may not be read. Said as
 * `sourceUnreadable` (`source.ts`) says it where the daemon reads a source itself: the watch
 * folder's problem (the pipeline asks whether it can be read now), never the destination's (a
 * tool out of open files is the first rule's).
 */
function localReadReason(match: RegExpMatchArray): string {
  const path = match[1] ?? match[3], words = (match[2] ?? match[4]).trim();
  if (SHARE_GONE_WORDS.test(words)) {
    return `cannot read the source file ${path}: its file system does not answer (${words}); ` +
      "a share unmounted, or its server or client gone? It is tried again";
  }
  if (/No such file or directory/i.test(words)) {
    return `the source file ${path} vanished before it was sent`;
  }
  return `cannot read the source file ${path} (${words}); fix its permissions`;
}

/** The system's words for a file system that does not answer (see `shareGone` in `source.ts`). */
const SHARE_GONE_WORDS =
  /Transport endpoint is not connected|Input\/output error|Stale (?:NFS )?file handle|Host is down|Connection timed out|Software caused connection abort/i;

/** Checked in order; the first match wins. */
const RULES: Rule[] = [
  {
    // ssh, scp or rsync out of file descriptors on this machine (before the source-read rule).
    test: /Too many open files/i,
    kind: "retry",
    reason: () => DESCRIPTOR_SHORTAGE_ADVICE,
  },
  {
    test: /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for \S+ has changed/,
    kind: "fatal",
    reason: (c) =>
      `the host key of ${c.host} has CHANGED (someone may be intercepting the connection); ` +
      `if the server was reinstalled or its key replaced on purpose, remove the old key with ` +
      `"${keygenRemove(c)}" and run "${acceptCommand(c)}" once to accept the new one`,
  },
  {
    test: /Host key verification failed|No \S+ host key is known|host key is not known/i,
    kind: "fatal",
    reason: (c) =>
      `the host key of ${c.host} is not known: run "${
        acceptCommand(c)
      }" once to accept the host key, ` +
      `or add it with "${keyscanCommand(c)}" (check the fingerprint)`,
  },
  {
    // ssh warns of a key it cannot read and goes on without it: the refusal is not the server's.
    test:
      /Identity file (.+) not accessible: ([^\n]+?)\.?\n[\s\S]*Permission denied \(|Permission denied \([\s\S]*Identity file (.+) not accessible: ([^\n]+?)\.?$/m,
    kind: "fatal",
    reason: (c, [, file, why, fileAfter, whyAfter]) =>
      `authentication was refused for ${c.destination}: ${
        keyGiven("ssh_identity_file", c.fromTo)
      }` +
      ` ${file ?? fileAfter} cannot be read (${why ?? whyAfter}); put the key back or fix the path`,
  },
  {
    test:
      /Permission denied \((?:publickey|password|keyboard|gssapi|hostbased)|Too many authentication failures|Authentication failed/,
    kind: "fatal",
    reason: (c) =>
      `authentication was refused for ${c.destination}: install your public key in the remote ` +
      `~/.ssh/authorized_keys (e.g. with ssh-copy-id), check ${userKey(c)} and ${
        keyGiven("ssh_identity_file", c.fromTo)
      } ` +
      `(keys with a passphrase need ssh-agent), then test with "ssh -o BatchMode=yes ` +
      `${sshFlags(c)}${c.destination} true"`,
  },
  {
    test: /Cannot execute command-line and remote command/,
    kind: "fatal",
    reason: (c) =>
      `a RemoteCommand is set for ${c.host} (in its Host entry of ~/.ssh/config, or in ` +
      "/etc/ssh/ssh_config), so ssh refuses to run image-transfer's commands there: remove it " +
      `from that entry, or give ${hostKey(c)} a Host alias (same HostName) without it`,
  },
  {
    // rsync and scp (its SFTP server started through the login shell) read the shell's output.
    test:
      /is your shell clean|Ensure the remote shell produces no output|Received message too long/,
    kind: "fatal",
    reason: (c) => noisyShellReason(c),
  },
  {
    test:
      /Bad configuration option|command-line(?: line)?: line \d+|Unsupported option|keyword \S+ extra arguments|Bad port|missing argument|unknown option|syntax or usage error/i,
    kind: "fatal",
    reason: (c) =>
      `an option is not understood: check ${keyGiven("ssh_options", c.fromTo)} and ` +
      `${keyGiven("rsync_options", c.fromTo)}${c.fromTo ? "" : " in the config"}`,
  },
  {
    test: /rsync: (?:command )?not found|\/rsync: No such file or directory|rsync: not found/,
    kind: "fatal",
    reason: (c) =>
      `rsync is not installed on ${c.host} (or not on the PATH of its logins for commands): ` +
      `install it there, give its path with ${
        c.fromTo
          ? `--set 'rsync_options=["--rsync-path=/path/to/rsync"]'`
          : 'rsync_options: ["--rsync-path=/path/to/rsync"]'
      }, or use ${c.fromTo ? "--method scp" : "transfer_method: scp"}`,
  },
  {
    // Before the remote words: a source it may not read says "Permission denied" too.
    test: LOCAL_READ,
    // A source it may not read needs a fix first (as sourceUnreadable says); else retried.
    kind: (match) => / fix its permissions$/.test(localReadReason(match)) ? "fatal" : "retry",
    reason: (_c, match) => localReadReason(match),
  },
  {
    test: /Could not resolve hostname|Name or service not known|nodename nor servname/,
    kind: "retry",
    reason: (c) =>
      `cannot resolve the host name ${c.host}: check ${hostKey(c)} (or the HostName of that ` +
      `~/.ssh/config alias) and DNS`,
  },
  {
    // A name past 255 bytes, or a path past PATH_MAX, there: never taken, whatever is retried.
    test: /File name too long/,
    kind: "fatal",
    reason: (c) => tooLongReason(undefined, c.fromTo),
  },
  {
    // tar says a write cut short by a full disk without the system's words. The words (the
    // file, the remote path, "No space left on device") add nothing to the action and reason.
    test: /No space left on device|Disk quota exceeded|quota exceeded|Wrote only \d+ of \d+ bytes/i,
    kind: "retry-later",
    reason: (c, [words]) =>
      /quota/i.test(words)
        ? `the remote user's disk quota on ${c.host} is used up (quota exceeded): free some of ` +
          `its space there, have the quota raised, or ${otherBase(c.fromTo)}`
        : `the destination disk on ${c.host} is full (no space left on device): free some ` +
          `space on it, or ${otherBase(c.fromTo)}`,
    quiet: true,
  },
  {
    test: /Read-only file system/,
    kind: "retry-later",
    reason: (c) =>
      `the destination file system on ${c.host} is read-only: remount it read-write or ` +
      otherBase(c.fromTo),
  },
  {
    test: /Permission denied|Operation not permitted/,
    kind: "retry-later",
    reason: (c) =>
      `the remote user on ${c.host} may not write there (permission denied): fix the owner or ` +
      `permissions of the destination folder, or ${otherBase(c.fromTo)}`,
  },
  {
    // Cut once it was made (words of a connection never made are the rule below's).
    test:
      /^(?![\s\S]*(?:connect to host|kex_exchange_identification|Connection refused|banner exchange|timed out))[\s\S]*?(?:Connection reset|Broken pipe|lost connection|Connection to \S+ closed by remote host|Software caused connection abort)/i,
    kind: "retry",
    reason: (c) =>
      `the connection to ${c.host} failed: it was cut during a call (the server ended the ` +
      "session, or the network dropped it); it is tried again (if it keeps happening, the " +
      "server's sshd log says why)",
  },
  {
    test:
      /Connection refused|Connection timed out|timed out|Connection reset|Broken pipe|lost connection|Network is unreachable|No route to host|Connection closed|connection unexpectedly closed|kex_exchange_identification|Connection to \S+ closed|Software caused connection abort|Timeout, server/i,
    kind: "retry",
    reason: (c) => connectionLost(c),
  },
];

/**
 * What tar or cat said of a batch received in one call (`words`), for the copy named `name`: a
 * name too long for the file system there is the named file's alone; the others go again.
 */
export function receivedFor(words: string, name: string): string {
  if (!/File name too long/.test(words)) return words;
  if (words.includes(`: ${name}: `) || words.includes(`/${name}: `)) return words;
  return "another file of its batch has a name too long for the destination's file system; " +
    "this one is sent again";
}

/** rsync exit codes that mean the connection, not the files, failed. */
const RSYNC_NETWORK_CODES = new Set([10, 12, 30, 35]);

/** Classify error text from ssh, scp, rsync or a remote command. */
export function classifyText(
  text: string,
  context: FailureContext,
  code: number | null = null,
  tool = "",
): Classification {
  for (const rule of RULES) {
    const match = text.match(rule.test);
    if (!match) continue;
    const kind = typeof rule.kind === "function" ? rule.kind(match) : rule.kind;
    return { kind, reason: rule.reason(context, match), quiet: rule.quiet };
  }
  if (code === 255 || (tool === "rsync" && code !== null && RSYNC_NETWORK_CODES.has(code))) {
    return { kind: "retry", reason: connectionLost(context) };
  }
  return { kind: "retry", reason: COMMAND_FAILED };
}

/**
 * Signals that only a kill sends (the daemon's own kills are a timeout or a
 * stop, said otherwise); a SIGPIPE, say, comes of a connection lost.
 */
const KILLS = new Set(["SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"]);

/** What {@linkcode classifyText} says of a failure no rule knows. */
const COMMAND_FAILED = "the command failed";

/**
 * How a program that failed for no reason a rule knows ended: killed by a
 * signal the daemon did not send (its own kills are a timeout or a stop), or
 * its exit code.
 */
function howItEnded(tool: string, run: { code: number | null; signal: string | null }): string {
  if (run.signal !== null && KILLS.has(run.signal)) {
    return `${tool} was killed by ${run.signal}, not by image-transfer (the out-of-memory ` +
      "killer, or a kill of its process)";
  }
  if (run.signal !== null) return `${tool} was ended by ${run.signal}`;
  return run.code === null ? COMMAND_FAILED : `${tool} ended with exit code ${run.code}`;
}

/**
 * What a remote command said of its failure, passed on by a script's result line (tar or cat
 * receiving a batch's copies): classified by its words, as a failed command's error output is.
 */
export class RemoteFailure extends Error {
  override name = "RemoteFailure";
}

/**
 * A failure whose reason (with what to do) and kind are known where it happened, though not the
 * action that failed: {@linkcode classifyFailure} says it as `Cannot ACTION: REASON`.
 */
export class ExplainedFailure extends Error {
  override name = "ExplainedFailure";
  readonly kind: TransferErrorKind;

  constructor(reason: string, kind: TransferErrorKind, options: { cause?: unknown } = {}) {
    super(reason, options);
    this.kind = kind;
  }
}

/**
 * Turn a failed command (or any error) met while doing `action` into a
 * {@linkcode TransferError} with the failure's kind and what to do.
 */
export function classifyFailure(
  error: unknown,
  action: string,
  context: FailureContext,
): TransferError {
  if (error instanceof TransferError) return error;
  if (error instanceof ExplainedFailure) {
    return new TransferError(`Cannot ${action}: ${error.message}`, error.kind, { cause: error });
  }
  if (error instanceof RemoteFailure) {
    const { kind, reason, quiet } = classifyText(error.message, context);
    const said = reason === COMMAND_FAILED
      ? error.message
      : quiet
      ? reason
      : `${reason} (${error.message})`;
    return new TransferError(`Cannot ${action}: ${said}`, kind, { cause: error });
  }
  if (error instanceof CommandError) {
    const run = error.run;
    const tool = run.argv[0]?.split("/").at(-1) ?? "";
    if (run.timedOut) {
      return new TransferError(
        `Cannot ${action}: ${tool} timed out after ${Math.round(run.durationMs / 1000)} s ` +
          `(${keyGiven("transfer_timeout_seconds", context.fromTo)})`,
        "retry",
        { cause: error },
      );
    }
    if (run.code === null && run.argv.length > 0 && run.signal === null) {
      // Could not start at all: for want of open files, a shortage that passes.
      if (isDescriptorShortage(error)) {
        const said = `${error.message}: ${DESCRIPTOR_SHORTAGE_ADVICE}`;
        return new TransferError(`Cannot ${action}: ${said}`, "retry", { cause: error });
      }
      return new TransferError(`Cannot ${action}: ${error.message}`, "fatal", { cause: error });
    }
    if (run.signal !== null && KILLS.has(run.signal)) {
      // What its helpers said as they lost it (rsync's "error in rsync protocol
      // data stream", from the server's side) is not the cause.
      return new TransferError(`Cannot ${action}: ${howItEnded(tool, run)}`, "retry", {
        cause: error,
      });
    }
    const noCommands = noCommandsReason(context, run); // Before the words rsync makes of it.
    if (noCommands !== null) {
      return new TransferError(`Cannot ${action}: ${noCommands}`, "fatal", { cause: error });
    }
    const classified = classifyText(run.stderr, context, run.code, tool);
    const { kind } = classified;
    const detail = lastLine(run.stderr);
    const reason = classified.reason === COMMAND_FAILED ? howItEnded(tool, run) : classified.reason;
    // Most programs name themselves already ("ssh: Could not resolve hostname ...").
    const said = detail.startsWith(`${tool}:`) ? detail : `${tool}: ${detail}`;
    return new TransferError(
      `Cannot ${action}: ${reason}${detail && !classified.quiet ? ` (${said})` : ""}`,
      kind,
      { cause: error },
    );
  }
  const guarded = guardedPathReason(error);
  if (guarded !== null) return new TransferError(`Cannot ${action}: ${guarded}`, "fatal");
  const message = error instanceof Error ? error.message : String(error);
  return new TransferError(`Cannot ${action}: ${message}`, "retry", { cause: error });
}
