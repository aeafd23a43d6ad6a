/**
 * The Markdown documents' links whose label names a file (`[docs/reference.md](...)`) lead to that
 * file, which exists: a label that says one file and a target that opens another sends the reader
 * elsewhere than promised.
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { REPO_ROOT } from "../helpers/cli.ts";

const DOCUMENTS = [
  "README.md",
  "CONTRIBUTING.md",
  ...[...Deno.readDirSync(join(REPO_ROOT, "docs"))]
    .filter((entry) => entry.isFile && entry.name.endsWith(".md"))
    .map((entry) => join("docs", entry.name)),
];

Deno.test("a link labelled with a file name leads to that file (docs/configuration.md said docs/design.md and opened reference.md)", () => {
  const wrong: string[] = [];
  for (const document of DOCUMENTS) {
    const text = Deno.readTextFileSync(join(REPO_ROOT, document));
    for (const [, label, target] of text.matchAll(/\[([^\]\s]+\.md)\]\(([^)\s]+)\)/g)) {
      const path = target.split("#")[0];
      if (/^[a-z]+:/i.test(path)) continue;
      const file = relative(REPO_ROOT, resolve(REPO_ROOT, dirname(document), path));
      const exists = (() => {
        try {
          return Deno.statSync(join(REPO_ROOT, file)).isFile;
        } catch {
          return false;
        }
      })();
      const said = label.replace(/^\.\.\//, "");
      if (!exists || !(file === said || file.endsWith(`/${said}`))) {
        wrong.push(`${document}: [${label}](${target}) opens ${file}`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});
