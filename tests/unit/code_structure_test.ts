/**
 * The shape of `src/`, read from its files: the folders depend on each other
 * in one direction (the order docs/design.md gives), no module imports one in
 * its own or a higher layer, there is no import cycle, `doctor` reaches the
 * transports only through their interface, only `src/process` starts
 * programs, no file grows past ~450 lines, and every module is Latin-1; tests change no
 * environment variable other tests read.
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { REPO_ROOT } from "../helpers/cli.ts";

const SRC = join(REPO_ROOT, "src");

/** Each folder's layer: a module may import only from lower layers (or its own folder). */
const LAYERS: Record<string, number> = {
  cli: 6,
  pipeline: 5,
  service: 5,
  // What the daemon shows: reads what the watch and the transfers report.
  status: 4,
  transfer: 3,
  watch: 3,
  process: 2,
  ledger: 2,
  layout: 2,
  config: 1,
  log: 1,
  // errors.ts, shell_words.ts, version.ts: used by every layer.
  ".": 0,
};

/** Every `.ts` file below `dir`, relative to `src/`. */
function sourceFiles(dir = SRC): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...sourceFiles(path));
    else if (entry.name.endsWith(".ts")) out.push(relative(SRC, path));
  }
  return out.sort();
}

/**
 * The `src/` modules a file imports (static and, unless `staticOnly`, dynamic); with `runtime`,
 * without `import type` (erased when the program runs).
 */
