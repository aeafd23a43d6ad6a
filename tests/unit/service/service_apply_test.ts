/**
 * Carrying out a service plan on real files with real commands: the checks
 * run before anything is written, and a step that fails puts every file and
 * folder back as it was (a failed install leaves nothing behind).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { applyPlan } from "../../../src/service/apply.ts";
import type { ServicePlan } from "../../../src/service/plan.ts";
import { CommandError } from "../../../src/errors.ts";
import { listFiles } from "../../helpers/files.ts";

function output() {
  const lines: string[] = [];
  const warnings: string[] = [];
  return {
    lines,
    warnings,
    options: { log: (line: string) => lines.push(line), warn: (w: string) => warnings.push(w) },
  };
}

/** Every folder below `root` (relative), sorted. */
async function folders(root: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(root, prefix))) {
    if (!entry.isDirectory) continue;
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    out.push(rel, ...await folders(root, rel));
  }
  return out.sort();
}

Deno.test("a failed check stops the plan before anything is written", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-apply-" });
  try {
    const unit = join(root, "new", "unit.service");
    const plan: ServicePlan = {
      servicePath: unit,
      checks: [
        { kind: "exists", path: root, problem: "never" },
        { kind: "exists", path: join(root, "no manager"), problem: "the manager is not running" },
      ],
      steps: [
        { kind: "mkdir", path: join(root, "state") },
        { kind: "write", file: { path: unit, contents: "x", encoding: "utf-8" } },
      ],
      rollback: [{ kind: "restore" }],
      notes: [],
    };
    const out = output();
    await assert.rejects(
      applyPlan(plan, out.options),
      new RegExp(
        "^Error: Cannot install the service: the manager is not running " +
          `\\(${join(root, "no manager")} does not exist\\)\\. Nothing was changed\\.$`,
      ),
    );
    const failing: ServicePlan = {
      ...plan,
      checks: [{ kind: "run", argv: ["false"], problem: "it does not answer" }],
    };
    await assert.rejects(
      applyPlan(failing, out.options),
      /Cannot install the service: it does not answer \(Cannot complete false: exit code 1\)/,
    );
    assert.deepEqual(await folders(root), []);
    assert.deepEqual(out.lines, []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a failing step undoes a fresh install: files, folders and rollback commands", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-apply-" });
  try {
    await Deno.mkdir(join(root, "state parent"));
    await Deno.writeTextFile(join(root, "state parent", "keep.txt"), "user data");
    const unit = join(root, "etc", "systemd", "unit.service");
    const marker = join(root, "rollback ran");
    const plan: ServicePlan = {
      servicePath: unit,
      checks: [{ kind: "exists", path: root, problem: "never" }],
      steps: [
        { kind: "mkdir", path: join(root, "state parent", "image-transfer", "deep") },
        { kind: "write", file: { path: unit, contents: "[Unit]\n", encoding: "utf-8" } },
        { kind: "run", command: { argv: ["true"] } },
        { kind: "run", command: { argv: ["false"] } },
      ],
      rollback: [
        { kind: "run", argv: ["touch", marker] },
        { kind: "restore" },
        { kind: "run", argv: ["false"] }, // a failing rollback command is ignored
      ],
      failureHint: "try as Administrator",
      notes: [],
    };
    const out = output();
    const error = await applyPlan(plan, out.options).then(() => null, (e) => e);
    assert.ok(error instanceof CommandError, String(error));
    assert.match(error.message, /^Cannot complete false: exit code 1; try as Administrator$/);
    assert.ok(out.lines.includes(`wrote ${unit}`));
    assert.ok(out.warnings.some((w) => /undid the install/.test(w)));
    // Only what was there before is left (and the rollback command's own marker).
    assert.deepEqual(await listFiles(root), ["rollback ran", "state parent/keep.txt"]);
    assert.deepEqual(await folders(root), ["state parent"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a failing step of an update puts the previous service file back", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-apply-" });
  try {
    const unit = join(root, "unit.service");
    await Deno.writeTextFile(unit, "old unit\n");
    const plan: ServicePlan = {
      servicePath: unit,
      checks: [],
      steps: [
        { kind: "write", file: { path: unit, contents: "new unit\n", encoding: "utf-8" } },
        { kind: "run", command: { argv: ["false"] } },
      ],
      rollback: [{ kind: "restore" }],
      notes: [],
    };
    await assert.rejects(applyPlan(plan, output().options), CommandError);
    assert.equal(await Deno.readTextFile(unit), "old unit\n");
    assert.deepEqual(await listFiles(root), ["unit.service"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a successful plan creates the folders and writes the file; mkdir of an existing folder is quiet", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-apply-" });
  try {
    const unit = join(root, "a", "unit.service");
    await Deno.mkdir(join(root, "logs"));
    const plan: ServicePlan = {
      servicePath: unit,
      checks: [{ kind: "run", argv: ["true"], problem: "never" }],
      steps: [
        { kind: "mkdir", path: join(root, "state", "image-transfer") },
        { kind: "mkdir", path: join(root, "logs") },
        { kind: "write", file: { path: unit, contents: "[Unit]\n", encoding: "utf-8" } },
      ],
      rollback: [{ kind: "restore" }],
      notes: [],
    };
    const out = output();
    await applyPlan(plan, out.options);
    assert.deepEqual(out.lines, [
      `created ${join(root, "state", "image-transfer")}`,
      `wrote ${unit}`,
    ]);
    assert.equal(await Deno.readTextFile(unit), "[Unit]\n");
    assert.deepEqual(await folders(root), ["a", "logs", "state", "state/image-transfer"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
