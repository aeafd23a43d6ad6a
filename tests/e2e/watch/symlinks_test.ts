/**
 * Symbolic links in a watch folder under each `symlinks` policy, through a
 * scan and through the filter the pipeline applies to watcher events: links
 * to files and folders outside (absolute and `../..`), inside, broken, to a
 * FIFO, and a loop.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { SymlinkPolicy } from "../../../src/watch/entry_check.ts";
import { createFileFilter } from "../../../src/watch/file_filter.ts";
import { SkipLog } from "../../../src/watch/skip_log.ts";
import { scanFolder, type SkippedEntry } from "../../../src/watch/scan.ts";
import type { Logger } from "@logtape/logtape";

interface Tree {
  root: string;
  watch: string;
  outside: string;
}

/** The watch folder with every kind of link, and a folder outside it. */
async function makeTree(): Promise<Tree> {
  const root = await Deno.makeTempDir({ prefix: "itx-links-" });
  const watch = join(root, "watch");
  const outside = join(root, "outside");
  for (const dir of [watch, outside, join(watch, "data"), join(watch, "sub")]) {
    await Deno.mkdir(dir, { recursive: true });
  }
  await Deno.writeTextFile(join(outside, "secret.fits"), "SECRET");
  await Deno.writeTextFile(join(outside, "far.fits"), "FAR");
  await Deno.writeTextFile(join(watch, "plain.fits"), "PLAIN");
  await Deno.writeTextFile(join(watch, "data", "real.fits"), "REAL");
  const mkfifo = await new Deno.Command("mkfifo", { args: [join(outside, "pipe.fits")] }).output();
  assert.ok(mkfifo.success);
  const links: Array<[string, string]> = [
    ["secret-link.fits", join(outside, "secret.fits")],
    ["sub/up.fits", "../../outside/secret.fits"],
    ["inner-link.fits", "plain.fits"],
    ["abs-inner.fits", join(watch, "data", "real.fits")],
    ["outdir", outside],
    ["indir", join(watch, "data")],
    ["broken.fits", join(root, "nowhere.fits")],
    ["loop", watch],
    ["fifo-link.fits", join(outside, "pipe.fits")],
  ];
  for (const [rel, target] of links) await Deno.symlink(target, join(watch, rel));
  return { root, watch, outside };
}

function filterFor(tree: Tree, symlinks: SymlinkPolicy) {
  return createFileFilter(
    { file_patterns: ["*.fits"], exclude_patterns: [], symlinks, watch_path: tree.watch },
    { skipLog: null },
  );
}

async function scan(tree: Tree, symlinks: SymlinkPolicy, startRel?: string) {
  const skipped: SkippedEntry[] = [];
  const found = await Array.fromAsync(
    scanFolder(tree.watch, filterFor(tree, symlinks), {
      startRel,
      onSkipped: (e) => skipped.push(e),
    }),
  );
  return {
    found: found.map((f) => f.relPath).sort(),
    skipped: new Map(skipped.map((e) => [e.relPath, e.skip])),
  };
}

const LINKS_OUT = ["secret-link.fits", "sub/up.fits", "outdir", "broken.fits", "fifo-link.fits"];

Deno.test("symlinks: skip (the default) sends no link and enters no linked folder", async () => {
  const tree = await makeTree();
  try {
    const { found, skipped } = await scan(tree, "skip");
    assert.deepEqual(found, ["data/real.fits", "plain.fits"]);
    for (const rel of [...LINKS_OUT, "inner-link.fits", "abs-inner.fits", "indir", "loop"]) {
      const skip = skipped.get(rel);
      assert.equal(skip?.code, "link", `${rel}: ${JSON.stringify(skip)}`);
      assert.equal(skip?.level, "info");
    }
    assert.match(
      skipped.get("secret-link.fits")!.reason,
      /^symbolic link to .*secret\.fits: .*skip/,
    );
    assert.equal(skipped.get("sub/up.fits")!.target, "../../outside/secret.fits");
    // The default policy is skip.
    const defaults = createFileFilter(
      { file_patterns: ["*.fits"], exclude_patterns: [], watch_path: tree.watch },
      { skipLog: null },
    );
    assert.equal(defaults.symlinks, "skip");
    assert.equal(defaults.includesFile("secret-link.fits"), false);
  } finally {
    await Deno.remove(tree.root, { recursive: true });
  }
});

Deno.test("symlinks: inside sends links to files whose real path is inside, nothing else", async () => {
  const tree = await makeTree();
  try {
    const { found, skipped } = await scan(tree, "inside");
    assert.deepEqual(found, ["abs-inner.fits", "data/real.fits", "inner-link.fits", "plain.fits"]);
    for (const rel of [...LINKS_OUT, "indir", "loop"]) {
      assert.equal(skipped.get(rel)?.code, "link", rel);
    }
    assert.match(skipped.get("secret-link.fits")!.reason, /outside the watch folder/);
    assert.match(skipped.get("sub/up.fits")!.reason, /outside the watch folder/);
    assert.match(skipped.get("broken.fits")!.reason, /broken/);
    assert.match(skipped.get("fifo-link.fits")!.reason, /FIFO/);
    const verdict = filterFor(tree, "inside").classify("inner-link.fits");
    assert.ok(verdict.ok);
    assert.equal(verdict.source, await Deno.realPath(join(tree.watch, "plain.fits")));
  } finally {
    await Deno.remove(tree.root, { recursive: true });
  }
});

