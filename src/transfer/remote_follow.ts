/**
 * The remote script that follows large copies while the upload writes them:
 * flushing them to disk as they grow and hashing them in the same pass, so
 * the finishing step finds little left to do.
 *
 * @module
 */
import { pickHashTool, prelude } from "./remote_verify.ts";
import { shellQuote } from "./ssh.ts";

/** A copy whose SHA-256 a follow script computes while it is being written. */
export interface FollowEntry {
  index: number;
  tempPath: string;
  /** Size the copy will have when complete. */
  size: number;
}

/**
 * A script that follows copies while the upload writes them (front to back),
 * for each entry in order, until `size` bytes are there:
 * - with `flush`, it flushes each copy to disk every 16 MiB as it grows
 *   (`sync -f`), so the flush before the rename (see
 *   {@linkcode buildFinishScript}) finds little left to write;
 * - with `hash`, it feeds the copy to one hash process in steps of whole
 *   1 MiB blocks (16 MiB at least, or the rest of the copy) as the copy's size
 *   shows them complete, and prints `G <index> <sha256>`, so the
 *   remote SHA-256 is ready moments after the last byte instead of one more
 *   full read later (`H <index>` when no hash command exists).
 *
 * A copy that stops growing for `stallSeconds`, or cannot be read, is given up
 * with `X <index>` (a hash printed after it covers part of the copy and must
 * be ignored). The script ends when its caller goes away: an empty line goes
 * to stdout every poll, so a closed channel stops it. It runs at lower CPU
 * priority, so where the upload itself is CPU-bound it keeps its pace.
 */
export function buildFollowScript(
  entries: FollowEntry[],
  marker: string,
  options: { stallSeconds: number; hash: boolean; flush: boolean },
): string {
  const lines = [
    ...prelude(marker),
    ...(options.hash ? pickHashTool() : ["H=''"]),
    "if stat -c %s / >/dev/null 2>&1; then Z='stat -c %s'; else Z='stat -f %z'; fi",
    // Blocks of B bytes; R of them at least per step, so dd and sync start
    // seldom (a few dozen times per GiB) instead of at every poll.
    `B=1048576; R=16; D=${options.hash ? "1" : "''"}; F=${options.flush ? "1" : "''"}`,
    // p PATH SIZE INDEX: follow the copy; with D, write its bytes to stdout as they complete.
    "p() {",
    "  k=0; t=$((($2 + B - 1) / B)); w=0; l=-1",
    "  while [ $k -lt $t ]; do",
    `    s=$($Z -- "$1" 2>/dev/null) || s=0`,
    `    a=$((s / B)); [ "$s" -ge "$2" ] && a=$t`,
    "    if [ $a -ge $t ] || [ $((a - k)) -ge $R ]; then",
    `      if [ -n "$D" ]; then`,
    `        dd if="$1" bs=$B skip=$k count=$((a - k)) 2>/dev/null || { say X "$3" >&3; return 1; }`,
    "      fi",
    "      k=$a",
    `      [ -n "$F" ] && sync -f -- "$1" 2>/dev/null`,
    "    else",
    "      echo >&3 || exit 1",
    `      if [ "$s" = "$l" ]; then w=$((w + 1)); else w=0; fi; l=$s`,
    `      [ $w -gt ${options.stallSeconds * 20} ] && { say X "$3" >&3; return 1; }`,
    "      sleep 0.05 2>/dev/null || sleep 1",
    "    fi",
    "  done",
    "}",
    "exec 3>&1",
    "renice -n 10 -p $$ >/dev/null 2>&1",
  ];
  for (const e of entries) {
    const follow = `p ${shellQuote(e.tempPath)} ${e.size} ${e.index}`;
    if (!options.hash) {
      lines.push(follow);
      continue;
    }
    lines.push(
      `if [ -z "$H" ]; then say H ${e.index}; else ` +
        `h=$(${follow} | $H); say G ${e.index} "\${h%% *}"; fi`,
    );
  }
  lines.push("exit 0", "");
  return lines.join("\n");
}
