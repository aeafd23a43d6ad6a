/**
 * Whether a FITS file is structurally complete: every HDU's header ends with
 * an END card, and the file is exactly as long as its headers and padded data
 * say. Only header blocks are read; data is skipped by seeking, never read.
 *
 * Data bytes of one HDU: |BITPIX|/8 × GCOUNT × (PCOUNT + NAXIS1 × ... × NAXISn),
 * none when NAXIS = 0, padded to whole 2880-byte blocks (a file that ends
 * right after its last data byte, without that padding, is told apart:
 * `unpadded`). For the primary HDU
 * GCOUNT = 1 and PCOUNT = 0, unless it holds random groups (GROUPS = T,
 * NAXIS1 = 0), whose product leaves out NAXIS1.
 *
 * @module
 */
import {
  BLOCK_BYTES,
  type FitsValue,
  hasEndCard,
  MAX_HEADER_BLOCKS,
  parseHeaderCards,
} from "./fits_header.ts";
import { RegularFile } from "./regular_file.ts";

/** Where one HDU lies in the file (byte offsets). */
export interface FitsHdu {
  /** First byte of its header. */
  start: number;
  /** First byte of its data (end of its header blocks). */
  dataStart: number;
  /** End of its data, padded to a whole block: where the next HDU starts. */
  end: number;
}

/** What the HDUs of a file say about it. */
export type FitsShape =
  /** Empty, or the first card is not `SIMPLE  =`. */
  | { kind: "not-fits" }
  /**
   * Exactly as long as its HDUs say. `moreExpected` says why further HDUs
   * are still to come (a header-only primary with EXTEND = T, or fewer
   * extensions than NEXTEND announces), else null. `appendable`: HDUs may
   * be appended to it (EXTEND = T, or extensions already there), unless
   * NEXTEND counts exactly the extensions there.
   */
  | { kind: "complete"; hdus: FitsHdu[]; moreExpected: string | null; appendable: boolean }
  /** A header without END yet, or shorter than its HDUs say (`expectedBytes`: at least that many). */
  | { kind: "incomplete"; expectedBytes: number | null; reason: string }
  /** Its HDUs end at `expectedBytes`; bytes follow that start no extension. */
  | { kind: "longer"; hdus: FitsHdu[]; expectedBytes: number }
  /**
   * Every data byte of its last HDU is there, but not the padding to a whole
   * block after them (`expectedBytes`), which some writers leave out; no
   * further HDU is announced (NEXTEND).
   */
  | { kind: "unpadded"; hdus: FitsHdu[]; expectedBytes: number }
  /** Starts as FITS, but a header is unusable (bad BITPIX/NAXIS, too long, too many HDUs). */
  | { kind: "invalid"; reason: string };

/** What {@linkcode readFitsStructure} found; `size` and `mtimeMs` are the file's as read. */
export type FitsStructure = FitsShape & { size: number; mtimeMs: number };

/** Limits of {@linkcode readFitsStructure}. */
export interface FitsStructureLimits {
  /** Longest header accepted, in blocks. @default {@linkcode MAX_HEADER_BLOCKS} */
  maxHeaderBlocks?: number;
  /** Most HDUs followed. @default 10000 */
  maxHdus?: number;
}

const SIMPLE = "SIMPLE  = ";
const XTENSION = "XTENSION= ";
const BITPIX_VALUES = new Set([8, 16, 32, 64, -32, -64]);

/**
 * Read the structure of the file at `path` (synchronously: a few small reads
 * of header blocks, microseconds on a local disk). An empty file whose name
 * ends in `.fits`, `.fit`, `.fts` or `.fz`, or one so named whose first block is all zeros (its
 * space reserved, its header not written yet), is incomplete, not "not FITS".
 *
 * @throws {Deno.errors.NotFound} when the file is gone; other errors when it
 *   cannot be read or is not a regular file (never waited on)
 */
