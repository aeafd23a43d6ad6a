/**
 * The remote half of an SSH transfer, as POSIX `sh` scripts run with one ssh
 * call per batch: verify each
 * temporary copy (size, SHA-256), give it the source's permission bits and
 * mtime and rename it into place (the folders are made by `remote_folders.ts`,
 * large copies followed while they upload by `remote_follow.ts`).
 *
 * File names only ever appear in these scripts as single-quoted words
 * ({@linkcode shellQuote}); the script reaches the remote `sh -s` on stdin.
 * Results come back one line per item, keyed by index (never by name) and
 * prefixed with a random marker, so names and login-shell noise cannot forge
 * a result.
 *
 * @module
 */
import { posix } from "node:path";
import { shellQuote } from "./ssh.ts";

/**
 * Perl program (no single quotes). Arguments: the marker, the hash command
 * (words; see `pickHashTool`), the space-separated tokens of the verified
 * indexes (`h<index>` when the copy must still be hashed here), then `INDEX
 * TEMP FINAL SHA256 MODE ATIME MTIME` for every entry (`-` for none).
 *
 * Copies to hash are first renamed to `.h<index>` in their own upload folder
 * (names no file name can forge), then hashed by one hash process per folder
 * (per 200 copies), started in that folder with those names: one process for
 * a whole batch instead of one per file. A mismatch removes the copy and
 * prints `MARKER C INDEX HASH`. Each good copy gets its permission bits and
 * times (where the file system allows) and is renamed into place:
 * `MARKER K INDEX` or `MARKER R INDEX MESSAGE`.
 */
const PERL_FINISH = [
  'my $n = shift; my @hc = split(" ", shift); my %want;',
  'for (split(" ", shift)) { $want{$2} = $1 if /^(h?)(\\d+)$/ }',
  "my $ut = eval { require Time::HiRes; 1 } ? \\&Time::HiRes::utime",
  ": sub { utime($_[0], $_[1], $_[2]) };",
  "my (@e, %dir, %got);",
  "while (@ARGV >= 7) {",
  "my @f = splice(@ARGV, 0, 7); next unless exists $want{$f[0]}; push @e, \\@f;",
  'next unless $want{$f[0]} eq "h"; my ($d) = $f[1] =~ m{^(.*)/}; my $s = "$d/.h$f[0]";',
  'if (!-e $s && !-l $s && rename($f[1], $s)) { $f[1] = $s; push @{$dir{$d}}, ".h$f[0]" } }',
  "for my $d (keys %dir) { my @names = @{$dir{$d}};",
  "while (my @part = splice(@names, 0, 200)) {",
  'my $pid = open(my $p, "-|"); next unless defined $pid;',
  'if (!$pid) { open(STDERR, ">", "/dev/null"); chdir($d) or exit 1; exec(@hc, @part); exit 1 }',
  'while (<$p>) { $got{"$d/$2"} = $1 if /^\\\\?([0-9a-f]{64})\\s+\\*?(\\.h\\d+)$/ } close($p); } }',
  "for my $x (@e) { my ($i, $t, $f, $h, $m, $at, $mt) = @$x;",
  'if ($want{$i} eq "h") { my $d = $got{$t} // "";',
  'if ($d ne $h) { unlink $t; print "$n C $i $d\\n"; next } }',
  'chmod(oct($m), $t) if $m ne "-";',
  '$ut->($at, $mt, $t) if $mt ne "-";',
  'if (rename($t, $f)) { print "$n K $i\\n" }',
  'else { my $e = "$!"; $e =~ s/[\\r\\n]/ /g; print "$n R $i $e\\n" } }',
].join(" ");

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
  /** Permission bits the copy gets before the rename; unchanged when missing. */
  permissions?: number;
  /** Times (ms since the epoch) the copy gets before the rename; unchanged when missing. */
  times?: { atimeMs: number; mtimeMs: number };
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
  /** Item index → SHA-256 of its copy (from a follow script). */
  hashes: Map<number, string>;
  /** Folder index → error text of `mkdir`. */
  folderErrors: Map<number, string>;
  /** Folder index → a symbolic link was found where a real folder must be (see `remote_folders.ts`). */
  folderLinks: Set<number>;
  /** Folder index → KiB available to the remote user there (`df`). */
  availableKiB: Map<number, number>;
}

