# shellcheck shell=sh
# The sizes of files already delivered, for the catch-up (see
# destination_sizes.ts). Runs after prologue.sh; each generated line calls
#
#   file_size INDEX PATH
#
# Result per call: `size INDEX BYTES`, or `missing INDEX` when PATH is not a
# regular file (a symbolic link counts as missing).

file_size() {
  if [ -f "$2" ] && [ ! -h "$2" ]; then
    # GNU stat, else BSD stat.
    if bytes=$(stat -c %s -- "$2" 2>/dev/null || stat -f %z -- "$2" 2>/dev/null); then
      report size "$1" "$bytes"
      return
    fi
  fi
  report missing "$1"
}