export function readFitsStructure(
  path: string,
  limits: FitsStructureLimits = {},
): FitsStructure {
  using file = RegularFile.open(path);
  const { size, mtimeMs } = file.info;
  // A camera may create the file when the exposure starts and write it at its end, or reserve
  // its space first (`fallocate`, `truncate -s`): all zeros until the header is written.
  if (FITS_NAME.test(path)) {
    const reason = size === 0 ? EMPTY_FITS : reservedOnly(file, size) ? RESERVED_FITS : null;
    if (reason !== null) return { size, mtimeMs, kind: "incomplete", expectedBytes: null, reason };
  }
  return { size, mtimeMs, ...walk(file, size, limits) };
}

/** Names only FITS files have: an empty file so named is a FITS file not written yet. */
const FITS_NAME = /\.(fits|fit|fts|fz)$/i;

/** Why an empty file named as FITS is incomplete. */
const EMPTY_FITS = "empty so far, and a FITS file holds at least one header";

/** Why a file named as FITS whose first block is all zeros is incomplete. */
const RESERVED_FITS =
  "its first bytes are still zeros (space reserved, its header not written yet)";

/** Whether the first block of `file` (or all of it, if shorter) holds only zeros. */
function reservedOnly(file: RegularFile, size: number): boolean {
  return file.readAt(0, Math.min(BLOCK_BYTES, size)).every((byte) => byte === 0);
}

/** Follow the HDUs from the start of the file. */
function walk(file: RegularFile, size: number, limits: FitsStructureLimits): FitsShape {
  const maxHeaderBlocks = limits.maxHeaderBlocks ?? MAX_HEADER_BLOCKS;
  const maxHdus = limits.maxHdus ?? 10_000;
  if (size === 0) return { kind: "not-fits" };
  const first = file.readAt(0, Math.min(SIMPLE.length, size));
  if (!startsLike(first, SIMPLE)) return { kind: "not-fits" };
  if (first.length < SIMPLE.length) {
    return { kind: "incomplete", expectedBytes: null, reason: `only ${size} byte(s) so far` };
  }
  const hdus: FitsHdu[] = [];
  let primary: Map<string, FitsValue> | undefined;
  let start = 0;
  for (;;) {
    const index = hdus.length;
    if (index >= maxHdus) return { kind: "invalid", reason: `more than ${maxHdus} HDUs` };
    const header = readHeader(file, start, size, maxHeaderBlocks);
    if (header === "too long") {
      return {
        kind: "invalid",
        reason: `no END card in the first ${maxHeaderBlocks} blocks of HDU ${index}`,
      };
    }
    if (header === null) {
      return {
        kind: "incomplete",
        expectedBytes: null,
        reason: `the header of HDU ${index} has no END card yet`,
      };
    }
    const cards = parseHeaderCards(header);
    primary ??= cards;
    const dataBytes = dataSize(cards, index === 0);
    if (typeof dataBytes === "string") {
      return { kind: "invalid", reason: `HDU ${index}: ${dataBytes}` };
    }
    const dataStart = start + header.length;
    const end = dataStart + Math.ceil(dataBytes / BLOCK_BYTES) * BLOCK_BYTES;
    hdus.push({ start, dataStart, end });
    if (end === size) {
      return {
        kind: "complete",
        hdus,
        moreExpected: moreExpected(primary, hdus),
        appendable: appendable(primary, hdus),
      };
    }
    // Its data all there, only the padding missing, and no more HDUs announced.
    const unpadded = end > size && dataBytes > 0 && dataStart + dataBytes === size;
    if (unpadded && moreExpected(primary, hdus) === null) {
      return { kind: "unpadded", hdus, expectedBytes: end };
    }
    if (end > size) {
      return {
        kind: "incomplete",
        expectedBytes: end,
        reason: `HDU ${index} ends at byte ${end}, the file has ${size}`,
      };
    }
    const next = file.readAt(end, Math.min(XTENSION.length, size - end));
    if (!startsLike(next, XTENSION)) return { kind: "longer", hdus, expectedBytes: end };
    start = end;
  }
}

/**
 * The header blocks starting at `start`, up to and including the one with the
 * END card; null when the file ends before END, "too long" past the limit.
 */
