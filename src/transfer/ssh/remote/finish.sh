# shellcheck shell=sh
# The last step of a batch (see finish.ts): check each uploaded copy (a
# regular file, its size, its SHA-256), rename the good ones into place, remove
# the others and the batch's upload folders. Runs after prologue.sh; the
# generated lines call, in this order:
#
#   start_finish hash|hash-small|no-hash [UPLOAD_FOLDER]
#   report_space_left INDEX FOLDER        where an upload failed: the room left there
#   start_flush FOLDER...                 with remote_sync: the copies' data, while they
#                                         are checked
#   read_sizes COPY...                    every copy whose size is checked without a
#                                         SHA-256, in order
#   begin_folder GROUP UPLOAD_FOLDER [./NAME...]   per upload folder, then for its copies:
#     check_copy INDEX COPY FINAL SIZE|- SHA256|- [keep SOURCE_SIZE]
#   remove_copies COPY...                 copies of files that failed before
#   drop_group_and_other_write COPY...    copies of sources writable by group or others
#   end_flush                             with remote_sync: the data is on disk before
#                                         any rename
#   rename_checked_copies GROUP FOLDER    per upload folder
#   report_renamed INDEX COPY FINAL [keep SOURCE_SIZE FOLDER]   per checked copy
#   flush_renames FOLDER...               with remote_sync: then the renames
#   report_kept INDEX COPY                per copy of a failed upload kept to be continued
#   remove_if_empty UPLOAD_FOLDER...      the upload folders of those copies
#   remove_upload_folders FOLDER...
#
# Each copy lies in an upload folder inside its destination folder, under its
# final name, so one `mv` moves all of a folder's good copies into place, each
# rename atomic and replacing (never writing through) what is under the name;
# another `mv`, with -n, those whose final name is not to be replaced (keep):
# check_copy looked there, but another sender's file may have come since (see
# rename_keeping).
# Every per-copy step is a shell builtin: a batch costs a few processes, not a
# few per file.
#
# Results, per copy: `renamed INDEX`, `missing INDEX` (not there, or not a
# regular file), `size-unknown INDEX`, `size-differs INDEX SIZE`,
# `checksum-differs INDEX SHA256`, `no-hash-tool INDEX`, `final-is-folder
# INDEX`, `already INDEX` and `occupied INDEX` (the final name, not to be
# replaced, holds the source's bytes, or another file: see held_by_other),
# `rename-failed INDEX MESSAGE`, `not-flushed INDEX` (after `flush-failed
# MESSAGE`: see start_flush), `kept INDEX` (the copy of a failed
# upload holds something to continue); per folder asked about: `space-left
# INDEX KIB FILES` (see space_left), `folder-left INDEX` (an upload folder of
# kept copies not empty); once: `renames-flushed`, or `renames-not-flushed
# MESSAGE` (see flush_renames).

# start_finish hash|hash-small|no-hash [UPLOAD_FOLDER]: pick the tools and the place of
# the work files: in UPLOAD_FOLDER (one this script removes at the end), named
# after the marker, so no final name meets them; else none (the copies are
# then hashed and renamed one by one, as on a disk out of inodes): nothing is
# written outside the destination's folders, so a full or unwritable /tmp
# on the server changes nothing.
# OpenSSL, where there is one, is taken without a trial run (a run that gives
# no hash asks hash_tool then: see hash_copy); for a few small copies
# (hash-small) sha256sum, which starts in half the time and hashes a few
# megabytes in less than OpenSSL takes to start.
start_finish() {
  checking_hashes=''
  hash_tool_asked=''
  if [ "$1" = hash-small ] && command -v sha256sum >/dev/null 2>&1; then
    checking_hashes='sha256sum -b'
  elif [ "$1" != no-hash ]; then
    if command -v openssl >/dev/null 2>&1; then
      checking_hashes='openssl dgst -sha256 -r'
    else
      checking_hashes=$(hash_tool)
      hash_tool_asked=yes
    fi
  fi
  size_command=''
  sizes_listed=''
  listed_sizes=''
  listed_hashes=''
  listed_line=''
  newline='
'
  group=''
  work=''
  if [ -n "${2-}" ] && [ -d "$2" ] && ! [ -L "$2" ]; then
    work=$2/.${marker:?}.
  fi
}

# report_space_left INDEX FOLDER
report_space_left() {
  left=$(space_left "$2")
  [ -n "$left" ] && report space-left "$1" "$left"
}

