# shellcheck shell=sh
# Preparing a batch's folders before an upload (see remote_folders.ts). Runs
# after prologue.sh; the generated lines call, per destination folder:
#
#   make_folders INDEX BASE BASE_RULE ASK_MOUNT [FOLDER...] &&
#     make_upload_folder INDEX FOLDER UPLOAD_NAME [LEFTOVER_PREFIX LEFTOVER_SUFFIX [KEEP_SECONDS
#       [EARLIER_PREFIX IDLE_SECONDS]]]
#
# (or, for files whose kept copies will not be continued, `drop_kept_copies`,
# then `sweep_upload_folders` in the folders no batch has swept since the start),
# and, where copies are resumed, per file whose folder was made:
#
#   take_earlier_copy ITEM FOLDER UPLOAD_NAME NAME SIZE PREFIX SUFFIX KEEP_SECONDS [ACTIVE...]
#
# Results: `folder-is-link INDEX` (a folder below the base path is a symbolic
# link: nothing is created through it), `base-dangling INDEX TARGET` (the
# base path is a symbolic link to TARGET, which is not there: nothing is made
# through it, whatever the rule), `base-gone INDEX [unmounted]` (the base
# path is not there and may not be made, or is an empty folder where a disk
# was mounted), `folder-failed INDEX MESSAGE`, `base-refused INDEX MESSAGE` (as
# folder-failed, for a folder made in the base path itself: the base path, a
# folder just below it, or the upload folder of files that go into the base
# path; what every file of the job needs, a night folder the first; before it,
# `base-above INDEX FOLDER` where the base path is not there and FOLDER, the
# nearest folder above it, refused it), `earlier-copy ITEM BYTES` (an
# earlier copy was moved into the upload folder), and `base-mount YES` (1: the
# base path is a mount point; 0: it is none).

# A line break, to split what stat prints for several files.
newline='
'

