/** relativeTo: the quick answer for a plain path is the one normalising both gives. */
import assert from "node:assert/strict";
import { posix } from "node:path";
import { relativeTo } from "../../../src/layout/watch_folder_paths.ts";

/** What relativeTo answers by normalising both paths (its answer for every path). */
function normalised(root: string, path: string): string | null {
  const normalize = (p: string) => posix.normalize(p).replace(/\/+$/, "");
  const [r, p] = [normalize(root), normalize(path)];
  if (p === r) return "";
  return p.startsWith(r + "/") ? p.slice(r.length + 1) : null;
}

Deno.test("relativeTo: plain paths, and those normalising changes, as normalising both answers", () => {
  const roots = ["/w", "/w/", "/data/cam", "/data//cam", "/data/./cam", "/", "w", "."];
  const rels = [
    "a.fits",
    "night/a.fits",
    "...",
    "..a",
    ".hidden/x",
    "a/./b",
    "a/../b",
    "a//b",
    "a/",
    "..",
    ".",
    "",
    "-x\n$(y)/é ü.fits",
  ];
  for (const root of roots) {
    for (const rel of rels) {
      for (const path of [`${root}/${rel}`, `${root}${rel}`, `/elsewhere/${rel}`]) {
        assert.equal(relativeTo(root, path), normalised(root, path), `${root} | ${path}`);
      }
    }
  }
});