function readHeader(
  file: RegularFile,
  start: number,
  size: number,
  maxBlocks: number,
): Uint8Array | null | "too long" {
  const blocks: Uint8Array[] = [];
  for (let at = start; at < size; at += BLOCK_BYTES) {
    if (blocks.length >= maxBlocks) return "too long";
    const block = file.readAt(at, Math.min(BLOCK_BYTES, size - at));
    if (block.length < BLOCK_BYTES) {
      // A last block cut short: the header counts as whole blocks, so an END
      // here makes the HDU end past the file's end (incomplete).
      if (!hasEndCard(block)) return null;
      const padded = new Uint8Array(BLOCK_BYTES).fill(0x20);
      padded.set(block);
      blocks.push(padded);
      return concat(blocks);
    }
    blocks.push(block);
    if (hasEndCard(block)) return concat(blocks);
  }
  return null;
}

/** Data bytes of one HDU (unpadded), or why they cannot be computed. */
function dataSize(cards: Map<string, FitsValue>, primary: boolean): number | string {
  const bitpix = cards.get("BITPIX");
  if (typeof bitpix !== "number" || !BITPIX_VALUES.has(bitpix)) {
    return `BITPIX must be 8, 16, 32, 64, -32 or -64, not ${String(bitpix)}`;
  }
  const naxis = cards.get("NAXIS");
  if (!isCount(naxis) || naxis > 999) return `NAXIS must be 0 to 999, not ${String(naxis)}`;
  const axes: number[] = [];
  for (let i = 1; i <= naxis; i++) {
    const length = cards.get(`NAXIS${i}`);
    if (!isCount(length)) return `NAXIS${i} must be a count, not ${String(length)}`;
    axes.push(length);
  }
  const groups = primary && cards.get("GROUPS") === true && axes[0] === 0;
  // Random groups leave NAXIS1 (always 0) out of the product; with no other axis there is no data.
  const counted = groups ? axes.slice(1) : axes;
  if (counted.length === 0) return 0;
  let pcount = 0;
  let gcount = 1;
  if (!primary || groups) {
    const p = cards.get("PCOUNT") ?? 0;
    const g = cards.get("GCOUNT") ?? 1;
    if (!isCount(p)) return `PCOUNT must be a count, not ${String(p)}`;
    if (!isCount(g)) return `GCOUNT must be a count, not ${String(g)}`;
    [pcount, gcount] = [p, g];
  }
  const bytes = (Math.abs(bitpix) / 8) * gcount * (pcount + counted.reduce((a, b) => a * b, 1));
  return Number.isSafeInteger(bytes) ? bytes : "its data size is too large";
}

/** Why more HDUs may still be appended to a file that is complete as it is; null if none. */
function moreExpected(primary: Map<string, FitsValue>, hdus: FitsHdu[]): string | null {
  const extensions = hdus.length - 1;
  const nextend = primary.get("NEXTEND");
  if (isCount(nextend) && nextend > extensions) {
    return `NEXTEND = ${nextend} but ${extensions} extension(s) are there`;
  }
  if (extensions === 0 && hdus[0].end === hdus[0].dataStart && primary.get("EXTEND") === true) {
    return "its primary HDU has no data and announces extensions (EXTEND = T), but none is there";
  }
  return null;
}

/** Whether HDUs may be appended to a complete file (see `FitsShape`). */
function appendable(primary: Map<string, FitsValue>, hdus: FitsHdu[]): boolean {
  const nextend = primary.get("NEXTEND");
  if (isCount(nextend) && nextend === hdus.length - 1) return false;
  return primary.get("EXTEND") === true || hdus.length > 1;
}

function isCount(value: FitsValue | undefined): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** Whether `bytes` equal the first `bytes.length` characters of `text` (ASCII). */
function startsLike(bytes: Uint8Array, text: string): boolean {
  if (bytes.length === 0) return false;
  for (let i = 0; i < bytes.length; i++) {
    if (i >= text.length || bytes[i] !== text.charCodeAt(i)) return false;
  }
  return true;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.length * BLOCK_BYTES);
  parts.forEach((part, i) => out.set(part, i * BLOCK_BYTES));
  return out;
}
