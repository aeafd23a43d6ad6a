# shellcheck shell=sh
# Preparing a batch's folders before an upload (see remote_folders.ts). Runs
# after prologue.sh; the generated lines call, per destination folder:
#
#   make_folders INDEX BASE [FOLDER...] &&
#     make_upload_folder INDEX FOLDER UPLOAD_NAME [LEFTOVER_PREFIX LEFTOVER_SUFFIX]
#
# Results: `folder-is-link INDEX` (a folder below the base path is a symbolic
# link: nothing is created through it) or `folder-failed INDEX MESSAGE`.

# make_folders INDEX BASE [FOLDER...]: the base path with its parents (it may be
# or go through a link), then each FOLDER below it, one by one, none a link.
make_folders() {
  index=$1
  base=$2
  shift 2
  if ! [ -d "$base" ] && ! error=$(mkdir -p -- "$base" 2>&1); then
    report folder-failed "$index" "$(one_line "$error")"
    return 1
  fi
  for folder in "$@"; do
    if [ -L "$folder" ]; then
      report folder-is-link "$index"
      return 1
    fi
    [ -d "$folder" ] && continue
    if [ -e "$folder" ]; then
      report folder-failed "$index" "$folder: Not a directory"
      return 1
    fi
    error=$(mkdir -- "$folder" 2>&1) && continue
    # Another batch may have made it meanwhile.
    [ -d "$folder" ] && ! [ -L "$folder" ] && continue
    report folder-failed "$index" "$(one_line "$error")"
    return 1
  done
}

# make_upload_folder INDEX FOLDER UPLOAD_NAME [LEFTOVER_PREFIX LEFTOVER_SUFFIX]:
# remove the leftover upload folders (names with that prefix and suffix) from
# FOLDER if asked, then create the batch's own upload folder in it, exclusively
# (no -p: an existing name, a planted link included, fails) and private.
make_upload_folder() {
  if [ "$#" -eq 5 ]; then
    set +f
    for leftover in "$2/$4"*"$5"; do
      if [ -e "$leftover" ] || [ -L "$leftover" ]; then
        rm -rf -- "$leftover"
      fi
    done
    set -f
  fi
  error=$(mkdir -m 700 -- "$2/$3" 2>&1) || report folder-failed "$1" "$(one_line "$error")"
}
