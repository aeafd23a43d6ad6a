/**
 * The remote half of an SSH transfer, as POSIX `sh` scripts run with one ssh
 * call per batch: create the destination folders before an upload, then verify
 * each temporary copy (size, SHA-256) and rename it into place.
 *
 * File names only ever appear in these scripts as single-quoted words
 * ({@linkcode shellQuote}); the script reaches the remote `sh -s` on stdin.
 * Results come back one line per item, keyed by index (never by name) and
 * prefixed with a random marker, so names and login-shell noise cannot forge
 * a result.
 *
 * @module
 */
import { shellQuote } from "./ssh.ts";

/**
 * Perl program (no single quotes) that renames `INDEX TEMP FINAL` triples given
 * after the marker, printing `MARKER K INDEX` or `MARKER R INDEX MESSAGE`.
 */
const PERL_RENAME = "$n=shift; $|=0; while(@ARGV>=3){my($i,$t,$f)=splice(@ARGV,0,3); " +
  'if(rename($t,$f)){print "$n K $i\\n"}else{my $m="$!"; $m=~s/[\\r\\n]/ /g; ' +
  'print "$n R $i $m\\n"}}';

/** One temporary copy to check and rename, or to remove. */
export interface FinishEntry {
  /** Index of the item in the batch. */
  index: number;
  /** Remote path of the temporary copy. */
  tempPath: string;
  /** Remote final path; `null` means only remove the temporary copy. */
  finalPath: string | null;
  /** Size the copy must have, or `null` to skip the size check. */
  expectedSize: number | null;
  /** SHA-256 (hex) the copy must have, or `null` to skip the checksum. */
  expectedSha256: string | null;
}

/** What the remote side reported for one item. */
export type FinishResult =
  | { status: "ok" }
  | { status: "missing" }
  | { status: "size-mismatch"; actual: string }
  | { status: "size-unknown" }
  | { status: "checksum-mismatch"; actual: string }
  | { status: "no-hash-tool" }
  | { status: "final-is-folder" }
  | { status: "rename-failed"; message: string };

/** Result lines of a script run, by item index, plus failed folder indexes. */
export interface ScriptReport {
  results: Map<number, FinishResult>;
  /** Folder index → error text of `mkdir`. */
  folderErrors: Map<number, string>;
}

