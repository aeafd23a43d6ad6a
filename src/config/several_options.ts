/**
 * Several options written as one item of `rsync_options` or `ssh_options` (`"--bwlimit=1000
 * --partial"`, `"Compression=yes ServerAliveInterval=30"`): each item goes to the program as one
 * argument, which then fails every transfer, so `job_rules.ts` refuses it with the list to write,
 * as `file_patterns` refuses several patterns in one.
 *
 * @module
 */

/** rsync options whose value may hold ` -` (a command run on the server, a log format). */
const RSYNC_SPACED_VALUES = /^--(?:rsync-path|out-format|log-file-format|remote-option)=/;

/** ssh options whose value is a command line or several `NAME=value` (`SetEnv=A=1 B=2`). */
const SSH_SPACED_VALUES = /^(?:proxy|local|remote|knownhosts)command=|^setenv=/i;

/** The message for `option`, several written as one: each word an item of the list to write. */
function severalInOne(option: string, what: string): string {
  const words = option.trim().split(/\s+/);
  return `${JSON.stringify(option)} is several ${what} options written as one (each item ` +
    `goes to ${what} as one argument, so every transfer would fail); write each as an item of ` +
    `the list: [${words.map((word) => JSON.stringify(word)).join(", ")}]`;
}

/**
 * Why the `rsync_options` item `option` is refused where it is several options written as one:
 * an option, then a blank and another that starts with `-` (`"--bwlimit=1000 --partial"`);
 * `null` for one option, also one whose value holds blanks (`--rsync-path=sudo -n rsync`).
 */
export function rsyncOptionsInOne(option: string): string | null {
  const text = option.trim();
  if (!text.startsWith("-") || RSYNC_SPACED_VALUES.test(text) || !/\s-/.test(text)) return null;
  return severalInOne(option, "rsync");
}

/**
 * Why the `ssh_options` item `option` is refused where it is several `Key=Value` written as one
 * (`"Compression=yes ServerAliveInterval=30"`: ssh says "extra arguments at end of line"); `null`
 * for one, also one whose value is a command or several (`ProxyCommand=ssh -W %h:%p jump`).
 */
export function sshOptionsInOne(option: string): string | null {
  const text = option.trim();
  if (SSH_SPACED_VALUES.test(text) || !/\s[A-Za-z][A-Za-z0-9]*=/.test(text)) return null;
  return severalInOne(option, "ssh");
}
