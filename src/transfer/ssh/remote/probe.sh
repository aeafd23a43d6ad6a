# shellcheck shell=sh
# What `doctor` asks of an SSH destination (see ssh/transport.ts), with the same
# tools the transfers use. Runs after prologue.sh (and disk_space.sh, whose
# `disk_space BASE` follows for the free space); the generated line calls
#
#   probe_destination BASE TEST_NAME
#
# Results: `folder exists`, `folder not-a-folder` (a file: its writing is not
# tried), `folder dangling TARGET` (a symbolic link to TARGET, which is not
# there: nothing is made through it, its writing is not tried) or `folder
# missing NEAREST` (not made: a share that is not mounted would get it on the
# disk below; NEAREST is the folder it would be made in, which the next checks
# probe instead); `writable`, `writable-left MESSAGE` (the test folder was made
# but could not be removed: it is left there) or `not-writable MESSAGE`;
# `hash-tool COMMAND` (empty: none); `rsync VERSION` (empty: none).

probe_destination() {
  probed=$1
  if [ -d "$1" ]; then
    report folder exists
  elif [ -e "$1" ]; then
    report folder not-a-folder
  elif [ -L "$1" ]; then
    report folder dangling "$(one_line "$(readlink -- "$1" 2>/dev/null || ls -ld -- "$1")")"
  else
    while ! [ -e "$probed" ] && ! [ -L "$probed" ]; do
      parent=$(dirname -- "$probed")
      [ "$parent" = "$probed" ] && break
      probed=$parent
    done
    report folder missing "$(one_line "$probed")"
  fi
  # A folder of a new random name, created exclusively: nothing is written through a link.
  if ! [ -d "$probed" ]; then
    : # A file: its folder check says so.
  elif error=$(mkdir -m 700 -- "$probed/$2" 2>&1); then
    if error=$(rmdir -- "$probed/$2" 2>&1); then
      report writable
    else
      report writable-left "$(one_line "${error:-rmdir failed}")"
    fi
  else
    report not-writable "$(one_line "$error")"
  fi
  report hash-tool "$(hash_tool)"
  report rsync "$(rsync --version 2>/dev/null | head -n 1)"
}