/** A fresh random marker that prefixes every result line. */
export function newMarker(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return `ITX${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Shared head of every script: C locale, no globbing, result helpers. */
export function prelude(marker: string): string[] {
  return [
    "LC_ALL=C; export LC_ALL; set -f",
    `N=${marker}`,
    `say() { printf '%s %s\\n' "$N" "$*"; }`,
    `fail() { m=$(printf '%s' "$3" | tr '\\n\\r' '  '); say "$1" "$2" "$m"; }`,
  ];
}

/** Sets `H` to the fastest SHA-256 command that reads stdin, or to "" when there is none. */
export function pickHashTool(): string[] {
  return [
    "H=''",
    // OpenSSL uses the CPU's SHA instructions: ~6x faster than coreutils' sha256sum here.
    "if openssl dgst -sha256 -r </dev/null >/dev/null 2>&1; then H='openssl dgst -sha256 -r'",
    "elif command -v sha256sum >/dev/null 2>&1; then H=sha256sum",
    "elif command -v shasum >/dev/null 2>&1; then H='shasum -a 256'; fi",
  ];
}

/** Options of {@linkcode buildFinishScript}. */
export interface FinishOptions {
  /** Upload folders to remove at the end, with whatever is left in them. */
  removeFolders?: string[];
  /** Flush the final folders' file systems before and after the renames. @default true */
  sync?: boolean;
  /**
   * Folders whose available space to report first, as `A <index> <KiB>` (by
   * index in this list), while failed copies still take their room.
   */
  spaceFolders?: string[];
}

/**
 * A script that, for each entry with a final path, checks the temporary copy
 * (a regular file, not a link; size via one batched `stat`; SHA-256 in one
 * perl process with Digest::SHA for small copies, else with `openssl dgst
 * -sha256`, `sha256sum` or `shasum -a 256`, the first that exists), removes it
 * on a mismatch, and otherwise gives it its permission bits and times and
 * renames it (one `perl` process for all, else `chmod`, `touch` and `mv -f`
 * per file; the temporary copy is in the final folder or a folder inside it,
 * so the rename is atomic, and it replaces a link under the final name instead
 * of writing through it). Entries without a final path only have their
 * temporary copy removed. Last, the `removeFolders` are removed with whatever
 * is left in them.
 *
 * With `sync`, the file systems of the final folders are flushed (`sync -f`,
 * else `sync`) before the renames and after them: once the script has
 * reported a file renamed, a power cut on the remote host cannot leave it
 * empty or missing.
 */
export function buildFinishScript(
  entries: FinishEntry[],
  marker: string,
  options: FinishOptions = {},
): string {
  const removeFolders = options.removeFolders ?? [];
  const sync = options.sync ?? true;
  // Every per-file line below is constant work: a batch of n files costs O(n)
  // (growing "$@" one file at a time would cost O(n^2) in sh).
  const lines = prelude(marker);
  for (const [index, folder] of (options.spaceFolders ?? []).entries()) {
    lines.push(
      `k=$(df -Pk -- ${shellQuote(folder)} 2>/dev/null | awk 'NR==2 {print $4}'); ` +
        `[ -n "$k" ] && say A ${index} "$k"`,
    );
  }
  const finals = entries.filter((e) => e.finalPath !== null);
  const sized = finals.filter((e) => e.expectedSize !== null);
  const hashed = finals.filter((e) => e.expectedSha256 !== null);
  lines.push(...(hashed.length > 0 ? pickHashTool() : ["H=''"]));
  lines.push(
    // Renames go through one perl process where perl exists (a fork of mv per
    // file costs ~2 ms); R collects the verified indexes for it.
    "P=''; command -v perl >/dev/null 2>&1 && P=1; R=''",
    "if stat -c %s / >/dev/null 2>&1; then Z='stat -c %s'; else Z='stat -f %z'; fi",
  );
  if (sized.length > 0) {
    // One stat call for every size, in order. If any copy is missing the count
    // is off, and each size is then taken one by one (B=1).
    lines.push(
      `S=$($Z -- ${sized.map((e) => shellQuote(e.tempPath)).join(" ")} 2>/dev/null)`,
      "set -- $S",
      `B=''; [ "$#" -ne ${sized.length} ] && B=1`,
    );
  }
  lines.push(
    // v INDEX TEMP FINAL SIZE|- SHA|- GOT_SIZE MODE|- MTIME_ISO|-
    "v() {",
    `  { [ -f "$2" ] && ! [ -L "$2" ]; } || { say M "$1"; return 1; }`,
    "  s=''",
    `  if [ "$4" != - ]; then`,
    `    s=$6; [ -n "$B" ] && s=$($Z -- "$2" 2>/dev/null)`,
    `    [ -n "$s" ] || { say U "$1"; return 1; }`,
    `    [ "$s" = "$4" ] || { rm -f -- "$2"; say S "$1" "$s"; return 1; }`,
    "  fi",
    `  [ -d "$3" ] && { say D "$1"; return 1; }`,
    `  if [ "$5" != - ]; then`,
    `    [ -n "$H" ] || { say H "$1"; return 1; }`,
    // With perl, one hash process per folder hashes every copy (see PERL_FINISH).
    `    if [ -n "$P" ]; then R="$R h$1"; return 0; fi`,
    `    h=$($H <"$2"); h=\${h%% *}`,
    `    [ "$h" = "$5" ] || { rm -f -- "$2"; say C "$1" "$h"; return 1; }`,
    "  fi",
    `  if [ -n "$P" ]; then R="$R $1"; return 0; fi`,
    `  [ "$7" = - ] || chmod "$7" -- "$2" 2>/dev/null`,
    `  [ "$8" = - ] || touch -m -d "$8" -- "$2" 2>/dev/null`,
    // Errors go to a file: a command substitution would cost one more fork per file.
    `  if mv -f -- "$2" "$3" 2>"$E"; then say K "$1"; else fail R "$1" "$(cat "$E")"; fi`,
    "}",
    "B=${B-}",
    "E=$(mktemp 2>/dev/null) || E=/dev/null",
    // Y FOLDER...: flush the file systems holding them (GNU `sync -f`; else all of them).
    `Y() { for d in "$@"; do sync -f -- "$d" 2>/dev/null || { sync 2>/dev/null; return; }; done; }`,
  );
  const finalFolders = [...new Set(finals.map((e) => posix.dirname(e.finalPath!)))]
    .map(shellQuote).join(" ");
  // The copies' data first: a rename must never reach the disk before the data it names.
  if (sync && finals.length > 0) lines.push(`Y ${finalFolders}`);
  for (const e of entries) {
    if (e.finalPath === null) {
      lines.push(`rm -f -- ${shellQuote(e.tempPath)}`);
      continue;
    }
    let got = `''`;
    if (e.expectedSize !== null) {
      lines.push(`g=''; [ -z "$B" ] && { g=$1; shift; }`);
      got = `"$g"`;
    }
    const mode = e.permissions === undefined ? "-" : octal(e.permissions);
    const iso = e.times === undefined ? "-" : new Date(e.times.mtimeMs).toISOString();
    lines.push(
      `v ${e.index} ${shellQuote(e.tempPath)} ${shellQuote(e.finalPath)} ` +
        `${e.expectedSize ?? "-"} ${e.expectedSha256 ?? "-"} ${got} ${mode} ${iso}`,
    );
  }
  if (finals.length > 0) {
    const fields = finals.map((e) =>
      [
        e.index,
        shellQuote(e.tempPath),
        shellQuote(e.finalPath!),
        e.expectedSha256 ?? "-",
        e.permissions === undefined ? "-" : octal(e.permissions),
        e.times === undefined ? "-" : seconds(e.times.atimeMs),
        e.times === undefined ? "-" : seconds(e.times.mtimeMs),
      ].join(" ")
    );
    lines.push(`[ -n "$R" ] && perl -e '${PERL_FINISH}' "$N" "$H" "$R" ${fields.join(" ")}`);
    // Then the renames themselves, before the results count.
    if (sync) lines.push(`Y ${finalFolders}`);
  }
  if (removeFolders.length > 0) {
    lines.push(`rm -rf -- ${removeFolders.map(shellQuote).join(" ")}`);
  }
  lines.push(`[ "$E" = /dev/null ] || rm -f -- "$E"`, "exit 0", "");
  return lines.join("\n");
}

/** Permission bits as an octal word for chmod and perl (`0644`). */
function octal(permissions: number): string {
  return `0${(permissions & 0o777).toString(8).padStart(3, "0")}`;
}

/** Milliseconds since the epoch as seconds with three decimals, for perl's utime. */
function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

/** Read the result lines of a script printed with `marker`; other lines are ignored. */
export function parseScriptOutput(stdout: string, marker: string): ScriptReport {
  const results = new Map<number, FinishResult>();
  const hashes = new Map<number, string>();
  const gaveUp = new Set<number>();
  const folderErrors = new Map<number, string>();
  const folderLinks = new Set<number>();
  const availableKiB = new Map<number, number>();
  for (const line of stdout.split("\n")) {
    const match = line.match(/^(\S+) ([A-Z]) (\d+)(?: (.*))?$/);
    if (!match || match[1] !== marker) continue;
    const [, , code, indexText, rest = ""] = match;
    const index = Number(indexText);
    switch (code) {
      case "F":
        folderErrors.set(index, rest.trim());
        break;
      case "L":
        folderLinks.add(index);
        break;
      case "A":
        if (/^\d+$/.test(rest.trim())) availableKiB.set(index, Number(rest.trim()));
        break;
      case "G":
        if (/^[0-9a-f]{64}$/.test(rest.trim())) hashes.set(index, rest.trim());
        break;
      case "X":
        gaveUp.add(index);
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
  for (const index of gaveUp) hashes.delete(index);
  return { results, hashes, folderErrors, folderLinks, availableKiB };
}
