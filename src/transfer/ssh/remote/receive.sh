# shellcheck shell=sh
# Receiving one copy on standard input (see `SshSession.runStreamed` and the
# one-call delivery in batch.ts). Runs after prologue.sh, make_folders.sh and
# finish.sh; the generated lines call `receive_tools`, then, once the batch's
# upload folder is made:
#
#   receive_copies INDEX UPLOAD_FOLDER     (a tar archive of the copies)
#   receive_copy INDEX TEMP MODE STAMP     (one file's bytes, on a host without tar)
#
# and then the finishing lines, which verify the copy and rename it into place.
# Results: `receive-ready`, `receive-unable TOOL...`, `receive-failed INDEX MESSAGE`.

# receive_tools archive|bytes: report `receive-ready` when this host has what
# receiving needs (tar for an archive; cat, chmod and touch for one file's
# bytes), else `receive-unable TOOL...` (nothing is done then).
receive_tools() {
  missing=
  tools='cat chmod touch'
  [ "$1" = archive ] && tools=tar
  # shellcheck disable=SC2086 # the list's words split on purpose
  for tool in $tools; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
  done
  if [ -n "$missing" ]; then
    report receive-unable "$missing"
    return 1
  fi
  report receive-ready
}

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

# receive_copies INDEX FOLDER: the rest of standard input, a tar archive of
# plain files named as they are to be called, extracted into FOLDER (the
# batch's own upload folder, made just before) with their permission bits and
# times, owned by this account. Result `no-tar INDEX` where there is no tar.
receive_copies() {
  if ! error=$(cd -- "$2" 2>&1 && tar -x -p -o -f - 2>&1); then
    # Its folder removed meanwhile (the night's, by a clean-up): said so, not tar's words for it.
    [ -d "$2" ] || error="the upload folder $2 was removed while the copies were written into it (its destination folder removed meanwhile?); the next attempt makes the folders again"
    report receive-failed "$1" "$(one_line "$error")"
    return 1
  fi
}
