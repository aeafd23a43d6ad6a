# shellcheck shell=sh
# The space of a destination's file system, for `min_free_space` (see
# config/free_space.ts and ssh/transport.ts). Runs after prologue.sh; the
# generated line calls
#
#   disk_space FOLDER
#
# Result: `disk-space TOTAL_KIB AVAILABLE_KIB` of the file system holding
# FOLDER, or its nearest existing parent when FOLDER does not exist yet;
# nothing when df cannot tell.

disk_space() {
  folder=$1
  while [ ! -d "$folder" ]; do
    parent=$(dirname -- "$folder")
    [ "$parent" = "$folder" ] && break
    folder=$parent
  done
  # The fields around the capacity column (NN%), so a device or mount point
  # with spaces in its name does not shift them.
  space=$(df -Pk -- "$folder" 2>/dev/null | awk 'NR > 1 {
    for (i = 5; i <= NF; i++) if ($i ~ /^[0-9]+%$/) { print $(i - 3), $(i - 1); exit }
  }')
  if [ -n "$space" ]; then
    report disk-space "$space"
  fi
}