# pick_size_command: GNU stat, else BSD stat.
pick_size_command() {
  if stat -c %s / >/dev/null 2>&1; then size_command='stat -c %s'; else size_command='stat -f %z'; fi
}

# read_sizes COPY...: the sizes of all copies with one stat (GNU stat tried
# first, without a trial run), kept in memory (see take_line); when one is
# missing, each copy's size is asked for on its own instead.
read_sizes() {
  [ -n "$work" ] || return 0
  if listed_sizes=$(stat -c %s -- "$@" 2>/dev/null); then
    size_command='stat -c %s'
  else
    pick_size_command
    # shellcheck disable=SC2086 # the command's words split on purpose
    listed_sizes=$($size_command -- "$@" 2>/dev/null) || return 0
  fi
  sizes_listed=yes
}

# take_size COPY: set size to the size of COPY ("" when unknown).
take_size() {
  if [ -n "$sizes_listed" ]; then
    take_line "$listed_sizes"
    size=$line
    listed_sizes=$rest
  else
    copy_size "$1"
  fi
}

# take_line TEXT: set line to the first line of TEXT, rest to the lines after
# it. A list a command printed is kept in memory and taken apart this way: the
# shell reads a command's output in blocks, but a file line by line, a byte at
# a time (a system call per byte: 85 for a line of a hash list).
take_line() {
  line=${1%%"$newline"*}
  rest=${1#"$line"}
  rest=${rest#"$newline"}
}

# copy_size COPY: set size to the size of COPY, asked on its own ("" when
# unknown); GNU stat tried first, without a trial run.
copy_size() {
  if [ -z "$size_command" ]; then
    if size=$(stat -c %s -- "$1" 2>/dev/null); then
      size_command='stat -c %s'
      return 0
    fi
    pick_size_command
  fi
  # shellcheck disable=SC2086 # the command's words split on purpose
  size=$($size_command -- "$1" 2>/dev/null) || size=''
}

# begin_folder GROUP UPLOAD_FOLDER [./NAME...]: the copies checked next are in
# UPLOAD_FOLDER. With checksums, the NAMEs there are hashed by one process
# (names without a line break or backslash, which hash tools print escaped),
# their list kept in memory (see take_line). The rename lists (good: replacing,
# keep: not) may not be made (a disk out of inodes): the copies are then
# renamed one by one. So they are not made by a special builtin (`:`, `exec`),
# whose failed redirection would end the script.
begin_folder() {
  group=$1
  if [ -n "$work" ]; then
    true 2>/dev/null >"${work}good.$1"
    true 2>/dev/null >"${work}keep.$1"
  fi
  listed_line=''
  listed_hashes=''
  upload_folder=$2
  shift 2
  if [ "$#" -gt 0 ] && [ -n "$checking_hashes" ] && [ -n "$work" ]; then
    # shellcheck disable=SC2086 # the command's words split on purpose
    listed_hashes=$({ cd -- "$upload_folder" && exec $checking_hashes "$@"; } 2>/dev/null)
  fi
}

# take_listed_hash NAME: set listed_hash to the SHA-256 the folder's hash
# process printed for ./NAME (the line "HASH *./NAME", exactly), or to "" (the
# copy is then hashed on its own). Its
# lines come in the order of the names; a line that is not NAME's waits for
# the copy it belongs to.
take_listed_hash() {
  listed_hash=''
  if [ -z "$listed_line" ]; then
    take_line "$listed_hashes"
    listed_line=$line
    listed_hashes=$rest
  fi
  case $listed_line in
    *" *./$1")
      if [ "${#listed_line}" -eq $((${#1} + 68)) ]; then
        listed_hash=${listed_line%% *}
        listed_line=''
      fi
      ;;
  esac
}

# check_copy INDEX COPY FINAL SIZE|- SHA256|- [keep SOURCE_SIZE]: check
# one copy; a good one is listed for the rename, a bad one removed. With a
# SHA256 the size is only read when the hash differs (to say so when the size
# does too): the copies read_sizes lists are those without one. With the last
# two, a file under FINAL is never replaced (see held_by_other).
check_copy() {
  size=''
  listed_hash=''
  if [ "$5" = - ]; then
    [ "$4" = - ] || take_size "$2"
  else
    take_listed_hash "${2##*/}"
  fi
  if ! [ -f "$2" ] || [ -L "$2" ]; then
    report missing "$1"
    return
  fi
  if [ "$4" != - ] && [ "$5" = - ]; then
    if [ -z "$size" ]; then
      report size-unknown "$1"
      return
    fi
    if [ "$size" != "$4" ]; then
      rm -f -- "$2"
      report size-differs "$1" "$size"
      return
    fi
  fi
  if [ -d "$3" ]; then
    report final-is-folder "$1"
    return
  fi
  if [ "$5" != - ]; then
    if [ -z "$checking_hashes" ]; then
      report no-hash-tool "$1"
      return
    fi
    hash=$listed_hash
    [ -n "$hash" ] || hash_copy "$2"
    if [ "$hash" != "$5" ]; then
      [ "$4" = - ] || copy_size "$2"
      rm -f -- "$2"
      if [ -n "$size" ] && [ "$size" != "$4" ]; then
        report size-differs "$1" "$size"
        return
      fi
      report checksum-differs "$1" "$hash"
      return
    fi
  fi
  # Listed for the rename that replaces (good), or for the one that never does (keep).
  listed=good
  if [ -n "${6-}" ]; then
    if [ -e "$3" ] || [ -L "$3" ]; then
      held_by_other "$1" "$2" "$3" "$6" "$7"
      return
    fi
    listed=keep
  fi
  [ -z "$work" ] || printf '%s\0' "$2" 2>/dev/null >>"${work}$listed.$group"
  eval "checked_$1=yes"
  # The group's copies of the list: how many, and the last one (renamed without xargs when alone).
  eval "${listed}_$group=\$((\${${listed}_$group:-0} + 1))"
  eval "last_${listed}_$group=\$2"
}

# held_by_other INDEX COPY FINAL keep SOURCE_SIZE: FINAL holds a file that is
# not this source's copy, and is left as it is; the (checked) copy is removed.
# `already INDEX` where it holds the source's bytes: a regular file of
# SOURCE_SIZE bytes, and the copy's bytes (cmp, a process only for such a
# file); else `occupied INDEX`.
held_by_other() {
  if [ -f "$3" ] && ! [ -L "$3" ]; then
    copy_size "$3"
    if [ "$size" = "$5" ] && cmp -s -- "$2" "$3"; then
      rm -f -- "$2"
      report already "$1"
      return
    fi
  fi
  rm -f -- "$2"
  report occupied "$1"
}

# hash_copy COPY: set hash to the SHA-256 of COPY ("" when it cannot be read).
# When the tool taken without a trial run gives none, hash_tool picks one, and
# COPY is hashed again with it.
hash_copy() {
  # shellcheck disable=SC2086 # the command's words split on purpose
  hash=$($checking_hashes <"$1" 2>/dev/null)
  if [ -z "$hash" ] && [ -z "$hash_tool_asked" ]; then
    hash_tool_asked=yes
    checking_hashes=$(hash_tool)
    [ -z "$checking_hashes" ] || hash=$($checking_hashes <"$1" 2>/dev/null)
  fi
  hash=${hash%% *}
}

# remove_copies COPY...
remove_copies() {
  rm -f -- "$@"
}

# drop_group_and_other_write COPY...: as delivered copies must be.
drop_group_and_other_write() {
  chmod go-w -- "$@" 2>/dev/null
  return 0
}

# start_flush FOLDER...: start flushing the file systems that hold them, in the
# background, so the disk writes while the copies are read for their hashes.
# Where the data could not be written out, result `flush-failed MESSAGE`.
start_flush() {
  flush_failed=''
  report_flush "$@" &
  flushing=$!
}

# end_flush: wait until the flush start_flush began has ended. If it failed, no
# copy is renamed: the disk may not hold what was checked.
end_flush() {
  wait "$flushing" || flush_failed=yes
}

# rename_checked_copies GROUP FOLDER: move the group's good copies into FOLDER
# (one `mv -f` for them all), then its keep copies (one `mv -n`: see
# rename_keeping).
rename_checked_copies() {
  [ -z "${flush_failed-}" ] || return 0
  move_listed "$1" "$2" good -f
  move_listed "$1" "$2" keep -n
}

# move_listed GROUP FOLDER good|keep -f|-n: move the group's copies of that
# list into FOLDER with one `mv` (a lone copy without xargs). What it leaves
# is seen to by report_renamed.
move_listed() {
  count=0
  eval "count=\${$3_$1:-0}"
  if [ "$count" -eq 1 ]; then
    eval "mv $4 -- \"\$last_$3_$1\" \"\$2\"" 2>/dev/null
    return 0
  fi
  [ -n "$work" ] && [ -s "${work}$3.$1" ] || return 0
  # shellcheck disable=SC2016 # expanded by the inner sh
  xargs -0 sh -c 'exec mv '"$4"' -- "$@" "$0"' "$2" <"${work}$3.$1" 2>/dev/null
  return 0
}

# report_renamed INDEX COPY FINAL [keep SOURCE_SIZE FOLDER]: for a checked
# copy, whether it was renamed; one still there is renamed on its own, for the
# system's reason if that fails (none after a failed flush: `not-flushed
# INDEX`). With the last three, see rename_keeping.
report_renamed() {
  eval "checked=\${checked_$1-}"
  [ -n "$checked" ] || return 0
  if [ -n "${flush_failed-}" ]; then
    report not-flushed "$1"
    return
  fi
  if [ -n "${4-}" ]; then
    rename_keeping "$@"
    return
  fi
  if [ -e "$2" ] || [ -L "$2" ]; then
    # Its words kept in memory: on a full disk a work file would lose them.
    if ! error=$(mv -f -- "$2" "$3" 2>&1); then
      report rename-failed "$1" "$(one_line "$error")"
      return
    fi
  fi
  report renamed "$1"
}

# rename_keeping INDEX COPY FINAL keep SOURCE_SIZE FOLDER: a checked copy
# whose final name is not to be replaced: `mv -n` never replaces a file that
# came under it after check_copy looked (another sender's, arriving at the
# same time: between the look and the rename lie the checks of the batch's
# other copies and the flush of its data). GNU mv on Linux renames with
# RENAME_NOREPLACE (atomic); BSD and busybox mv look just before, as this
# function does before its last `mv -f`. Gone from the upload folder: renamed.
# Still there with a file under FINAL: judged as check_copy would
# (held_by_other: `already` or `occupied`). Else renamed on its own with `mv
# -n` (the group's mv failed), and where that moves nothing and still no file
# is under FINAL (an mv without -n), with `mv -f`, for the system's reason if
# that fails.
rename_keeping() {
  if ! [ -e "$2" ] && ! [ -L "$2" ]; then
    report renamed "$1"
    return
  fi
  if ! [ -e "$3" ] && ! [ -L "$3" ]; then
    mv -n -- "$2" "$6" 2>/dev/null
    if ! [ -e "$2" ] && ! [ -L "$2" ]; then
      report renamed "$1"
      return
    fi
  fi
  if [ -e "$3" ] || [ -L "$3" ]; then
    held_by_other "$1" "$2" "$3" "$4" "$5"
  elif ! error=$(mv -f -- "$2" "$3" 2>&1); then
    report rename-failed "$1" "$(one_line "$error")"
  else
    report renamed "$1"
  fi
}

# flush_renames FOLDER...: flush the file systems that hold them once the
# copies are renamed there, and say so: `renames-flushed`, or
# `renames-not-flushed MESSAGE` (what sync said) where the server could not
# confirm the renames (and the data they name) are on its disk. The renamed
# copies stay where they are: the daemon does not count them as arrived, and
# its next attempt puts the same bytes there again and flushes.
flush_renames() {
  if said=$(flush_folders "$@"); then
    report renames-flushed
  else
    report renames-not-flushed "$(one_line "$said")"
  fi
}

# report_kept INDEX COPY: the copy of an upload that failed, kept to be
# continued if something of it was written (an upload that failed at its
# start wrote nothing; an empty copy is never continued, so it goes).
report_kept() {
  if [ -f "$2" ] && ! [ -L "$2" ] && [ -s "$2" ]; then
    report kept "$1"
  else
    rm -f -- "$2" 2>/dev/null
  fi
}

# remove_if_empty UPLOAD_FOLDER...: this batch's own upload folders (no other
# batch writes into them), each removed if nothing is in it, else reported
# (by its position) as left.
remove_if_empty() {
  index=0
  for folder do
    if ! rmdir -- "$folder" 2>/dev/null && [ -d "$folder" ]; then
      report folder-left "$index"
    fi
    index=$((index + 1))
  done
}

# remove_upload_folders FOLDER...: with whatever is left in them (the work
# files too).
remove_upload_folders() {
  rm -rf -- "$@"
}
