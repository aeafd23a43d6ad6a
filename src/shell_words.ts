/**
 * Words of the commands a message suggests for the user to paste into a shell
 * (`chmod 600 ...`, `ssh-keygen -p -f ...`, `image-transfer -c ... init`), and
 * of the commands the daemon sends to a POSIX shell. Paths and names here come
 * from instruments and other users: a name holding `$(...)`, a backtick, a
 * quote or a backslash must reach the command as itself, never run or cut it.
 * The one place such words are quoted.
 *
 * - {@linkcode posixWord}: for `sh`, `bash`, `zsh` (Linux, macOS, a remote
 *   host): single quotes, inside which nothing is special, each `'` written
 *   as `'\''`. For commands that exist only there (`chmod`, `chown`, `sudo`,
 *   `sed`, `loginctl`) and for scripts run by a POSIX shell.
 * - {@linkcode powerShellWord}: for PowerShell, the shell a Windows terminal
 *   opens: single quotes, inside which nothing is expanded (a double-quoted
 *   string would expand `$(...)` and backtick escapes), each single quote
 *   doubled (PowerShell also reads the typographic single quotes as quotes).
 *   cmd.exe is not served: it expands `%NAME%` even inside quotes, so no
 *   quoting keeps every name as itself there.
 * - {@linkcode pastedWord}: the one of the two for this machine, for commands
 *   a user may paste on any system (`ssh-keygen`, `openssl`, `image-transfer`).
 *
 * A plain word (letters, digits and `_@%+=:,./-` for a POSIX shell) stays
 * unquoted, for readability.
 *
 * @module
 */

/** Words a POSIX shell takes as they are. */
const POSIX_PLAIN = /^[\w@%+=:,./-]+$/;

/** Words PowerShell takes as they are (no `@` splatting, no `,` making a list, no `$`). */
const POWERSHELL_PLAIN = /^[\w+=:./\\-]+$/;

/**
 * `word` as one word for a POSIX shell: as it is when plain, else in single
 * quotes with each `'` written as `'\''`. Every character stays literal.
 */
export function posixWord(word: string): string {
  return POSIX_PLAIN.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * `word` as one word for PowerShell: as it is when plain, else in single
 * quotes with each single quote (`'` and the typographic ones PowerShell also
 * ends a string at) doubled. Every character stays literal.
 */
export function powerShellWord(word: string): string {
  return POWERSHELL_PLAIN.test(word)
    ? word
    : `'${word.replace(/['\u2018\u2019\u201a\u201b]/g, (quote) => quote + quote)}'`;
}

/**
 * `word` as one word for the shell a user of this machine pastes into:
 * PowerShell on Windows, a POSIX shell elsewhere.
 *
 * @param os the system the command is for (this one unless told)
 */
export function pastedWord(word: string, os: typeof Deno.build.os = Deno.build.os): string {
  return os === "windows" ? powerShellWord(word) : posixWord(word);
}
