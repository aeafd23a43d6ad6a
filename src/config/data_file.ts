/**
 * A FITS image given as the config file (`-c image.fits`, a name completed to the wrong file): it
 * starts with the header card `SIMPLE  =`. `config/load.ts` refuses to read one as a config (its
 * header is no YAML, nor the TOML it would look like), and `init` to write over one, `--force`
 * or not: it holds an instrument's data.
 *
 * @module
 */

/** The first bytes of every FITS file: the keyword of its first header card. */
const FITS_START = new TextEncoder().encode("SIMPLE  =");

/** Whether `bytes` (a file's first bytes, or all of them) start as a FITS file does. */
export function isFitsImage(bytes: Uint8Array): boolean {
  return bytes.length >= FITS_START.length && FITS_START.every((byte, i) => bytes[i] === byte);
}

/** Whether the file `file` is there and starts as a FITS file does (`false` where unreadable). */
export async function isFitsImageFile(file: string): Promise<boolean> {
  try {
    using handle = await Deno.open(file);
    const head = new Uint8Array(FITS_START.length);
    let read = 0;
    while (read < head.length) {
      const got = await handle.read(head.subarray(read));
      if (got === null) break;
      read += got;
    }
    return isFitsImage(head.subarray(0, read));
  } catch {
    return false;
  }
}

/** What a FITS file given as the config is. */
export const FITS_NOT_CONFIG = 'it is a FITS image (it starts with "SIMPLE  ="), not a config file';
