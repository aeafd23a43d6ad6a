/**
 * The project's one permission set (`deno.json` → `permissions.image-transfer`)
 * really confines the program, and every way of running or building it uses
 * that set, never `-A`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cliArgv, REPO_ROOT, runUnderPermissionSet } from "../../helpers/cli.ts";
import { compileArgs, TARGETS } from "../../../scripts/compile_all.ts";
import { RUNTIME_FLAGS } from "../../../src/version.ts";

const PROBE = (program: string, args: string[]) => `
try {
  const out = await new Deno.Command(${JSON.stringify(program)}, {
    args: ${JSON.stringify(args)}, stdout: "piped", stderr: "piped",
  }).output();
  console.log("started " + out.code + " " + new TextDecoder().decode(out.stderr).trim());
} catch (error) {
  console.log("refused " + (error instanceof Error ? error.name : String(error)));
}
`;

Deno.test("the permission set may start programs (hooks are the user's own; the config check guards them)", async () => {
  const out = await runUnderPermissionSet(PROBE("ssh", ["-V"]));
  assert.match(out, /^started 0 OpenSSH/);
  const shell = await runUnderPermissionSet(PROBE("sh", ["-c", "true"]));
  assert.equal(shell.trim(), "started 0");
  const denoJson = JSON.parse(await Deno.readTextFile(join(REPO_ROOT, "deno.json")));
  const set = denoJson.permissions["image-transfer"];
  assert.equal(set.run, true);
  assert.equal(set.all, undefined);
  // Everything else stays bounded: no ffi, and only the system facts the program reads.
  assert.equal(set.ffi, undefined);
  assert.ok(Array.isArray(set.sys), "sys is a list");
});

/** The worker modules the sources name (`new URL("./x_worker.ts", import.meta.url)`), sorted. */
async function workerModules(): Promise<string[]> {
  const found: string[] = [];
  const walk = async (folder: string): Promise<void> => {
    for await (const entry of Deno.readDir(join(REPO_ROOT, folder))) {
      const path = `${folder}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(join(REPO_ROOT, path));
        for (const match of text.matchAll(/new URL\("\.\/([^"]+_worker\.ts)"/g)) {
          found.push(`${folder}/${match[1]}`);
        }
      }
    }
  };
  await walk("src");
  return found.toSorted();
}

Deno.test("the run, compile and compile:all tasks use -P=image-transfer and never -A", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(join(REPO_ROOT, "deno.json")));
  // Worker modules are not found by the module graph: each must be included by hand.
  const workers = await workerModules();
  assert.ok(workers.length >= 3, workers.join(", "));
  const tasks: Record<string, string> = denoJson.tasks;
  const allowAll = /(^|\s)(-A|--allow-all)(\s|=|$)/;
  for (const name of ["image-transfer", "compile"]) {
    assert.match(tasks[name], /(^|\s)-P=image-transfer(\s|$)/, name);
    // Same runtime settings as the tests (tests/helpers/cli.ts) and the service: one list.
    const words = tasks[name].split(/\s+/);
    for (const flag of RUNTIME_FLAGS) assert.ok(words.includes(flag), `${name}: ${flag}`);
    assert.deepEqual(words.filter((word) => /^--(v8-flags|no-code-cache)/.test(word)), [
      ...RUNTIME_FLAGS,
    ]);
    assert.doesNotMatch(tasks[name], allowAll, name);
  }
  // CLI tests run the program exactly like the task does.
  const taskFlags = tasks["image-transfer"].split(/\s+/).slice(2, -1);
  assert.ok(taskFlags.length >= 3, tasks["image-transfer"]);
  for (const flag of taskFlags) assert.ok(cliArgv([]).includes(flag), flag);
  assert.match(tasks["compile:all"], /scripts\/compile_all\.ts/);
  assert.doesNotMatch(tasks["compile:all"], allowAll);
  assert.match(tasks["compile:all"], /--allow-run=deno(\s|$)/);
  assert.match(tasks["compile:all"], /--allow-write=dist(\s|$)/);
  assert.equal(TARGETS.length, 6);
  for (const target of TARGETS) {
    const args = compileArgs(target);
    assert.equal(args[0], "compile");
    assert.ok(args.includes("-P=image-transfer"), target);
    for (const flag of RUNTIME_FLAGS) assert.ok(args.includes(flag), `${target}: ${flag}`);
    assert.ok(!args.some((arg) => allowAll.test(arg) || arg.startsWith("--allow-")), target);
    assert.equal(args[args.indexOf("--target") + 1], target);
    // Worker modules are not found by the module graph: they must be included.
    const included = args.flatMap((arg, i) => args[i - 1] === "--include" ? [arg] : []);
    assert.deepEqual(included.toSorted(), workers.map((worker) => join(REPO_ROOT, worker)));
    for (const worker of included) assert.ok((await Deno.stat(worker)).isFile, worker);
    // The program launcher is a worker with permissions of its own: without this feature the
    // runtime ends the daemon at start (exit code 70).
    assert.ok(args.includes("--unstable-worker-options"), target);
  }
  const compileIncludes = [...tasks.compile.matchAll(/--include (\S+)/g)].map((m) => m[1]);
  assert.deepEqual(compileIncludes.toSorted(), workers);
  assert.match(tasks.compile, /--unstable-worker-options(\s|$)/);
  // `deno task image-transfer`, the tests and the compile all read deno.json.
  assert.deepEqual(denoJson.unstable, ["worker-options"]);
  const script = await Deno.readTextFile(join(REPO_ROOT, "scripts", "compile_all.ts"));
  assert.doesNotMatch(script, /"-A"|"--allow-all"/);
});
