# shellcheck shell=sh
# The sizes or SHA-256 of files already delivered, for the catch-up and a
# rebuilt ledger (see destination_sizes.ts). Runs after prologue.sh; each
# generated line calls
#
#   file_size INDEX PATH      or      file_sha256 INDEX PATH
#
# Result per call: `size INDEX BYTES` or `checksum INDEX HEX`; `missing INDEX`
# when PATH is not a regular file (a symbolic link counts as missing), and
# `no-hash-tool INDEX` when the server has no SHA-256 command.

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
