/**
 * The CI and release workflows as written: valid for GitHub (checked offline
 * with an npm schema validator), actions pinned by commit, least-privilege
 * permissions per job, the smoke test on every OS and target, signing only
 * with secrets, and the packaging step run for real (LICENSE in every
 * archive, a .sha256 per archive, SHA256SUMS).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { REPO_ROOT } from "../../helpers/cli.ts";
import { TARGETS } from "../../../scripts/compile_all.ts";
import { RUNTIME_FLAGS } from "../../../src/version.ts";

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  shell?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}
interface Job {
  "runs-on": string;
  needs?: string | string[];
  permissions?: Record<string, string>;
  strategy?: { matrix: Record<string, unknown> };
  env?: Record<string, string>;
  steps: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}

/** The action-validator release that checks the workflows (its schemas are built in). */
const ACTION_VALIDATOR = "@action-validator/cli@0.6.0";

async function readWorkflow(name: string): Promise<{ text: string; workflow: Workflow }> {
  const text = await Deno.readTextFile(join(REPO_ROOT, ".github", "workflows", name));
  return { text, workflow: parse(text) as Workflow };
}

function allSteps(workflow: Workflow): Step[] {
  return Object.values(workflow.jobs).flatMap((job) => job.steps);
}

const ALLOW_ALL = /(^|\s)(-A|--allow-all)(\s|$)/m;
const SMOKE = "scripts/smoke.ts";

