/**
 * Names of the temporary files transports write before renaming into place.
 * The watcher ignores them, and they are hidden (leading dot) on every side.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Suffix that marks an image-transfer temporary file. */
export const TEMP_SUFFIX = ".image-transfer-partial";

/** Longest file name (in UTF-8 bytes) most file systems accept. */
const NAME_MAX_BYTES = 255;

/**
 * The temporary name for a final file name (a base name, not a path). The same
 * final name always maps to the same temporary name, so a retry overwrites the
 * leftover of an interrupted attempt instead of piling up new ones.
 */
export function tempNameFor(finalName: string): string {
  const candidate = `.${finalName}${TEMP_SUFFIX}`;
  if (new TextEncoder().encode(candidate).length <= NAME_MAX_BYTES) return candidate;
  const digest = createHash("sha256").update(finalName).digest("hex").slice(0, 32);
  return `.${digest}${TEMP_SUFFIX}`;
}

/**
 * The name of the hidden folder, inside a destination folder, that one daemon
 * uploads into before renaming each verified copy out of it (scp and rsync). `owner`
 * tells daemons apart (see {@linkcode uploadOwner}); a file always goes to the
 * same path in it, so a retry overwrites what an interrupted attempt left.
 */
export function uploadFolderName(owner: string): string {
  return `.incoming-${owner}${TEMP_SUFFIX}`;
}

/**
 * A short stable id for the daemon that sends `parts` (host name, job, …), so
 * two daemons sending to the same folder never share an upload folder.
 */
export function uploadOwner(parts: string[]): string {
  return createHash("sha256").update(parts.join("\0")).digest("hex").slice(0, 10);
}

/** Whether a base name is one of our temporary files or batch folders. */
export function isTempName(name: string): boolean {
  return name.startsWith(".") && name.endsWith(TEMP_SUFFIX);
}
