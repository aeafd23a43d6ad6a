# shellcheck shell=sh
# What `doctor` asks of an SSH destination (see ssh/transport.ts), with the same
# tools the transfers use. Runs after prologue.sh (and disk_space.sh, whose
# `disk_space BASE` follows for the free space); the generated line calls
#
#   probe_destination BASE TEST_NAME
#
# Results: `folder exists|created` or `folder-failed MESSAGE`; `writable` or
# `not-writable MESSAGE`; `hash-tool COMMAND` (empty: none); `rsync VERSION`
# (empty: none).

probe_destination() {
  if [ -d "$1" ]; then
    report folder exists
  elif error=$(mkdir -p -- "$1" 2>&1); then
    report folder created
  else
    report folder-failed "$(one_line "$error")"
  fi
  # A folder of a new random name, created exclusively: nothing is written through a link.
  if error=$(mkdir -m 700 -- "$1/$2" 2>&1); then
    rmdir -- "$1/$2"
    report writable
  else
    report not-writable "$(one_line "$error")"
  fi
  report hash-tool "$(hash_tool)"
  report rsync "$(rsync --version 2>/dev/null | head -n 1)"
}