/** Every action is pinned to a full commit hash, with the version it is in a comment. */
function assertPinned(text: string): void {
  const uses = [...text.matchAll(/^\s*(?:- )?uses: (\S+)(.*)$/gm)];
  assert.ok(uses.length > 0);
  for (const [, ref, comment] of uses) {
    assert.match(ref, /^[\w.-]+\/[\w.-]+@[0-9a-f]{40}$/, `${ref} is not pinned by commit`);
    assert.match(comment, /^ # v\d+(\.\d+)*$/, `${ref} has no version comment`);
  }
}

/** Least privilege: nothing by default, each job says what it needs. */
function assertPermissions(workflow: Workflow): void {
  assert.deepEqual(workflow.permissions, {});
  for (const [name, job] of Object.entries(workflow.jobs)) {
    assert.ok(job.permissions, `job ${name} declares its permissions`);
  }
}

function assertDeno296(steps: Step[]): void {
  const setups = steps.filter((step) => step.uses?.startsWith("denoland/setup-deno@"));
  assert.ok(setups.length > 0, "a setup-deno step");
  for (const setup of setups) assert.equal(String(setup.with?.["deno-version"]), "2.9.6");
}

/** Validate a workflow file with action-validator (npx, pinned; no network once installed). */
async function actionValidator(file: string): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command("npx", {
    args: ["-y", ACTION_VALIDATOR, file],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, output: text.decode(out.stdout) + text.decode(out.stderr) };
}

Deno.test("both workflows pass action-validator's schema check, and the check is real", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-workflows-" });
  try {
    const ci = await actionValidator(join(REPO_ROOT, ".github", "workflows", "ci.yml"));
    assert.equal(ci.code, 0, ci.output);
    // action-validator 0.6.0's schema predates the `attestations` permission GitHub added for
    // attest-build-provenance; everything else in release.yml is checked as written.
    const { text } = await readWorkflow("release.yml");
    const line = "      attestations: write # store it\n";
    assert.ok(text.includes(line));
    const release = join(dir, "release.yml");
    await Deno.writeTextFile(release, text.replace(line, ""));
    const checked = await actionValidator(release);
    assert.equal(checked.code, 0, checked.output);
    const broken = join(dir, "broken.yml");
    await Deno.writeTextFile(
      broken,
      text.replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04"),
    );
    const failed = await actionValidator(broken);
    assert.notEqual(failed.code, 0, "a misspelt key fails validation");
    assert.match(failed.output, /runs_on/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ci.yml: tests with the system tools, then the smoke test from source on Linux, macOS and Windows and on a compiled binary", async () => {
  const { text, workflow } = await readWorkflow("ci.yml");
  assert.ok("push" in workflow.on && "pull_request" in workflow.on);
  assertPinned(text);
  assertPermissions(workflow);
  for (const job of Object.values(workflow.jobs)) {
    assert.deepEqual(job.permissions, { contents: "read" });
  }
  const steps = allSteps(workflow);
  assertDeno296(steps);
  const test = workflow.jobs.test.steps;
  const runs = test.map((step) => step.run ?? "").join("\n");
  for (
    const pkg of [
      "openssh-server",
      "openssh-client",
      "rsync",
      "python3",
      "python3-astropy",
      "libxml2-utils",
      "systemd",
      "util-linux",
      "zip",
      "unzip",
      "mount",
      "procps",
      "iproute2",
      "vsftpd",
      "openssl",
      "shellcheck",
      "ca-certificates",
      "prometheus",
      "chromium",
      "bindfs",
      "fuse3",
      "faketime",
    ]
  ) {
    assert.match(runs, new RegExp(`apt-get install[^\\n]*(\\\\\\n[^\\n]*)*\\b${pkg}\\b`), pkg);
  }
  for (const command of ["deno fmt --check", "deno lint", "deno task check"]) {
    assert.ok(test.some((step) => step.run?.trim() === command), command);
  }
  // The README's test command, as root (the SSH tests create their login user).
  assert.ok(test.some((step) => step.run?.trim() === 'sudo env "PATH=$PATH" deno task test'));

  const smoke = workflow.jobs.smoke;
  assert.deepEqual(smoke.strategy?.matrix.os, ["ubuntu-24.04", "macos-15", "windows-2025"]);
  const fromSource = smoke.steps.find((step) => step.run?.includes(SMOKE))?.run ?? "";
  assert.match(fromSource, /smoke\.ts --service --/);
  assert.ok(
    fromSource.includes(`run -q -P=image-transfer ${RUNTIME_FLAGS.join(" ")} `),
    "the smoke test runs the program with the runtime's settings",
  );

  const compiled = workflow.jobs.compiled.steps.map((step) => step.run ?? "").join("\n");
  assert.match(compiled, /'\{commit: \$commit\}' > src\/build_info\.json/);
  assert.match(compiled, /deno task compile:all x86_64-unknown-linux-gnu/);
  assert.match(compiled, /smoke\.ts --service --expect-commit "\$GITHUB_SHA"/);
  assert.doesNotMatch(text, ALLOW_ALL);
});

Deno.test("release.yml: build, then the smoke test on each of the six targets' own OS, then package, attest and publish", async () => {
  const { text, workflow } = await readWorkflow("release.yml");
  const push = workflow.on.push as { tags: string[] };
  assert.deepEqual(push.tags, ["v*"]);
  assertPinned(text);
  assertPermissions(workflow);
  assertDeno296(allSteps(workflow));
  const { build, smoke, publish } = workflow.jobs;
  assert.deepEqual(build.permissions, { contents: "read" });
  assert.deepEqual(smoke.permissions, { contents: "read" });
  assert.deepEqual(publish.permissions, {
    contents: "write",
    "id-token": "write",
    attestations: "write",
  });

  const buildRuns = build.steps.map((step) => step.run ?? "");
  const tag = buildRuns.findIndex((run) => /GITHUB_REF_NAME/.test(run) && /deno\.json/.test(run));
  const commit = buildRuns.findIndex((run) => /src\/build_info\.json/.test(run));
  const compile = buildRuns.findIndex((run) => run.trim() === "deno task compile:all");
  assert.ok(tag >= 0 && commit > tag && compile > commit, JSON.stringify(buildRuns));
  assert.doesNotMatch(
    text,
    /deno compile/,
    "the workflow builds through the task, not its own flags",
  );

  // Every target is smoke-tested on a runner of its own OS and architecture.
  assert.equal(smoke.needs, "build");
  const include = smoke.strategy?.matrix.include as { target: string; runner: string }[];
  assert.deepEqual(include.map((entry) => entry.target).sort(), [...TARGETS].sort());
  const runner: Record<string, RegExp> = {
    "x86_64-unknown-linux-gnu": /^ubuntu-[\d.]+$/,
    "aarch64-unknown-linux-gnu": /^ubuntu-[\d.]+-arm$/,
    "x86_64-apple-darwin": /^macos-[\d.]+-intel$/,
    "aarch64-apple-darwin": /^macos-[\d.]+$/,
    "x86_64-pc-windows-msvc": /^windows-\d+$/,
    "aarch64-pc-windows-msvc": /^windows-[\d.]+-arm$/,
  };
  for (const entry of include) assert.match(entry.runner, runner[entry.target], entry.target);
  const smokeStep = smoke.steps.findIndex((step) => step.run?.includes(SMOKE));
  assert.match(
    smoke.steps[smokeStep].run ?? "",
    /smoke\.ts --service --expect-commit "\$GITHUB_SHA" \\\n\s+--expect-target "\$\{\{ matrix\.target \}\}"/,
  );
  // Signing happens before the smoke test (the signed binary is the one proven), only with secrets.
  const signing = smoke.steps.filter((step) => /^(Sign|Notarize)/.test(step.name ?? ""));
  assert.equal(signing.length, 3);
  for (const step of signing) {
    assert.match(step.if ?? "", /^env\.(MACOS|WINDOWS)_SIGNING == 'true'/);
    assert.ok(smoke.steps.indexOf(step) < smokeStep);
  }
  for (const flag of ["MACOS_SIGNING", "MACOS_NOTARIZING", "WINDOWS_SIGNING"]) {
    assert.match(smoke.env?.[flag] ?? "", /^\$\{\{ secrets\.\w+ != '' && contains\(matrix\.target/);
  }

  assert.deepEqual(publish.needs, ["build", "smoke"]);
  const attest = publish.steps.find((step) =>
    step.uses?.startsWith("actions/attest-build-provenance@")
  );
  assert.equal(attest?.with?.["subject-path"], "release/*.zip");
  const publishRun = publish.steps.map((step) => step.run ?? "").join("\n");
  assert.match(
    publishRun,
    /gh release create "\$GITHUB_REF_NAME" release\/\*\.zip release\/\*\.zip\.sha256 \\\n\s+release\/SHA256SUMS/,
  );
  assert.doesNotMatch(text, ALLOW_ALL);
});

Deno.test("release packaging, run for real: one zip per target with the binary, LICENSE, README, service/ (with the Prometheus rules and the Grafana dashboard) and docs/monitoring.md, a .sha256 each, SHA256SUMS", async () => {
  const { workflow } = await readWorkflow("release.yml");
  const script = workflow.jobs.publish.steps.find((step) => step.name === "Package")?.run;
  assert.ok(script);
  const work = await Deno.makeTempDir({ prefix: "itx-package-" });
  // The workflow's Package step, run in `work` as the runner runs it.
  const packageStep = () =>
    new Deno.Command("bash", {
      args: ["-e", "-c", script],
      cwd: work,
      env: { GITHUB_WORKSPACE: work, VERSION: "9.8.7" },
      stdout: "piped",
      stderr: "piped",
    }).output();
  try {
    await Deno.mkdir(join(work, "tested"));
    for (const target of TARGETS) {
      const exe = target.includes("windows") ? ".exe" : "";
      await Deno.writeTextFile(
        join(work, "tested", `image-transfer-${target}${exe}`),
        `bin ${target}`,
      );
    }
    for (const file of ["README.md", "LICENSE"]) {
      await Deno.copyFile(join(REPO_ROOT, file), join(work, file));
    }
    const copied = await new Deno.Command("cp", {
      args: ["-R", join(REPO_ROOT, "service"), join(work, "service")],
    }).output();
    assert.equal(copied.code, 0);
    await Deno.mkdir(join(work, "docs"));
    await Deno.copyFile(
      join(REPO_ROOT, "docs", "monitoring.md"),
      join(work, "docs", "monitoring.md"),
    );
    const out = await packageStep();
    const text = new TextDecoder();
    assert.equal(out.code, 0, text.decode(out.stderr) + text.decode(out.stdout));
    const release = join(work, "release");
    const names = [...Deno.readDirSync(release)].map((entry) => entry.name).sort();
    const zips = TARGETS.map((target) => `image-transfer-9.8.7-${target}.zip`).sort();
    assert.deepEqual(
      names,
      ["SHA256SUMS", ...zips.flatMap((zip) => [zip, `${zip}.sha256`])].sort(),
    );
    const check = await new Deno.Command("sha256sum", { args: ["-c", "SHA256SUMS"], cwd: release })
      .output();
    assert.equal(check.code, 0);
    for (const target of TARGETS) {
      const zip = `image-transfer-9.8.7-${target}.zip`;
      const list = await new Deno.Command("unzip", { args: ["-Z1", zip], cwd: release }).output();
      const entries = text.decode(list.stdout).trim().split("\n").sort();
      const binary = target.includes("windows") ? "image-transfer.exe" : "image-transfer";
      for (
        const entry of [
          binary,
          "LICENSE",
          "README.md",
          "service/image-transfer.service",
          "service/prometheus/image-transfer.rules.yml",
          "service/prometheus/image-transfer.rules.test.yml",
          "service/grafana/image-transfer.json",
          "docs/monitoring.md",
        ]
      ) {
        assert.ok(entries.includes(entry), `${zip} lacks ${entry}: ${entries}`);
      }
      const sum = await new Deno.Command("sha256sum", {
        args: ["-c", `${zip}.sha256`],
        cwd: release,
      })
        .output();
      assert.equal(sum.code, 0, `${zip}.sha256`);
      const mode = await new Deno.Command("unzip", { args: ["-Z", zip, binary], cwd: release })
        .output();
      assert.match(text.decode(mode.stdout), /^-rwxr-xr-x/, "the binary is executable");
    }
    // Without LICENSE the step refuses to publish.
    await Deno.remove(join(work, "LICENSE"));
    await Deno.remove(release, { recursive: true });
    const refused = await packageStep();
    assert.notEqual(refused.code, 0);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
