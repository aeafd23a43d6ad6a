/**
 * Reads the primary header of a FITS file (only its header blocks, never the
 * data; a gzip-compressed file through gunzip, only that far) and finds the
 * observation start in it, or in the first extension's header where the
 * primary HDU only opens the file.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { AsyncRegularFile } from "./regular_file.ts";

/** One header card's value: string (quotes removed, '' unescaped, trailing spaces trimmed), number, boolean, or null for an undefined value. */
export type FitsValue = string | number | boolean | null;

/** Size of one FITS block in bytes. */
export const BLOCK_BYTES = 2880;
/** Size of one header card in bytes. */
const CARD_BYTES = 80;
/**
 * The longest header read, in blocks (36,000 cards): the completeness check
 * (`fits_structure.ts`) accepts as long a header, so the DATE-OBS of every
 * file it takes for whole is read too (ESO's HIERARCH headers run to
 * thousands of cards).
 */
export const MAX_HEADER_BLOCKS = 1000;
/** Keywords whose cards carry commentary, not a value. */
const COMMENTARY = new Set(["", "COMMENT", "HISTORY"]);
const INTEGER = /^[+-]?\d+$/;
const REAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[ED][+-]?\d+)?$/i;

/** Why a header could not be read; wrapped with the file name by the callers. */
class HeaderProblem extends Error {}

/**
 * Read the primary header of a FITS file: 2880-byte blocks of 36 80-character
 * cards, up to the END card. Reads only the header blocks, never the data; a
 * gzip-compressed file (`.fits.gz`) is read through gunzip, only that far.
 *
 * With `observation`, the cards the observation start is read from: where the
 * primary header has no DATE-OBS and its HDU no data (`NAXIS = 0`: a
 * tile-compressed `.fz` file, and most files of several extensions, whose
 * primary HDU only opens the file), the first extension's cards are added to
 * it (the primary's win).
 *
 * @param path File to read.
 * @param options.maxBlocks Largest header accepted, in blocks. @default {@linkcode MAX_HEADER_BLOCKS}
 * @returns Keyword -> value; the first card of a repeated keyword wins.
 * @throws {Error} "Cannot read FITS header of <path>: <why>" when the file cannot
 * be opened, is not FITS (first card must be `SIMPLE  =`), ends before END, or
 * has a header longer than `maxBlocks`.
 */
export async function readFitsHeader(
  path: string,
  options: { maxBlocks?: number; observation?: boolean } = {},
): Promise<Map<string, FitsValue>> {
  const maxBlocks = options.maxBlocks ?? MAX_HEADER_BLOCKS;
  if (!Number.isInteger(maxBlocks) || maxBlocks < 1) {
    throw new RangeError(`Cannot read FITS header of ${path}: maxBlocks must be >= 1`);
  }
  try {
    await using file = await HeaderBytes.open(path);
    const primary = await readHeaderAt(file, 0, maxBlocks);
    const cards = primary.cards;
    if (options.observation && !cards.has("DATE-OBS") && cards.get("NAXIS") === 0) {
      // A file that ends with its primary HDU, or a broken extension, leaves the primary alone.
      const extension = await readHeaderAt(file, primary.end, maxBlocks).catch(() => null);
      for (const [keyword, value] of extension?.cards ?? []) {
        if (!cards.has(keyword)) cards.set(keyword, value);
      }
    }
    return cards;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new Error(`Cannot read FITS header of ${path}: ${why}`, { cause: error });
  }
}

/**
 * The header that starts at `offset` (the primary one at 0, which must start
 * with `SIMPLE`; an extension's with `XTENSION`), and where it ends.
 */
async function readHeaderAt(
  file: HeaderBytes,
  offset: number,
  maxBlocks: number,
): Promise<{ cards: Map<string, FitsValue>; end: number }> {
  const blocks: Uint8Array[] = [];
  let ended = false;
  while (!ended && blocks.length < maxBlocks) {
    const block = await file.readAt(offset + blocks.length * BLOCK_BYTES, BLOCK_BYTES);
    if (blocks.length === 0 && offset === 0) assertSimpleCard(block);
    if (blocks.length === 0 && offset > 0 && latin1(block.subarray(0, 10)) !== "XTENSION= ") {
      throw new HeaderProblem("no extension after the primary HDU");
    }
    blocks.push(block);
    ended = block.length < BLOCK_BYTES || hasEndCard(block);
  }
  if (!ended) {
    throw new HeaderProblem(
      `no END card in the first ${maxBlocks} blocks (${maxBlocks * (BLOCK_BYTES / CARD_BYTES)} ` +
        `cards): not a FITS header`,
    );
  }
  return {
    cards: parseHeaderCards(Buffer.concat(blocks)),
    end: offset + blocks.length * BLOCK_BYTES,
  };
}

/** How much a gzip-compressed file is read at a time. */
const GZIP_READ_BYTES = 64 * 1024;