/** A fresh random marker that prefixes every result line. */
export function newMarker(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return `ITX${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Shared head of every script: C locale, no globbing, result helpers. */
function prelude(marker: string): string[] {
  return [
    "LC_ALL=C; export LC_ALL; set -f",
    `N=${marker}`,
    `say() { printf '%s %s\\n' "$N" "$*"; }`,
    `fail() { m=$(printf '%s' "$3" | tr '\\n\\r' '  '); say "$1" "$2" "$m"; }`,
  ];
}

/**
 * A script that creates each folder (with parents) unless it exists, and
 * reports the ones it could not create as `F <index> <message>`.
 */
export function buildMkdirScript(folders: string[], marker: string): string {
  const lines = [
    ...prelude(marker),
    `m() { [ -d "$2" ] && return 0; e=$(mkdir -p -- "$2" 2>&1) || fail F "$1" "$e"; }`,
  ];
  folders.forEach((folder, index) => lines.push(`m ${index} ${shellQuote(folder)}`));
  lines.push("exit 0", "");
  return lines.join("\n");
}

/**
 * A script that, for each entry with a final path, checks the temporary copy
 * (size via one batched `stat`; SHA-256 via `openssl dgst -sha256`, `sha256sum`
 * or `shasum -a 256`, the first that exists),
 * removes it on a mismatch, and otherwise renames it with `mv -f` (same
 * folder, so the rename is atomic). Entries without a final path only have
 * their temporary copy removed.
 */
export function buildFinishScript(entries: FinishEntry[], marker: string): string {
  const lines = prelude(marker);
  const sized = entries.filter((e) => e.finalPath !== null && e.expectedSize !== null);
  if (entries.some((e) => e.finalPath !== null && e.expectedSha256 !== null)) {
    lines.push(
      "H=''",
      // OpenSSL uses the CPU's SHA instructions: ~6x faster than coreutils' sha256sum here.
      "if openssl dgst -sha256 -r </dev/null >/dev/null 2>&1; then H='openssl dgst -sha256 -r'",
      "elif command -v sha256sum >/dev/null 2>&1; then H=sha256sum",
      "elif command -v shasum >/dev/null 2>&1; then H='shasum -a 256'; fi",
    );
  }
  if (sized.length > 0) {
    // One stat call for every size: GNU `stat -c %s`, BSD/macOS `stat -f %z`.
    lines.push(
      "if stat -c %s / >/dev/null 2>&1; then Z='stat -c %s'; else Z='stat -f %z'; fi",
      "c=0; set --",
    );
    for (const e of sized) {
      lines.push(
        `[ -f ${shellQuote(e.tempPath)} ] && { set -- "$@" ${shellQuote(e.tempPath)}; ` +
          `p${e.index}=1; c=$((c+1)); }`,
      );
    }
    lines.push(
      `S=''; [ "$c" -gt 0 ] && S=$($Z -- "$@" 2>/dev/null)`,
      "set -- $S",
      `B=''; [ "$#" -ne "$c" ] && B=1`,
    );
  }
  lines.push(
    // v INDEX TEMP FINAL SIZE|- SHA|- GOT_SIZE
    "v() {",
    `  [ -f "$2" ] || { say M "$1"; return 1; }`,
    `  if [ "$4" != - ]; then`,
    `    [ -z "$B" ] && [ -n "$6" ] || { say U "$1"; return 1; }`,
    `    [ "$6" = "$4" ] || { rm -f -- "$2"; say S "$1" "$6"; return 1; }`,
    "  fi",
    `  if [ "$5" != - ]; then`,
    `    [ -n "$H" ] || { say H "$1"; return 1; }`,
    `    h=$($H <"$2"); h=\${h%% *}`,
    `    [ "$h" = "$5" ] || { rm -f -- "$2"; say C "$1" "$h"; return 1; }`,
    "  fi",
    `  [ -d "$3" ] && { say D "$1"; return 1; }`,
    "  return 0",
    "}",
    "B=${B-}; H=${H-}",
    "E=$(mktemp 2>/dev/null) || E=/dev/null",
  );
  for (const e of entries) {
    if (e.finalPath === null) {
      lines.push(`rm -f -- ${shellQuote(e.tempPath)}`);
      continue;
    }
    let got = `''`;
    if (e.expectedSize !== null) {
      lines.push(`g=''; [ -n "\${p${e.index}-}" ] && [ "$#" -gt 0 ] && { g=$1; shift; }`);
      got = `"$g"`;
    }
    lines.push(
      `v ${e.index} ${shellQuote(e.tempPath)} ${shellQuote(e.finalPath)} ` +
        `${e.expectedSize ?? "-"} ${e.expectedSha256 ?? "-"} ${got} && r${e.index}=1`,
    );
  }
  // Rename every verified copy: one perl process for the whole batch where perl
  // exists (a fork of mv per file costs ~2 ms), else mv one by one.
  lines.push("set --");
  for (const e of entries) {
    if (e.finalPath === null) continue;
    lines.push(
      `[ -n "\${r${e.index}-}" ] && set -- "$@" ${e.index} ${shellQuote(e.tempPath)} ` +
        shellQuote(e.finalPath),
    );
  }
  lines.push(
    'if [ "$#" -gt 0 ] && command -v perl >/dev/null 2>&1; then',
    `  perl -e '${PERL_RENAME}' "$N" "$@"`,
    "else",
    '  while [ "$#" -ge 3 ]; do',
    // Errors go to a file: a command substitution would cost one more fork per file.
    '    if mv -f -- "$2" "$3" 2>"$E"; then say K "$1"; else fail R "$1" "$(cat "$E")"; fi',
    "    shift 3",
    "  done",
    "fi",
    `[ "$E" = /dev/null ] || rm -f -- "$E"`,
    "exit 0",
    "",
  );
  return lines.join("\n");
}

/** Read the result lines of a script printed with `marker`; other lines are ignored. */
export function parseScriptOutput(stdout: string, marker: string): ScriptReport {
  const results = new Map<number, FinishResult>();
  const folderErrors = new Map<number, string>();
  for (const line of stdout.split("\n")) {
    const match = line.match(/^(\S+) ([A-Z]) (\d+)(?: (.*))?$/);
    if (!match || match[1] !== marker) continue;
    const [, , code, indexText, rest = ""] = match;
    const index = Number(indexText);
    switch (code) {
      case "F":
        folderErrors.set(index, rest.trim());
        break;
      case "K":
        results.set(index, { status: "ok" });
        break;
      case "M":
        results.set(index, { status: "missing" });
        break;
      case "S":
        results.set(index, { status: "size-mismatch", actual: rest.trim() });
        break;
      case "U":
        results.set(index, { status: "size-unknown" });
        break;
      case "C":
        results.set(index, { status: "checksum-mismatch", actual: rest.trim() });
        break;
      case "H":
        results.set(index, { status: "no-hash-tool" });
        break;
      case "D":
        results.set(index, { status: "final-is-folder" });
        break;
      case "R":
        results.set(index, { status: "rename-failed", message: rest.trim() });
        break;
    }
  }
  return { results, folderErrors };
}
