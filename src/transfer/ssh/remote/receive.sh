# shellcheck shell=sh
# Receiving one copy on standard input (see `SshSession.runStreamed` and the
# one-call delivery in batch.ts). Runs after prologue.sh, make_folders.sh and
# finish.sh; the generated lines call, once the batch's upload folder is made:
#
#   receive_copy INDEX TEMP MODE STAMP
#
# and then the finishing lines, which verify the copy and rename it into place.
# Result: `receive-failed INDEX MESSAGE`.

# receive_copy INDEX TEMP MODE STAMP: the rest of standard input into TEMP, a
# new file (in the batch's own upload folder, made just before, mode 700), then
# the source's permission bits (MODE, octal) and times (STAMP, UTC, as for
# touch -t).
receive_copy() {
  if ! error=$( (set -C && cat >"$2") 2>&1); then
    report receive-failed "$1" "$(one_line "$error")"
    return 1
  fi
  if ! error=$(chmod -- "$3" "$2" 2>&1 && TZ=UTC0 touch -t "$4" -- "$2" 2>&1); then
    report receive-failed "$1" "$(one_line "$error")"
    return 1
  fi
}