/**
 * The bytes of a FITS file from its start: read as they are, or, for a
 * gzip-compressed file (its first bytes say so), as gunzip gives them,
 * decompressed only as far as asked.
 */
class HeaderBytes implements AsyncDisposable {
  readonly #file: AsyncRegularFile;
  readonly #gunzipped: ReadableStreamDefaultReader<Uint8Array> | null;
  #chunks: Uint8Array[] = [];
  #have = 0;
  #ended = false;

  private constructor(file: AsyncRegularFile, gzip: boolean) {
    this.#file = file;
    if (!gzip) {
      this.#gunzipped = null;
      return;
    }
    let position = 0;
    const compressed = new ReadableStream<Uint8Array<ArrayBuffer>>({
      pull: async (controller) => {
        const chunk = await file.readAt(position, GZIP_READ_BYTES);
        position += chunk.length;
        if (chunk.length === 0) controller.close();
        else controller.enqueue(chunk as Uint8Array<ArrayBuffer>);
      },
    });
    this.#gunzipped = compressed.pipeThrough(new DecompressionStream("gzip")).getReader();
  }

  /** Open `path` (see {@linkcode AsyncRegularFile.open}). */
  static async open(path: string): Promise<HeaderBytes> {
    const file = await AsyncRegularFile.open(path);
    try {
      const magic = await file.readAt(0, 2);
      return new HeaderBytes(file, magic[0] === 0x1f && magic[1] === 0x8b);
    } catch (error) {
      await file[Symbol.asyncDispose]();
      throw error;
    }
  }

  /** Up to `length` bytes at `offset` (fewer only at the end). */
  async readAt(offset: number, length: number): Promise<Uint8Array> {
    const reader = this.#gunzipped;
    if (reader === null) return this.#file.readAt(offset, length);
    while (this.#have < offset + length && !this.#ended) {
      const { done, value } = await reader.read();
      if (done) this.#ended = true;
      else {
        this.#chunks.push(value);
        this.#have += value.length;
      }
    }
    const all = Buffer.concat(this.#chunks);
    this.#chunks = [all];
    return all.subarray(offset, Math.min(offset + length, all.length));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#gunzipped?.cancel().catch(() => {});
    await this.#file[Symbol.asyncDispose]();
  }
}

/**
 * Parse a primary header from bytes already read, with the rules of
 * {@linkcode readFitsHeader}. Bytes after the END card are ignored.
 *
 * @throws {Error} "Cannot parse FITS header: <why>" when the bytes are not FITS
 * or end before the END card.
 */
export function parseFitsHeader(bytes: Uint8Array): Map<string, FitsValue> {
  try {
    assertSimpleCard(bytes);
    return parseHeaderCards(bytes);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new Error(`Cannot parse FITS header: ${why}`, { cause: error });
  }
}

/**
 * The observation start from DATE-OBS (UTC). Accepts ISO `2024-03-15T03:12:45.123`,
 * `2024-03-15T03:12:45`, `2024-03-15` (with the time from a TIME-OBS, UT or UTC
 * card `03:12:45` when present), and the old `15/03/24` dd/mm/yy form (years
 * 1900-1999, as the FITS standard defines it).
 *
 * @returns The instant, or `null` when DATE-OBS is missing or unparseable.
 */
export function observationDate(header: Map<string, FitsValue>): Date | null {
  const raw = header.get("DATE-OBS");
  if (typeof raw !== "string") return null;
  const text = raw.trim();
  let match = ISO_DATE.exec(text);
  let year: number, month: number, day: number;
  if (match) {
    [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
    if (match[4] !== undefined) {
      return utcDate(year, month, day, [match[4], match[5], match[6]]);
    }
  } else {
    match = OLD_DATE.exec(text);
    if (!match) return null;
    [day, month, year] = [Number(match[1]), Number(match[2]), 1900 + Number(match[3])];
  }
  return utcDate(year, month, day, timeCard(header));
}

/** DATE-OBS in the standard's form: the `T` between date and time, or the space some software writes. */
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}):(\d{2}(?:\.\d*)?)Z?)?$/;
/** DATE-OBS in the form before 2000: DD/MM/YY, the time in TIME-OBS, UT or UTC. */
const OLD_DATE = /^(\d{2})\/(\d{2})\/(\d{2})$/;

/** Why a DATE-OBS `raw` that {@linkcode observationDate} did not take names no instant. */
export function observationDateProblem(raw: FitsValue): string {
  const text = typeof raw === "string" ? raw.trim() : "";
  return ISO_DATE.test(text) || OLD_DATE.test(text)
    ? `${JSON.stringify(raw)} is not a real date (a day, month or time out of range)`
    : `${JSON.stringify(raw)} is not a date in a known form (YYYY-MM-DDThh:mm:ss or DD/MM/YY)`;
}

