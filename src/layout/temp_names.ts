/**
 * How image-transfer's temporary files and upload folders are named at a
 * destination, so the watcher can leave them alone and the transports can
 * make and recognise them (`transfer/temp_name.ts` makes them): hidden
 * (leading dot) and ending in {@linkcode TEMP_SUFFIX}.
 *
 * @module
 */

/** Suffix that marks an image-transfer temporary file or upload folder. */
export const TEMP_SUFFIX = ".image-transfer-partial";

/** Whether a base name is one of image-transfer's temporary files or upload folders. */
export function isTempName(name: string): boolean {
  return name.startsWith(".") && name.endsWith(TEMP_SUFFIX);
}
