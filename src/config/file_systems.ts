/**
 * File system kinds by their Linux `statfs` magic number: the name said in
 * messages, and whether events on it may miss changes made elsewhere (a
 * network or FUSE file system). The watch (`watch/fs_type.ts`) and the
 * `local` transport's check for an unmounted share both read it.
 *
 * @module
 */

/** Linux statfs magic numbers of file systems whose events miss changes made elsewhere. */
const REMOTE_MAGIC = new Map<number, string>([
  [0x6969, "nfs"],
  [0x517b, "smb"],
  [0xff534d42, "cifs"],
  [0xfe534d42, "smb3"],
  [0x65735546, "fuse"],
  [0x01021997, "9p"],
  [0x00c36400, "ceph"],
  [0x5346414f, "afs"],
  [0x6b414653, "afs"],
  [0x73757245, "coda"],
  [0x564c, "ncp"],
  [0x0bd00bd0, "lustre"],
  [0x47504653, "gpfs"],
  [0xaad7aaea, "panfs"],
  [0x786f4256, "vboxsf"],
  [0x20030528, "orangefs"],
  [0x01161970, "gfs2"],
  [0x7461636f, "ocfs2"],
]);

/** Linux statfs magic numbers of common local file systems, for the name said. */
const LOCAL_MAGIC = new Map<number, string>([
  [0xef53, "ext4"],
  [0x58465342, "xfs"],
  [0x9123683e, "btrfs"],
  [0x2fc12fc1, "zfs"],
  [0x01021994, "tmpfs"],
  [0x794c7630, "overlay"],
  [0xf2f52010, "f2fs"],
  [0x4d44, "vfat"],
  [0x2011bab0, "exfat"],
  [0x5346544e, "ntfs"],
  [0x7366746e, "ntfs3"],
  [0x3153464a, "jfs"],
  [0x9660, "iso9660"],
  [0x15013346, "udf"],
  [0x73717368, "squashfs"],
]);

/** The kind of file system whose `statfs` magic number is `magic`. */
export function fileSystemKind(magic: number): { type: string; remote: boolean } {
  const remote = REMOTE_MAGIC.get(magic);
  const type = remote ?? LOCAL_MAGIC.get(magic) ?? `0x${magic.toString(16)}`;
  return { type, remote: remote !== undefined };
}

/** How long a look at a folder may take before it is taken for a share that stopped answering. */
export const SHARE_ANSWER_MS = 5_000;

/**
 * What `call` (a look at a folder, made on the runtime's thread pool) gives,
 * or `null` when it has not answered within `ms`: on a share whose server
 * stopped answering it never does (the call is left waiting).
 */
export async function answerWithin<T>(call: Promise<T>, ms = SHARE_ANSWER_MS): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((done) => timer = setTimeout(() => done(null), ms));
  try {
    return await Promise.race([call, late]);
  } finally {
    clearTimeout(timer);
  }
}