# is_mount_point FOLDER: whether FOLDER is where a file system is mounted, as
# df names its mount point (status 0: yes, 1: no, 2: cannot tell).
is_mount_point() {
  case $1 in
    /*) real=$1 ;;
    *) real=./$1 ;;
  esac
  real=$(cd -P "$real" 2>/dev/null && pwd -P) || return 2
  # The fields after the capacity column (NN%), so a device with spaces in its
  # name does not shift them.
  # (One line: each program's run is one line in the tests' records.)
  on=$(df -P "$real" 2>/dev/null | awk 'NR > 1 { for (i = 5; i < NF; i++) if ($i ~ /^[0-9]+%$/) { at = $(i + 1); for (j = i + 2; j <= NF; j++) at = at " " $j; print at; exit } }')
  [ -n "$on" ] || return 2
  [ "$on" = "$real" ]
}

# has_entries FOLDER: whether FOLDER holds anything (hidden names too), told
# without starting a program.
has_entries() {
  set +f
  for entry in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    if [ -e "$entry" ] || [ -L "$entry" ]; then
      set -f
      return 0
    fi
  done
  set -f
  return 1
}

# check_base_mount BASE RULE ASK: with RULE `mounted` (a disk or share was
# mounted on BASE when files arrived), fail when BASE is an empty folder that
# is no mount point now: the disk is not mounted, and copies would fill the
# disk below (a folder that holds files is not looked at: it has moved for
# good, or the disk is there). With ASK 1 (the first call of a run), report
# whether BASE is a mount point. df runs only then, or for an empty BASE.
check_base_mount() {
  [ "$2" = mounted ] || [ "$3" = 1 ] || return 0
  if [ "$3" != 1 ] && has_entries "$1"; then
    return 0
  fi
  if [ -z "${base_mount_state:-}" ]; then
    is_mount_point "$1"
    base_mount_state=$?
  fi
  if [ "$2" = mounted ] && [ "$base_mount_state" = 1 ] && ! has_entries "$1"; then
    return 1
  fi
  if [ "$3" = 1 ]; then
    case $base_mount_state in
      0) report base-mount 1 ;;
      1) report base-mount 0 ;;
    esac
  fi
  return 0
}

# make_folders INDEX BASE BASE_RULE ASK_MOUNT [FOLDER...]: the base path with
# its parents (it may be or go through a link) when BASE_RULE is `make` (with
# `keep` a base path that is gone stays gone: files arrived there before, so it
# is a share that is not mounted; with `mounted` it was a mount point then,
# and stays gone while it is an empty folder that is none: see
# check_base_mount), then each FOLDER below it, one by one, none a link.
# ASK_MOUNT 1: report whether the base path is a mount point.
make_folders() {
  index=$1
  base=$2
  rule=$3
  ask=$4
  shift 4
  # Where the upload folder is made in the base path itself (see make_upload_folder).
  upload_in_base=0
  [ "$#" -gt 0 ] || upload_in_base=1
  if [ -L "$base" ] && ! [ -e "$base" ]; then
    report base-dangling "$index" "$(one_line "$(readlink -- "$base" 2>/dev/null || ls -ld -- "$base")")"
    return 1
  fi
  if ! [ -d "$base" ] && [ "$rule" != make ]; then
    report base-gone "$index"
    return 1
  fi
  if [ -e "$base" ] && ! [ -d "$base" ]; then
    report folder-failed "$index" "$base: Not a directory"
    return 1
  fi
  if ! [ -d "$base" ] && ! error=$(mkdir -p -- "$base" 2>&1); then
    # The folder that refused it: the nearest one there above it.
    above=$base
    while ! [ -e "$above" ] && ! [ -L "$above" ]; do
      parent=$(dirname -- "$above")
      [ "$parent" = "$above" ] && break
      above=$parent
    done
    [ "$above" = "$base" ] || report base-above "$index" "$(one_line "$above")"
    report base-refused "$index" "$(one_line "$error")"
    return 1
  fi
  if ! check_base_mount "$base" "$rule" "$ask"; then
    report base-gone "$index" unmounted
    return 1
  fi
  # The first folder is made in the base path itself.
  next_as='base-refused'
  for folder in "$@"; do
    failed_as=$next_as
    next_as='folder-failed'
    if [ -L "$folder" ]; then
      report folder-is-link "$index"
      return 1
    fi
    [ -d "$folder" ] && continue
    if [ -e "$folder" ]; then
      report folder-failed "$index" "$folder: Not a directory"
      return 1
    fi
    if ! error=$(mkdir -- "$folder" 2>&1) &&
      # Another batch may have made it meanwhile.
      ! { [ -d "$folder" ] && ! [ -L "$folder" ]; }; then
      report "$failed_as" "$index" "$(one_line "$error")"
      return 1
    fi
  done
}

# make_upload_folder INDEX FOLDER UPLOAD_NAME [LEFTOVER_PREFIX LEFTOVER_SUFFIX [KEEP_SECONDS
#   [EARLIER...]]] (EARLIER: as sweep_upload_folders takes it):
# remove the leftover upload folders (names with that prefix and suffix) from
# FOLDER if asked (with KEEP_SECONDS above 0, only the files in them written
# longer ago, and the folders left empty; with EARLIER_PREFIX, those of the
# earlier naming too: see sweep_idle_folders), then create the batch's own upload
# folder in it, exclusively (no -p: an existing name, a planted link included,
# fails) and private. Its failure is `base-refused` where FOLDER is the base
# path (make_folders, just before, was given no folder below it).
make_upload_folder() {
  up_index=$1 up_folder=$2 up_name=$3
  shift 3
  if [ "$#" -ge 2 ]; then
    up_prefix=$1 up_suffix=$2 up_keep=${3:-0}
    if [ "$#" -ge 3 ]; then shift 3; else shift "$#"; fi
    sweep_upload_folders "$up_folder" "$up_prefix" "$up_suffix" "$up_keep" "$@"
  fi
  error=$(mkdir -m 700 -- "$up_folder/$up_name" 2>&1) && return 0
  failed_as='folder-failed'
  [ "${upload_in_base:-0}" = 1 ] && failed_as='base-refused'
  report "$failed_as" "$up_index" "$(one_line "$error")"
  return 1
}

# sweep_upload_folders FOLDER PREFIX SUFFIX KEEP_SECONDS
#   [EARLIER_PREFIX IDLE_SECONDS | EARLIER_PREFIX adopt [EARLIER_PREFIX...]]:
# remove the leftover upload folders (names with that prefix and suffix) from FOLDER (with
# KEEP_SECONDS above 0, only the files in them written longer ago, and the
# folders left empty), and with EARLIER_PREFIX those sweep_idle_folders takes
# (with `adopt`, those of each EARLIER_PREFIX adopt_folders renames first, then
# swept as this daemon's). Only while no batch of this daemon uses FOLDER.
sweep_upload_folders() {
  keep=$4
  if [ "$#" -ge 6 ] && [ "$6" = adopt ]; then
    sw_folder=$1 sw_prefix=$2 sw_suffix=$3 sw_first=$5
    shift 6
    for sw_earlier in "$sw_first" "$@"; do
      adopt_folders "$sw_folder" "$sw_earlier" "$sw_prefix" "$sw_suffix"
    done
    set -- "$sw_folder" "$sw_prefix" "$sw_suffix" "$keep"
  elif [ "$#" -ge 6 ]; then
    sweep_idle_folders "$1" "$5" "$3" "$6"
  fi
  set +f
  for leftover in "$1/$2"*"$3"; do
    set -f
    if [ "$keep" -gt 0 ] && is_own_folder "$leftover"; then
      remove_expired "$leftover" "$keep"
    elif [ -e "$leftover" ] || [ -L "$leftover" ]; then
      rm -rf -- "$leftover"
    fi
  done
  set -f
  return 0
}

# adopt_folders FOLDER EARLIER_PREFIX PREFIX SUFFIX: give the upload folders of
# this account named with EARLIER_PREFIX (and SUFFIX) in FOLDER this daemon's
# prefix instead, keeping the rest of their names: those its version before
# each install had its own id left (a ledger upgraded from then), swept and
# continued from then on as its own. A name taken already is left as it is.
adopt_folders() {
  set +f
  for adopted in "$1/$2"*"$4"; do
    set -f
    is_own_folder "$adopted" || continue
    renamed=$1/$3${adopted#"$1/$2"}
    [ -e "$renamed" ] || [ -L "$renamed" ] || mv -- "$adopted" "$renamed"
  done
  set -f
  return 0
}

# sweep_idle_folders FOLDER PREFIX SUFFIX IDLE_SECONDS: remove the upload folders
# of this account (names with that prefix and suffix) from FOLDER in which
# nothing, the folder itself included, was written for more than IDLE_SECONDS:
# those the earlier naming of this daemon's upload folders left. That naming
# is another daemon's too where both run under one host name: a folder written
# in since may be one of its batches under way, and is left alone.
sweep_idle_folders() {
  idle=$4
  set +f
  for idle_folder in "$1/$2"*"$3"; do
    set -f
    is_own_folder "$idle_folder" || continue
    newest_write "$idle_folder" || continue
    [ $((now - newest)) -gt "$idle" ] && rm -rf -- "$idle_folder"
  done
  set -f
  return 0
}

# newest_write HOLDER: set `newest` to the latest time (seconds since the
# epoch) HOLDER or an entry in it was written, with one stat (status 1: a time
# could not be read), and `now` (now_seconds).
newest_write() {
  set +f
  set -- "$1" "$1"/* "$1"/.[!.]* "$1"/..?*
  set -f
  for entry do
    shift
    if [ -e "$entry" ] || [ -L "$entry" ]; then set -- "$@" "$entry"; fi
  done
  times=$(stat -c %Y -- "$@" 2>/dev/null) || times=$(stat -f %m -- "$@" 2>/dev/null) || return 1
  now_seconds
  newest=0
  for written in $times; do
    case $written in '' | *[!0-9]*) return 1 ;; esac
    [ "$written" -le "$newest" ] || newest=$written
  done
  return 0
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

# now_seconds: set `now` to the seconds since the epoch, read once per script.
now_seconds() {
  [ -n "${now-}" ] || now=$(date +%s)
}

# remove_expired FOLDER KEEP_SECONDS: remove what in FOLDER was written more
# than KEEP_SECONDS ago, by its own time and FOLDER's (see upload_written), or
# is not a regular file, or is hidden; then FOLDER if it is empty.
# The times of all its entries come from one stat: an interrupted run may have
# left thousands of copies, and a program per copy would take minutes.
remove_expired() {
  holder=$1 keep=$2
  set +f
  set -- "$holder"/* "$holder"/.[!.]* "$holder"/..?*
  set -f
  # Keep the entries there are (a pattern that matched nothing stays as it is).
  for entry do
    shift
    if [ -e "$entry" ] || [ -L "$entry" ]; then set -- "$@" "$entry"; fi
  done
  if [ "$#" -gt 0 ]; then
    now_seconds
    # One line per entry, FOLDER's first, in order, when stat read them all
    # (GNU, else BSD; else empty: each is read on its own below). FOLDER's is
    # read before anything in it is removed, which dates it anew.
    if ! times=$(stat -c %Y -- "$holder" "$@" 2>/dev/null); then
      [ -z "$times" ] && times=$(stat -f %m -- "$holder" "$@" 2>/dev/null) || times=''
    fi
    if [ -n "$times" ]; then
      times="$times$newline"
      holder_written=${times%%"$newline"*}
      times=${times#*"$newline"}
    else
      holder_written=$(stat -c %Y -- "$holder" 2>/dev/null || stat -f %m -- "$holder" 2>/dev/null)
    fi
    case $holder_written in '' | *[!0-9]*) holder_written=0 ;; esac
    # Keep the entries to remove, then remove them with one rm.
    for entry do
      shift
      if [ -n "$times" ]; then
        written=${times%%"$newline"*}
        times=${times#*"$newline"}
      else
        written=$(stat -c %Y -- "$entry" 2>/dev/null || stat -f %m -- "$entry" 2>/dev/null)
      fi
      case $written in *[!0-9]*) written='' ;; esac
      upload_written
      # A hidden name is never a copy to continue (copies have their files' names, never
      # hidden): the work files of a finishing step cut off, rsync's own temporary files.
      case ${entry##*/} in .*) written='' ;; esac
      if [ -f "$entry" ] && ! [ -L "$entry" ] && [ -n "$written" ] &&
        [ $((now - written)) -le "$keep" ]; then
        continue
      fi
      set -- "$@" "$entry"
    done
    [ "$#" -eq 0 ] || rm -rf -- "$@"
  fi
  rmdir -- "$holder" 2>/dev/null
  return 0
}