Deno.test("symlinks: follow sends what links point to and enters linked folders, without loops", async () => {
  const tree = await makeTree();
  try {
    const { found, skipped } = await scan(tree, "follow");
    assert.deepEqual(found, [
      "abs-inner.fits",
      "data/real.fits",
      "indir/real.fits",
      "inner-link.fits",
      "outdir/far.fits",
      "outdir/secret.fits",
      "plain.fits",
      "secret-link.fits",
      "sub/up.fits",
    ]);
    assert.match(skipped.get("loop")!.reason, /holds the watch folder/);
    assert.match(skipped.get("broken.fits")!.reason, /broken/);
    assert.match(skipped.get("fifo-link.fits")!.reason, /FIFO/);
    assert.match(skipped.get("outdir/pipe.fits")!.reason, /^FIFO$/);
    const verdict = filterFor(tree, "follow").classify("secret-link.fits");
    assert.ok(verdict.ok);
    assert.equal(await Deno.readTextFile(verdict.source), "SECRET");
  } finally {
    await Deno.remove(tree.root, { recursive: true });
  }
});

Deno.test("symlinks: every link a scan follows is logged once with its target, folders included", async () => {
  const tree = await makeTree();
  try {
    const lines: Array<{ message: string; properties: Record<string, unknown> }> = [];
    const log = {
      info: (message: string, properties: Record<string, unknown>) =>
        void lines.push({ message, properties }),
    } as unknown as Logger;
    const filter = createFileFilter(
      {
        file_patterns: ["*.fits"],
        exclude_patterns: [],
        symlinks: "follow",
        watch_path: tree.watch,
      },
      { skipLog: new SkipLog({ log }) },
    );
    for (let round = 0; round < 2; round++) await Array.fromAsync(scanFolder(tree.watch, filter));
    const followed = lines.filter((l) => l.message.startsWith("Following symbolic link"));
    const targets = new Map(
      followed.map((l) => [String(l.properties.path), String(l.properties.target)]),
    );
    assert.equal(followed.length, targets.size, "each link once over two scans");
    assert.equal(targets.get(join(tree.watch, "outdir")), tree.outside);
    assert.equal(targets.get(join(tree.watch, "indir")), join(tree.watch, "data"));
    assert.equal(
      targets.get(join(tree.watch, "secret-link.fits")),
      join(tree.outside, "secret.fits"),
    );
    assert.equal(targets.get(join(tree.watch, "sub/up.fits")), "../../outside/secret.fits");
    assert.ok(!targets.has(join(tree.watch, "loop")), "the loop is skipped, not followed");
  } finally {
    await Deno.remove(tree.root, { recursive: true });
  }
});

Deno.test("symlinks: a link to a folder that holds the watch folder is never entered", async () => {
  const tree = await makeTree();
  try {
    await Deno.symlink(tree.root, join(tree.watch, "sub", "grandparent"));
    const { found, skipped } = await scan(tree, "follow");
    assert.ok(!found.some((rel) => rel.startsWith("sub/grandparent/")), found.join(", "));
    assert.match(skipped.get("sub/grandparent")!.reason, /holds the watch folder/);
  } finally {
    await Deno.remove(tree.root, { recursive: true });
  }
});

Deno.test("symlinks: event paths go through the same policy, also below linked folders", async () => {
  const tree = await makeTree();
  try {
    const expected: Record<SymlinkPolicy, Record<string, boolean>> = {
      skip: {
        "plain.fits": true,
        "secret-link.fits": false,
        "sub/up.fits": false,
        "inner-link.fits": false,
        "outdir/far.fits": false,
        "indir/real.fits": false,
        "broken.fits": false,
        "fifo-link.fits": false,
      },
      inside: {
        "plain.fits": true,
        "secret-link.fits": false,
        "sub/up.fits": false,
        "inner-link.fits": true,
        "outdir/far.fits": false,
        "indir/real.fits": false,
        "broken.fits": false,
        "fifo-link.fits": false,
      },
      follow: {
        "plain.fits": true,
        "secret-link.fits": true,
        "sub/up.fits": true,
        "inner-link.fits": true,
        "outdir/far.fits": true,
        "indir/real.fits": true,
        "broken.fits": false,
        "fifo-link.fits": false,
      },
    };
    for (const [policy, cases] of Object.entries(expected)) {
      const filter = filterFor(tree, policy as SymlinkPolicy);
      for (const [rel, sent] of Object.entries(cases)) {
        assert.equal(filter.includesFile(rel), sent, `${policy}: ${rel}`);
        assert.equal(filter.explain(rel) === null, sent, `${policy}: explain(${rel})`);
      }
    }
    assert.match(
      filterFor(tree, "skip").explain("outdir/far.fits")!,
      /inside outdir, a symbolic link to a folder/,
    );
  } finally {
    await Deno.remove(tree.root, { recursive: true });
  }
});

Deno.test("symlinks: a scan asked to start in a linked folder enters it only under follow", async () => {
  const tree = await makeTree();
  try {
    for (const policy of ["skip", "inside"] as const) {
      const { found, skipped } = await scan(tree, policy, "outdir");
      assert.deepEqual(found, [], policy);
      assert.equal(skipped.get("outdir")?.code, "link", policy);
    }
    const follow = await scan(tree, "follow", "outdir");
    assert.deepEqual(follow.found, ["outdir/far.fits", "outdir/secret.fits"]);
  } finally {
    await Deno.remove(tree.root, { recursive: true });
  }
});
