/**
 * The lengths a path and each name in it may have (in bytes of UTF-8), and whether a system error
 * says one is past them (`ENAMETOOLONG`, "File name too long"): never helped by a retry, nor by
 * permissions.
 *
 * @module
 */

/** Longest name (bytes of UTF-8) most file systems take. */
export const NAME_MAX_BYTES = 255;

/** Longest path (bytes, without its ending NUL) the system takes: PATH_MAX less one. */
export const PATH_MAX_BYTES = Deno.build.os === "darwin" ? 1023 : 4095;

/** The length of `text` in bytes of UTF-8. */
export const bytesOf = (text: string): number => new TextEncoder().encode(text).length;

/** Whether `error` says a name or a path is too long for the system. */
export function isNameTooLong(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return code === "ENAMETOOLONG" || /File name too long|name too long/i.test(message);
}
