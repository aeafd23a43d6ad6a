/**
 * The status page writes names and messages as the log and `status` do: its own script's
 * functions, taken from the page as served, against the log's.
 */
import assert from "node:assert/strict";
import { STATUS_PAGE } from "../../../src/status/page.ts";
import { escapeControlChars, quoteIfUnsafe } from "../../../src/log/logging.ts";

/** The page script's `shown` (names) and `escaped` (messages). */
function pageFunctions(): { shown(name: string): string; escaped(text: string): string } {
  const start = STATUS_PAGE.indexOf("const UNSAFE");
  const end = STATUS_PAGE.indexOf("function bytes");
  assert.ok(start > 0 && end > start, "the page defines UNSAFE, shown and escaped");
  const [shown, escaped] = new Function(
    `${STATUS_PAGE.slice(start, end)}return [shown, escaped];`,
  )();
  return { shown, escaped };
}

Deno.test("the status page quotes names and escapes messages as the log does, bidirectional overrides too", () => {
  const { shown, escaped } = pageFunctions();
  const texts = [
    "plain m42.fits",
    "new\nline.fits",
    "bidi \u202estif.exe.fits",
    'q"u\\o\te.fits',
    "c1 \u0085.fits",
    "esc \u001b[31m red",
    "isolate \u2066x\u2069.fits",
    "Cannot send /data/bi\u202edi.fits: Permission denied",
    "zero\u200bwidth.fits",
    "arabic mark \u061c.fits",
    "bom \ufeff.fits",
    "joined \u{1F469}\u200d\u{1F52C}.fits",
  ];
  for (const text of texts) {
    assert.equal(shown(text), quoteIfUnsafe(text), JSON.stringify(text));
    assert.equal(escaped(text), escapeControlChars(text), JSON.stringify(text));
  }
  assert.equal(shown("bidi \u202estif.exe.fits"), '"bidi \\u202estif.exe.fits"');
  // Two names that look the same are told apart; a joiner, part of how emoji are written, is not.
  assert.equal(shown("a\u200b.fits"), '"a\\u200b.fits"');
  assert.equal(shown("arabic mark \u061c.fits"), '"arabic mark \\u061c.fits"');
  assert.equal(shown("\u{1F469}\u200d\u{1F52C}.fits"), "\u{1F469}\u200d\u{1F52C}.fits");
});
