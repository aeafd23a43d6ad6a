# shellcheck shell=sh
# The start of every remote script (see remote_script.ts). The script reaches
# the remote `sh -s` on its standard input; the line before this one sets
# `marker`, a random word that starts every result line, so neither a file
# name nor the login shell's own output can pass for a result. File names only
# ever appear as arguments quoted for a POSIX shell (posixWord in
# shell_words.ts) in the generated lines after the script.

: "${marker:?is set by the line before}"
LC_ALL=C
export LC_ALL
unset CDPATH
# No globbing: every word is data.
set -f
# Once started, a script finishes its work when the connection goes (the
# daemon killed, the link cut): a result line nobody reads fails to be written
# instead of ending the script between a rename and the removal of its upload
# folder. (Without a terminal sshd sends no hang-up; ignored all the same.)
trap '' PIPE HUP

# report WORD [DETAIL...]: one result line.
report() {
  printf '%s %s\n' "$marker" "$*"
}

# one_line TEXT: TEXT with its line breaks turned into spaces, for a result line.
one_line() {
  printf '%s' "$1" | tr '\n\r' '  '
}

# hash_tool: print the fastest SHA-256 command there is (nothing when there is
# none). Each of them hashes its standard input, or the files it is given,
# printing "HASH *NAME" per file. OpenSSL uses the CPU's SHA instructions:
# several times faster than coreutils' sha256sum.
hash_tool() {
  if openssl dgst -sha256 -r </dev/null >/dev/null 2>&1; then
    echo 'openssl dgst -sha256 -r'
  elif command -v sha256sum >/dev/null 2>&1; then
    echo 'sha256sum -b'
  elif command -v shasum >/dev/null 2>&1; then
    echo 'shasum -a 256 -b'
  fi
}

# space_left FOLDER: print the KiB available to this user there, then how many
# more files the file system can hold ("-" where df -i does not say: no GNU df,
# or a file system that does not count them); empty if unknown. One out of
# inodes is full with room left: it takes no new file.
space_left() {
  kib=$(df -Pk -- "$1" 2>/dev/null | awk 'NR == 2 { print $4 }')
  [ -n "$kib" ] || return 0
  # The fields around the use column (NN% or -), so a device with spaces in its
  # name does not shift them.
  files=$(df -Pi -- "$1" 2>/dev/null | awk 'NR == 1 && $2 != "Inodes" { exit } NR == 2 {
    for (i = 5; i <= NF; i++) if ($i ~ /^([0-9]+%|-)$/) { if ($(i - 3) > 0) print $(i - 1); exit }
  }')
  printf '%s %s\n' "$kib" "${files:--}"
}

# flush_folders FOLDER...: flush the file systems that hold them (GNU sync -f;
# else every file system). Where their data could not be written out (GNU sync
# says "error syncing": a full disk found only now, on NFS or a thin volume, or
# an I/O error), or no flush ran at all (no sync here, or one that fails),
# print what sync said and fail: with remote_sync, nothing counts as on disk
# that the server did not confirm there.
flush_folders() {
  said=$(sync -f -- "$@" 2>&1) && return 0
  case $said in
    *"error syncing"*)
      printf '%s\n' "$said"
      return 1
      ;;
  esac
  # No `sync -f` here (not GNU sync, or no syncfs), or a folder it cannot open:
  # every file system.
  if ! command -v sync >/dev/null 2>&1; then
    echo 'sync: not found on the PATH of this login: install it there (coreutils), or set remote_sync: false'
    return 1
  fi
  said=$(sync 2>&1) && return 0
  status=$?
  printf '%s\n' "${said:-sync: failed (exit status $status)}"
  return 1
}

# report_flush FOLDER...: flush_folders; where that fails, the result
# `flush-failed MESSAGE` (what sync said), and status 1.
report_flush() {
  said=$(flush_folders "$@") && return 0
  report flush-failed "$(one_line "$said")"
  return 1
}