# upload_written: set `written`, the time (seconds since the epoch) a copy was
# written (empty: unknown), to when its upload folder was, `holder_written`,
# where that is later. rsync dates a copy it finished as its source
# (--times): a copy of a file taken days ago, finished but not renamed into
# place before the daemon died, is no older than the rsync run, which dated
# its upload folder when it renamed the copy in (as making the folder, moving
# an earlier copy in, or the finishing step's work files do). Nothing written
# for KEEP_SECONDS is what expires, never an old source.
upload_written() {
  [ -n "$written" ] && [ "$written" -lt "$holder_written" ] && written=$holder_written
  return 0
}

# take_earlier_copy ITEM FOLDER UPLOAD_NAME NAME SIZE PREFIX SUFFIX KEEP_SECONDS [ACTIVE...]:
# move the longest earlier copy of NAME that this daemon left in an upload
# folder of FOLDER (names with that prefix and suffix, none of the ACTIVE
# ones, which other batches are using) into the batch's upload folder, when
# it is a regular file of this account, not a link, written at most
# KEEP_SECONDS ago (by its own time and its upload folder's: see
# upload_written) and not longer than SIZE (one as long loses its last byte,
# sent again); every other copy of NAME there is removed.
take_earlier_copy() {
  item=$1 folder=$2 upload=$3 name=$4 size=$5 prefix=$6 suffix=$7 keep=$8
  shift 8
  best='' best_size=0
  # The folder's upload folders are read and judged once for all the files of
  # a batch in it (they are the same for each), not once per file.
  if [ "${holders_of-}" != "$folder/$upload" ]; then
    holders_of=$folder/$upload holders=''
    set +f
    for holder in "$folder/$prefix"*"$suffix"; do
      set -f
      [ "$holder" = "$folder/$upload" ] && continue
      is_active "${holder##*/}" "$@" && continue
      is_own_folder "$holder" || continue
      holders="$holders ${holder##*/}"
    done
    set -f
  fi
  now_seconds
  # Our upload folders' names hold no blank; a planted name with one splits
  # into words that name no folder of ours and are skipped.
  for holder_name in $holders; do
    copy=$folder/$holder_name/$name
    if ! [ -f "$copy" ] || [ -L "$copy" ]; then
      continue
    fi
    # Its size and last-written time, then its upload folder's, with one stat.
    holder=$folder/$holder_name
    facts=$(stat -c '%s %Y' -- "$copy" "$holder" 2>/dev/null ||
      stat -f '%z %m' -- "$copy" "$holder" 2>/dev/null) || facts=''
    copy_size=${facts%% *}
    written=${facts#* }
    written=${written%%"$newline"*}
    holder_written=${facts##* }
    case $copy_size$written$holder_written in *[!0-9]*) facts='' ;; esac
    [ -z "$facts" ] || upload_written
    if [ -z "$facts" ] || [ $((now - written)) -gt "$keep" ] ||
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

# drop_kept_copies FOLDER NAME PREFIX SUFFIX [ACTIVE...]: remove the copies of NAME
# this daemon kept in its upload folders of FOLDER (names with that prefix and
# suffix, none of the ACTIVE ones), and each folder a copy was removed from if
# that left it empty (never another: a batch that began meanwhile may have made
# its upload folder there, still empty).
drop_kept_copies() {
  folder=$1 name=$2 prefix=$3 suffix=$4
  shift 4
  set +f
  for holder in "$folder/$prefix"*"$suffix"; do
    set -f
    is_active "${holder##*/}" "$@" && continue
    is_own_folder "$holder" || continue
    if [ -f "$holder/$name" ] && ! [ -L "$holder/$name" ]; then
      rm -f -- "$holder/$name"
      rmdir -- "$holder" 2>/dev/null
    fi
  done
  set -f
  return 0
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
