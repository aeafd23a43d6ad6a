/**
 * The status page's header says how long the daemon has been up and how long
 * ago it last sent a file: the same time is never more minutes ago than the
 * daemon's uptime (a success before the daemon started). Its own script's
 * functions, taken from the page as served.
 */
import assert from "node:assert/strict";
import { STATUS_PAGE } from "../../../src/status/page.ts";

/** The page script's `ago` and `dur`. */
function pageTimes(): { ago: (ms: number, now: number) => string; dur: (s: number) => string } {
  const start = STATUS_PAGE.indexOf("function ago");
  const end = STATUS_PAGE.indexOf("const time =");
  assert.ok(start > 0 && end > start, "the page defines ago and dur");
  return new Function(`${STATUS_PAGE.slice(start, end)}return { ago, dur };`)();
}

Deno.test("the page's times: a success after the start is never shown as longer ago than the uptime", () => {
  const { ago, dur } = pageTimes();
  const now = 1_795_830_000_000;
  // Up 230 s, the last file sent 220 s ago (seen on a running daemon: "last success 4 min ago",
  // "up 3 min").
  assert.equal(dur(230), "3 min");
  assert.equal(ago(now - 220_000, now), "3 min ago");
  // In seconds, as the text says it ("3 min", "1.5 h ago").
  const seconds = (text: string) => {
    const [number, unit] = text.split(" ");
    return Number(number) * { s: 1, min: 60, h: 3600, d: 86400 }[unit as "s"];
  };
  for (let up = 60; up < 3 * 86400; up += 7) {
    for (const before of [0, 1, 29, 31]) {
      const since = up - before;
      const said = ago(now - since * 1000, now);
      assert.ok(seconds(said) <= seconds(dur(up)), `"last success ${said}", "up ${dur(up)}"`);
    }
  }
  assert.equal(ago(now - 30_000, now), "30 s ago");
  assert.equal(ago(now - 3 * 3600_000, now), "3.0 h ago");
});
