# shellcheck shell=sh
# Preparing a batch's folders before an upload (see remote_folders.ts). Runs
# after prologue.sh; the generated lines call, per destination folder:
#
#   make_folders INDEX BASE [FOLDER...] &&
#     make_upload_folder INDEX FOLDER UPLOAD_NAME [LEFTOVER_PREFIX LEFTOVER_SUFFIX [KEEP_SECONDS]]
#
# and, where copies are resumed, per file whose folder was made:
#
#   take_earlier_copy ITEM FOLDER UPLOAD_NAME NAME SIZE PREFIX SUFFIX KEEP_SECONDS [ACTIVE...]
#
# Results: `folder-is-link INDEX` (a folder below the base path is a symbolic
# link: nothing is created through it), `folder-failed INDEX MESSAGE`, and
# `earlier-copy ITEM BYTES` (an earlier copy was moved into the upload folder).

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

# make_upload_folder INDEX FOLDER UPLOAD_NAME [LEFTOVER_PREFIX LEFTOVER_SUFFIX [KEEP_SECONDS]]:
# remove the leftover upload folders (names with that prefix and suffix) from
# FOLDER if asked (with KEEP_SECONDS above 0, only the files in them written
# longer ago, and the folders left empty), then create the batch's own upload
# folder in it, exclusively (no -p: an existing name, a planted link included,
# fails) and private.
make_upload_folder() {
  if [ "$#" -ge 5 ]; then
    keep=${6:-0}
    set +f
    for leftover in "$2/$4"*"$5"; do
      set -f
      if [ "$keep" -gt 0 ] && is_own_folder "$leftover"; then
        remove_expired "$leftover" "$keep"
      elif [ -e "$leftover" ] || [ -L "$leftover" ]; then
        rm -rf -- "$leftover"
      fi
    done
    set -f
  fi
  error=$(mkdir -m 700 -- "$2/$3" 2>&1) && return 0
  report folder-failed "$1" "$(one_line "$error")"
  return 1
}

# is_own_folder PATH: PATH is a folder (not a link) of this account that
# nobody else may write into: what this daemon's upload folders are.
is_own_folder() {
  if ! [ -d "$1" ] || [ -L "$1" ] || ! [ -O "$1" ]; then
    return 1
  fi
  case $(ls -ld -- "$1") in
    d???????w*) return 1 ;;
    d????w*) return 1 ;;
  esac
}

# age_of FILE: print the seconds since FILE was last written ("" when unknown).
age_of() {
  written=$(stat -c %Y -- "$1" 2>/dev/null || stat -f %m -- "$1" 2>/dev/null) || return 0
  now=$(date +%s)
  echo $((now - written))
}

# remove_expired FOLDER KEEP_SECONDS: remove what in FOLDER was written more
# than KEEP_SECONDS ago (or is not a regular file), then FOLDER if it is empty.
remove_expired() {
  set +f
  for entry in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    set -f
    [ -e "$entry" ] || [ -L "$entry" ] || continue
    if [ -f "$entry" ] && ! [ -L "$entry" ]; then
      age=$(age_of "$entry")
      [ -n "$age" ] && [ "$age" -le "$2" ] && continue
    fi
    rm -rf -- "$entry"
  done
  set -f
  rmdir -- "$1" 2>/dev/null
  return 0
}

# take_earlier_copy ITEM FOLDER UPLOAD_NAME NAME SIZE PREFIX SUFFIX KEEP_SECONDS [ACTIVE...]:
# move the longest earlier copy of NAME that this daemon left in an upload
# folder of FOLDER (names with that prefix and suffix, none of the ACTIVE
# ones, which other batches are using) into the batch's upload folder, when
# it is a regular file of this account, not a link, written at most
# KEEP_SECONDS ago and not longer than SIZE (one as long loses its last byte,
# sent again); every other copy of NAME there is removed.
take_earlier_copy() {
  item=$1 folder=$2 upload=$3 name=$4 size=$5 prefix=$6 suffix=$7 keep=$8
  shift 8
  best='' best_size=0
  # The folder is read once for all the files of a batch in it, not once per file.
  if [ "${holders_of-}" != "$folder" ]; then
    holders_of=$folder holders=''
    set +f
    for holder in "$folder/$prefix"*"$suffix"; do
      [ -d "$holder" ] && holders="$holders ${holder##*/}"
    done
    set -f
  fi
  # Our upload folders' names hold no blank; a planted name with one splits
  # into words that name no folder of ours and are skipped.
  for holder_name in $holders; do
    holder=$folder/$holder_name
    [ "$holder" = "$folder/$upload" ] && continue
    is_active "${holder##*/}" "$@" && continue
    is_own_folder "$holder" || continue
    copy=$holder/$name
    if ! [ -f "$copy" ] || [ -L "$copy" ]; then
      continue
    fi
    copy_size=$(stat -c %s -- "$copy" 2>/dev/null || stat -f %z -- "$copy" 2>/dev/null)
    age=$(age_of "$copy")
    if [ -z "$copy_size" ] || [ -z "$age" ] || [ "$age" -gt "$keep" ] ||
      [ "$copy_size" -gt "$size" ] || [ "$copy_size" -eq 0 ]; then
      rm -f -- "$copy"
    elif [ -z "$best" ] || [ "$copy_size" -gt "$best_size" ]; then
      [ -n "$best" ] && rm -f -- "$best"
      best=$copy best_size=$copy_size
    else
      rm -f -- "$copy"
    fi
  done
  [ -n "$best" ] || return 0
  holder=${best%/*}
  mv -f -- "$best" "$folder/$upload/$name" 2>/dev/null || return 0
  rmdir -- "$holder" 2>/dev/null
  if [ "$best_size" -eq "$size" ]; then
    # As long as the source: its last byte is sent again, so the upload checks
    # (and dates) the whole copy as it does any it continues.
    best_size=$((size - 1))
    dd of="$folder/$upload/$name" bs=1 seek="$best_size" count=0 2>/dev/null </dev/null || {
      rm -f -- "$folder/$upload/$name"
      return 0
    }
  fi
  report earlier-copy "$item" "$best_size"
}

# is_active NAME [ACTIVE...]: NAME is one of the ACTIVE names.
is_active() {
  wanted=$1
  shift
  for active in "$@"; do
    [ "$active" = "$wanted" ] && return 0
  done
  return 1
}
