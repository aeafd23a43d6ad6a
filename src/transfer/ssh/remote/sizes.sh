# shellcheck shell=sh
# The sizes or SHA-256 of files already delivered, for the catch-up and a
# rebuilt ledger (see destination_sizes.ts). Runs after prologue.sh; each
# generated line calls
#
#   file_size INDEX PATH      or      file_sha256 INDEX PATH      or      file_version INDEX PATH
#
# and, with remote_sync, for the look after an interrupted attempt, a last one
#
#   flush_found INDEX FOLDER [INDEX FOLDER]...
#
# Result per call: `size INDEX BYTES`, `checksum INDEX HEX` or `version INDEX BYTES SECONDS`;
# `missing INDEX`
# when PATH is not a regular file (a symbolic link counts as missing), and
# `no-hash-tool INDEX` when the server has no SHA-256 command; of
# flush_found, where a file was found: `found-flushed`, or `flush-failed
# MESSAGE` (what sync said).

file_size() {
  if [ -f "$2" ] && [ ! -h "$2" ]; then
    # GNU stat, else BSD stat.
    if bytes=$(stat -c %s -- "$2" 2>/dev/null || stat -f %z -- "$2" 2>/dev/null); then
      report size "$1" "$bytes"
      eval "found_$1=yes"
      return
    fi
  fi
  report missing "$1"
}

# file_version INDEX PATH: the size and last-written time (seconds since the epoch)
# of PATH, one stat: `version INDEX BYTES SECONDS`.
file_version() {
  if [ -f "$2" ] && [ ! -h "$2" ]; then
    if facts=$(stat -c '%s %Y' -- "$2" 2>/dev/null || stat -f '%z %m' -- "$2" 2>/dev/null); then
      report version "$1" "$facts"
      return
    fi
  fi
  report missing "$1"
}

file_sha256() {
  if [ -f "$2" ] && [ ! -h "$2" ]; then
    [ -n "${sha256_tool-}" ] || sha256_tool=$(hash_tool)
    if [ -z "$sha256_tool" ]; then
      report no-hash-tool "$1"
      return
    fi
    # shellcheck disable=SC2086 # the command's words split on purpose
    if sum=$($sha256_tool <"$2" 2>/dev/null); then
      report checksum "$1" "${sum%% *}"
      return
    fi
  fi
  report missing "$1"
}

# flush_found INDEX FOLDER [INDEX FOLDER]...: flush the FOLDERs where file_size
# INDEX found a regular file (the file's data and its rename, which a daemon
# cut off after the rename may never have had confirmed), and say whether
# that worked; nothing when no file was found.
flush_found() {
  pairs=$(($# / 2))
  last_kept=''
  while [ "$pairs" -gt 0 ]; do
    eval "was_found=\${found_$1-}"
    # The folders kept go to the end of the list (once each: the pairs come by folder), the
    # pair asked about leaves its start.
    if [ -n "$was_found" ] && [ "$2" != "$last_kept" ]; then
      set -- "$@" "$2"
      last_kept=$2
    fi
    shift 2
    pairs=$((pairs - 1))
  done
  [ "$#" -gt 0 ] || return 0
  report_flush "$@" && report found-flushed
}
