/**
 * Builds real FITS files for tests: fixed-format header cards, blocks padded
 * to 2880 bytes, and big-endian 16-bit pixel data.
 *
 * @module
 */

/** A card value as written: strings get quotes, booleans become T/F, numbers stay as typed. */
export type CardValue = string | number | boolean | { raw: string };

/** Size of one FITS block in bytes. */
export const BLOCK_BYTES = 2880;

/**
 * One 80-character header card in fixed format: keyword in columns 1–8, "= " in
 * 9–10, strings starting in column 11 (closing quote at column 20 or later),
 * numbers and logicals right-justified to column 30, then " / comment".
 */
export function card(keyword: string, value?: CardValue, comment?: string): string {
  let text = keyword.padEnd(8);
  if (value !== undefined) {
    text += "= ";
    if (typeof value === "string") {
      text += `'${value.replaceAll("'", "''").padEnd(8)}'`;
    } else if (typeof value === "boolean") {
      text += (value ? "T" : "F").padStart(20);
    } else if (typeof value === "number") {
      text += String(value).padStart(20);
    } else {
      text += value.raw.padStart(20);
    }
  }
  if (comment !== undefined) text += value === undefined ? comment : ` / ${comment}`;
  if (text.length > 80) throw new RangeError(`Cannot build card: longer than 80 characters`);
  return text.padEnd(80);
}

/** A long string over several cards with the CONTINUE convention (each piece ends in "&"). */
export function longStringCards(keyword: string, value: string): string[] {
  const escaped = value.replaceAll("'", "''");
  if (escaped === "") return [card(keyword, "")];
  const cards: string[] = [];
  const pieceLength = 60; // short enough for "CONTINUE  '" + piece + "&'" in 80 columns
  for (let at = 0; at < escaped.length; at += pieceLength) {
    let piece = escaped.slice(at, at + pieceLength);
    let carry = 0;
    while (piece.endsWith("'") && (piece.match(/'+$/)![0].length % 2) === 1) {
      piece = piece.slice(0, -1); // never split an escaped '' pair
      carry++;
    }
    at -= carry;
    const last = at + pieceLength >= escaped.length;
    const quoted = `'${piece}${last ? "" : "&"}'`;
    cards.push(cards.length === 0 ? `${keyword.padEnd(8)}= ${quoted}` : `CONTINUE  ${quoted}`);
  }
  return cards.map((text) => text.padEnd(80));
}

/** Header cards followed by END, padded with blanks to whole blocks. */
export function headerBytes(cards: string[]): Uint8Array {
  const text = [...cards, "END".padEnd(80)].join("");
  const padded = text.padEnd(Math.ceil(text.length / BLOCK_BYTES) * BLOCK_BYTES, " ");
  const bytes = new Uint8Array(padded.length);
  for (let i = 0; i < padded.length; i++) bytes[i] = padded.charCodeAt(i);
  return bytes;
}

/** Big-endian signed 16-bit pixels, row by row, padded with zeros to whole blocks. */
export function int16Data(
  width: number,
  height: number,
  pixel: (x: number, y: number) => number,
): Uint8Array {
  const bytes = new Uint8Array(Math.ceil((width * height * 2) / BLOCK_BYTES) * BLOCK_BYTES);
  const view = new DataView(bytes.buffer);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) view.setInt16((y * width + x) * 2, pixel(x, y), false);
  }
  return bytes;
}

/** The mandatory cards of a 16-bit 2-D primary image. */
export function imageCards(width: number, height: number): string[] {
  return [
    card("SIMPLE", true, "conforms to FITS standard"),
    card("BITPIX", 16, "16-bit signed integers"),
    card("NAXIS", 2),
    card("NAXIS1", width),
    card("NAXIS2", height),
  ];
}

/** Concatenate header and data units into one file image. */
export function fitsFile(...units: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(units.reduce((sum, unit) => sum + unit.length, 0));
  let at = 0;
  for (const unit of units) {
    out.set(unit, at);
    at += unit.length;
  }
  return out;
}

/** Where Debian's `python3-astropy` keeps its own FITS test files. */
export const ASTROPY_FITS_DATA = "/usr/lib/python3/dist-packages/astropy/io/fits/tests/data";

/**
 * Every `.fits` file of astropy's test data (subfolders included), sorted.
 * Fails (never skips) when the package is missing, naming it.
 */
export async function astropyFitsFiles(): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && entry.name.endsWith(".fits")) out.push(path);
    }
  };
  try {
    await walk(ASTROPY_FITS_DATA);
  } catch (error) {
    throw new Error(
      `Cannot read astropy's FITS test files in ${ASTROPY_FITS_DATA}: ${error}; ` +
        "apt-get install python3-astropy",
    );
  }
  return out.sort();
}

/**
 * A 16-bit `width` × `height` primary image, as a header-first writer would
 * produce it: the header blocks and the (padded) data blocks apart.
 */
export function imageParts(
  width: number,
  height: number,
  extraCards: string[] = [],
): { header: Uint8Array; data: Uint8Array } {
  return {
    header: headerBytes([...imageCards(width, height), ...extraCards]),
    data: int16Data(width, height, (x, y) => (x * 7 + y * 13) % 30000),
  };
}

/** A primary HDU without data that announces extensions (the first step of a multi-extension file). */
export function headerOnlyPrimary(): Uint8Array {
  return headerBytes([
    card("SIMPLE", true),
    card("BITPIX", 8),
    card("NAXIS", 0),
    card("EXTEND", true),
  ]);
}

/** A 16-bit `width` × `height` IMAGE extension, header and data. */
export function imageExtension(
  width: number,
  height: number,
  pixel: (x: number, y: number) => number = (x, y) => x + y,
): Uint8Array {
  return fitsFile(
    headerBytes([
      card("XTENSION", "IMAGE"),
      card("BITPIX", 16),
      card("NAXIS", 2),
      card("NAXIS1", width),
      card("NAXIS2", height),
      card("PCOUNT", 0),
      card("GCOUNT", 1),
    ]),
    int16Data(width, height, pixel),
  );
}