/** The hh, mm, ss(.fff) parts of the first TIME-OBS / UT / UTC card in hh:mm:ss form. */
function timeCard(header: Map<string, FitsValue>): string[] {
  for (const keyword of ["TIME-OBS", "UT", "UTC"]) {
    const value = header.get(keyword);
    if (typeof value !== "string") continue;
    const match = /^(\d{2}):(\d{2}):(\d{2}(?:\.\d*)?)$/.exec(value.trim());
    if (match) return [match[1], match[2], match[3]];
  }
  return ["00", "00", "00"];
}

/** A validated UTC instant, or null when any field is out of range. */
function utcDate(year: number, month: number, day: number, time: string[]): Date | null {
  const [hour, minute, seconds] = time.map(Number);
  if (hour > 23 || minute > 59 || !(seconds < 61)) return null;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return null;
  // Cut to the millisecond, never rounded up: 11:59:59.9999 is before noon (a night rule's hour).
  // A leap second (23:59:60) is the last moment of its own day, not the next day's first.
  date.setUTCHours(hour, minute, 0, Math.min(Math.floor(seconds * 1000 + 1e-6), 59_999));
  return date;
}

/** Throw unless the first card is `SIMPLE  =`. */
function assertSimpleCard(bytes: Uint8Array): void {
  const first = latin1(bytes.subarray(0, 10));
  if (first !== "SIMPLE  = ") {
    throw new HeaderProblem(
      bytes.length === 0
        ? "not a FITS file (it is empty)"
        : "not a FITS file (no SIMPLE card first)",
    );
  }
}

/** Whether one header block holds the END card. */
export function hasEndCard(block: Uint8Array): boolean {
  for (let at = 0; at + CARD_BYTES <= block.length; at += CARD_BYTES) {
    if (latin1(block.subarray(at, at + 8)) === "END     ") return true;
  }
  return false;
}

/**
 * Walk the cards of one header (any HDU's) up to END and collect the values;
 * the first card of a repeated keyword wins.
 *
 * @throws {Error} when the bytes end before the END card
 */
export function parseHeaderCards(bytes: Uint8Array): Map<string, FitsValue> {
  const header = new Map<string, FitsValue>();
  let lastString: string | undefined; // keyword whose string value may be CONTINUEd
  for (let at = 0; at + CARD_BYTES <= bytes.length; at += CARD_BYTES) {
    const card = latin1(bytes.subarray(at, at + CARD_BYTES));
    const keyword = card.slice(0, 8).trimEnd();
    if (keyword === "END") return header;
    if (keyword === "CONTINUE" && lastString !== undefined) {
      const previous = header.get(lastString);
      const next = parseValue(card.slice(8));
      if (typeof previous === "string" && previous.endsWith("&") && typeof next === "string") {
        header.set(lastString, previous.slice(0, -1) + next);
        continue;
      }
    }
    lastString = undefined;
    if (COMMENTARY.has(keyword)) continue;
    const entry = keyword === "HIERARCH" ? hierarchCard(card) : valueCard(keyword, card);
    if (entry === undefined || header.has(entry[0])) continue;
    header.set(entry[0], entry[1]);
    if (typeof entry[1] === "string") lastString = entry[0];
  }
  throw new HeaderProblem("truncated before the END card");
}

/** Keyword and value of a standard `KEYWORD = value / comment` card. */
function valueCard(keyword: string, card: string): [string, FitsValue] | undefined {
  if (card.slice(8, 10) !== "= ") return undefined;
  return [keyword, parseValue(card.slice(10))];
}

/** Keyword and value of an ESO `HIERARCH A B C = value` card; keyword "A B C". */
function hierarchCard(card: string): [string, FitsValue] | undefined {
  const equals = card.indexOf("=", 9);
  if (equals < 0) return undefined;
  const keyword = card.slice(9, equals).trim().replace(/\s+/g, " ");
  return keyword === "" ? undefined : [keyword, parseValue(card.slice(equals + 1))];
}

/** One value field (after `= `), comment dropped. */
function parseValue(field: string): FitsValue {
  const text = field.trimStart();
  if (text.startsWith("'")) return parseString(text);
  const slash = text.indexOf("/");
  const value = (slash < 0 ? text : text.slice(0, slash)).trim();
  if (value === "") return null;
  if (value === "T") return true;
  if (value === "F") return false;
  if (INTEGER.test(value)) return Number(value);
  if (REAL.test(value)) return Number(value.replace(/[dD]/, "E"));
  return value; // complex numbers and anything unknown stay as written
}

/** A quoted string starting at `text[0]`: '' is a quote, trailing blanks dropped. */
function parseString(text: string): string {
  let out = "";
  for (let i = 1; i < text.length; i++) {
    if (text[i] !== "'") {
      out += text[i];
    } else if (text[i + 1] === "'") {
      out += "'";
      i++;
    } else {
      break;
    }
  }
  return out.trimEnd();
}

/** Bytes as ISO-8859-1 text: one character per byte, so card columns stay aligned. */
function latin1(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return text;
}