function importsOf(file: string, runtime: boolean, staticOnly = false): string[] {
  const text = Deno.readTextFileSync(join(SRC, file));
  const statements = [
    ...text.matchAll(/^\s*((?:import|export)\b[^;]*?\bfrom\s+"([^"]+)")/gms),
    ...text.matchAll(/^\s*(import\s+"([^"]+)")/gm),
    ...(staticOnly ? [] : text.matchAll(/\b(import\(\s*"([^"]+)"\s*\))/g)),
  ];
  return statements.filter((match) => !(runtime && /^(import|export) type\b/.test(match[1])))
    .map((match) => match[2])
    .filter((spec) => spec.startsWith("."))
    .map((spec) => relative(SRC, resolve(SRC, dirname(file), spec)))
    .filter((path) => path.endsWith(".ts") && !path.startsWith(".."));
}

function folderOf(file: string): string {
  return file.includes("/") ? file.split("/")[0] : ".";
}

const FILES = sourceFiles();
/** Every import, type-only ones included: the layers hold for them too. */
const GRAPH = new Map(FILES.map((file) => [file, importsOf(file, false)]));
/** The imports that load a module when the program runs. */
const RUNTIME_GRAPH = new Map(FILES.map((file) => [file, importsOf(file, true)]));

Deno.test("import graph: the reader finds the imports (the check is real)", () => {
  assert.ok(GRAPH.size > 100, `only ${GRAPH.size} files`);
  assert.ok(GRAPH.get("cli/doctor.ts")?.includes("transfer/transport.ts"));
  assert.ok(GRAPH.get("cli/install_service.ts")?.includes("service/launch.ts"));
  assert.ok(GRAPH.get("service/launch.ts")?.includes("version.ts"));
  // A type-only import counts for the layers, not for cycles.
  assert.ok(GRAPH.get("config/job_rules.ts")?.includes("config/schema.ts"));
  assert.ok(!RUNTIME_GRAPH.get("config/job_rules.ts")?.includes("config/schema.ts"));
});

Deno.test("import graph: every folder imports only from lower layers", () => {
  const upward: string[] = [];
  for (const [file, imports] of GRAPH) {
    const from = folderOf(file);
    assert.ok(from in LAYERS, `${file}: folder ${from} has no layer in this test`);
    for (const target of imports) {
      const to = folderOf(target);
      if (to !== from && LAYERS[to] >= LAYERS[from]) upward.push(`${file} -> ${target}`);
    }
  }
  assert.deepEqual(upward, []);
});

Deno.test("import graph: no module imports itself through others when it runs (no cycles)", () => {
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (file: string, path: string[]) => {
    state.set(file, "open");
    for (const target of RUNTIME_GRAPH.get(file) ?? []) {
      if (state.get(target) === "open") {
        cycles.push([...path.slice(path.indexOf(target)), target].join(" -> "));
      } else if (!state.has(target)) visit(target, [...path, target]);
    }
    state.set(file, "done");
  };
  for (const file of FILES) if (!state.has(file)) visit(file, [file]);
  assert.deepEqual(cycles, []);
});

Deno.test("import graph: the daemon (`run`) loads none of the other commands' modules", () => {
  // Their text would stay in memory for as long as the daemon runs: they are imported when named.
  const loaded = new Set<string>();
  const load = (file: string) => {
    if (loaded.has(file)) return;
    loaded.add(file);
    for (const target of importsOf(file, true, true)) load(target);
  };
  load("cli/program.ts");
  assert.ok(loaded.has("cli/run.ts") && loaded.has("pipeline/daemon.ts"));
  const others = ["cli/status.ts", "cli/doctor.ts", "cli/install_service.ts", "cli/resend.ts"]
    .concat(["cli/stop.ts", "cli/config.ts", "cli/dry_run.ts", "service/systemd.ts"]);
  assert.deepEqual(others.filter((file) => loaded.has(file)), []);
});

Deno.test("import graph: doctor uses the transports only through their interface and factory", () => {
  const reached = GRAPH.get("cli/doctor.ts")!.filter((target) => target.startsWith("transfer/"));
  assert.deepEqual(reached.sort(), ["transfer/transport.ts"]);
});

Deno.test("only src/process starts programs", () => {
  const starters = FILES.filter((file) => !file.startsWith("process/"))
    .filter((file) =>
      /\bnew Deno\.Command\b|\bDeno\.run\(/.test(Deno.readTextFileSync(join(SRC, file)))
    );
  assert.deepEqual(starters, []);
  assert.ok(
    FILES.filter((file) => file.startsWith("process/"))
      .some((file) => /\bnew Deno\.Command\b/.test(Deno.readTextFileSync(join(SRC, file)))),
    "the process module itself is found",
  );
});

/**
 * A module is a concept others use, not a size: merge a fragment into its only user, split a
 * long file only along a real seam. This many lines is a file to look at.
 */
const MOST_LINES = 450;

Deno.test("no file in src/ is longer than ~450 lines", () => {
  const long = FILES.map((file) => ({
    file,
    lines: Deno.readTextFileSync(join(SRC, file)).split("\n").length - 1,
  })).filter(({ lines }) => lines > MOST_LINES);
  assert.deepEqual(long, []);
});

/**
 * The runtime keeps each module's text (and its source map) in memory, one byte per character
 * while every character is Latin-1 and two bytes each once one is not: write such characters as
 * `\u2026` escapes in strings and in ASCII in comments.
 */
Deno.test("every module in src/ and main.ts is written in Latin-1 (kept at one byte a character)", () => {
  const files = [...FILES.map((file) => join(SRC, file)), join(REPO_ROOT, "main.ts")];
  const wide = files.flatMap((path) =>
    Deno.readTextFileSync(path).split("\n").flatMap((line, i) =>
      /[\u0100-\uffff]/.test(line) ? [`${relative(REPO_ROOT, path)}:${i + 1}: ${line.trim()}`] : []
    )
  );
  assert.deepEqual(wide, []);
});

/** Every `.ts` file below `dir`, as a path. */
function typeScriptBelow(dir: string): string[] {
  return [...Deno.readDirSync(dir)].flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory) return typeScriptBelow(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/**
 * Test files run in parallel in one process, and the environment is the process's: a test that
 * sets TMPDIR or removes HOME for a while changes them for every program the others start then.
 * Tests give such values to the code or program they run instead, and set only variables of
 * their own (`ITX_TEST_…`).
 */
Deno.test("tests set or remove no environment variable another test file reads", () => {
  const changes = typeScriptBelow(join(REPO_ROOT, "tests")).flatMap((path) => {
    const text = Deno.readTextFileSync(path);
    return [...text.matchAll(/Deno\.env\.(?:set|delete)\(\s*([^,)]+)/g)].map((match) => {
      const name = match[1].trim();
      const own = /^["'`]ITX_TEST_/.test(name) ||
        new RegExp(`\\b${name} = ["'\`]ITX_TEST_`).test(text);
      return { where: `${relative(REPO_ROOT, path)}: ${match[0]}`, own };
    });
  });
  assert.ok(changes.some((change) => change.own), "the variables of tests' own are found");
  assert.deepEqual(changes.filter((change) => !change.own).map((change) => change.where), []);
});
