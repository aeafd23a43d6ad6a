/**
 * How a name found in a watch folder reads in a log line or a listing (`status`, a dry run):
 * characters that could break or disguise a line, and bytes that were not UTF-8, written as
 * escapes.
 *
 * @module
 */
import { sep as SEP } from "node:path";
import { UNSAFE_CHARACTERS } from "../log/logging.ts";

/**
 * Characters a listing writes as escapes: those that could break or disguise a line
 * (`UNSAFE_CHARACTERS`: controls a terminal would act on, separators, bidirectional overrides
 * that would show the rest of the line reversed, characters that show nothing) and U+FFFD.
 */
const UNREADABLE = new RegExp(`[${UNSAFE_CHARACTERS}\\uFFFD]`);
const EVERY_UNREADABLE = new RegExp(UNREADABLE.source, "g");

/** Escape a name for a log line or a listing: quotes and the characters above as `\u...`. */
export function escapeName(name: string): string {
  return JSON.stringify(name).slice(1, -1).replace(
    EVERY_UNREADABLE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** A part of a path a listing escapes: one {@linkcode UNREADABLE}, or with a backslash. */
const ESCAPED_PART = new RegExp(`[${UNSAFE_CHARACTERS}\\uFFFD\\\\]`);

/**
 * `path` for a listing: each of its parts (folders too) escaped (see
 * {@linkcode escapeName}) when it holds control characters, separators,
 * bidirectional overrides or bytes that were not UTF-8, or a backslash (so a
 * name with `\n` written in it reads `\\n`, never like one with a line break),
 * otherwise as is.
 */
export function readablePath(path: string): string {
  if (!ESCAPED_PART.test(path)) return path;
  return path.split(SEP).map((part) => ESCAPED_PART.test(part) ? escapeName(part) : part)
    .join(SEP);
}

/**
 * A reason for a listing (it may name a link's target): the characters of
 * {@linkcode escapeName} written as escapes, the rest (quotes too) as it is.
 */
export function readableText(text: string): string {
  if (!UNREADABLE.test(text)) return text;
  return text.replace(EVERY_UNREADABLE, (c) => escapeName(c));
}
