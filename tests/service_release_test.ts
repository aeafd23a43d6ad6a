/**
 * The release pipeline as written: the GitHub workflows parse and do what
 * they promise, and `--version` prints the version from deno.json.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { REPO_ROOT, runCli } from "./helpers/cli.ts";

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}
interface Workflow {
  on: Record<string, unknown>;
  jobs: Record<string, { "runs-on": string; steps: Step[] }>;
}

async function readWorkflow(name: string): Promise<{ text: string; workflow: Workflow }> {
  const text = await Deno.readTextFile(join(REPO_ROOT, ".github", "workflows", name));
  return { text, workflow: parse(text) as Workflow };
}

function allSteps(workflow: Workflow): Step[] {
  return Object.values(workflow.jobs).flatMap((job) => job.steps);
}

function assertDeno296(steps: Step[]): void {
  const setup = steps.find((step) => step.uses?.startsWith("denoland/setup-deno@"));
  assert.ok(setup, "a setup-deno step");
  assert.equal(String(setup.with?.["deno-version"]), "2.9.6");
}

const ALLOW_ALL = /(^|\s)(-A|--allow-all)(\s|$)/m;

Deno.test("ci.yml installs the system tools and runs fmt, lint, check and test with Deno 2.9.6", async () => {
  const { text, workflow } = await readWorkflow("ci.yml");
  assert.ok("push" in workflow.on && "pull_request" in workflow.on);
  assert.ok(Object.keys(workflow.jobs).length >= 1);
  const steps = allSteps(workflow);
  assertDeno296(steps);
  const runs = steps.map((step) => step.run ?? "").join("\n");
  for (
    const pkg of [
      "openssh-server",
      "openssh-client",
      "rsync",
      "python3",
      "libxml2-utils",
      "systemd",
      "util-linux",
      "mount",
    ]
  ) {
    assert.match(runs, new RegExp(`apt-get install[^\\n]*(\\\\\\n[^\\n]*)*\\b${pkg}\\b`), pkg);
  }
  for (const command of ["deno fmt --check", "deno lint", "deno task check"]) {
    assert.ok(steps.some((step) => step.run?.trim() === command), command);
  }
  // The README's test command, as root (the SSH tests create their login user).
  assert.ok(steps.some((step) => step.run?.trim() === 'sudo env "PATH=$PATH" deno task test'));
  assert.doesNotMatch(text, ALLOW_ALL);
});

Deno.test("release.yml builds with compile:all on v* tags, checks the tag, zips, sums and publishes", async () => {
  const { text, workflow } = await readWorkflow("release.yml");
  const push = workflow.on.push as { tags: string[] };
  assert.deepEqual(push.tags, ["v*"]);
  const steps = allSteps(workflow);
  assertDeno296(steps);
  assert.ok(steps[0].uses?.startsWith("actions/checkout@"));
  const compile = steps.findIndex((step) => step.run?.trim() === "deno task compile:all");
  const tag = steps.findIndex((step) =>
    /GITHUB_REF_NAME/.test(step.run ?? "") && /deno\.json/.test(step.run ?? "")
  );
  const pack = steps.findIndex((step) => /sha256sum \*\.zip > SHA256SUMS/.test(step.run ?? ""));
  const publish = steps.findIndex((step) => /gh release create/.test(step.run ?? ""));
  assert.ok(tag >= 0 && compile > tag && pack > compile && publish > pack, JSON.stringify(steps));
  const packaging = steps[pack].run ?? "";
  assert.match(packaging, /image-transfer-\$\{VERSION\}-\$\{target\}\.zip/);
  assert.match(packaging, /name=image-transfer\.exe/);
  assert.match(packaging, /cp -R service README\.md/);
  assert.doesNotMatch(text, ALLOW_ALL);
  assert.doesNotMatch(
    text,
    /deno compile/,
    "the workflow builds through the task, not its own flags",
  );
});

Deno.test("--version and -V print the version from deno.json", async () => {
  const { version } = JSON.parse(await Deno.readTextFile(join(REPO_ROOT, "deno.json")));
  assert.match(version, /^\d+\.\d+\.\d+/);
  for (const flag of ["--version", "-V"]) {
    const out = await runCli([flag]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout.trim(), version);
  }
});
