/**
 * `--version`: the version from deno.json, the commit (from the checkout when
 * running from source), the target and the Deno version.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { REPO_ROOT, runCli } from "../../helpers/cli.ts";
import { gitCommit } from "../../../src/version.ts";

Deno.test("--version and -V print the version from deno.json, the commit, the target and Deno's version", async () => {
  const { version } = JSON.parse(await Deno.readTextFile(join(REPO_ROOT, "deno.json")));
  assert.match(version, /^\d+\.\d+\.\d+/);
  // safe.directory: CI runs the tests as root in a checkout another user owns.
  const git = await new Deno.Command("git", {
    args: ["-c", "safe.directory=*", "rev-parse", "HEAD"],
    cwd: REPO_ROOT,
  }).output();
  const head = new TextDecoder().decode(git.stdout).trim();
  assert.match(head, /^[0-9a-f]{40}$/);
  for (const flag of ["--version", "-V"]) {
    const out = await runCli([flag]);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(out.stdout.trim().split("\n"), [
      `image-transfer ${version}`,
      `commit: ${head} (source checkout)`,
      `target: ${Deno.build.target}`,
      `deno: ${Deno.version.deno}`,
    ]);
  }
});

Deno.test("gitCommit reads a detached HEAD, a branch, packed refs and a worktree's .git file", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-git-" });
  try {
    const a = "a".repeat(40);
    const b = "b".repeat(40);
    const c = "c".repeat(40);
    const git = join(root, "repo", ".git");
    await Deno.mkdir(join(git, "refs", "heads"), { recursive: true });
    await Deno.writeTextFile(join(git, "HEAD"), `${a}\n`);
    assert.equal(gitCommit(join(root, "repo")), a);
    await Deno.writeTextFile(join(git, "HEAD"), "ref: refs/heads/main\n");
    await Deno.writeTextFile(join(git, "refs", "heads", "main"), `${b}\n`);
    assert.equal(gitCommit(join(root, "repo")), b);
    await Deno.remove(join(git, "refs", "heads", "main"));
    await Deno.writeTextFile(
      join(git, "packed-refs"),
      `# pack-refs with: peeled fully-peeled sorted\n${c} refs/heads/main\n`,
    );
    assert.equal(gitCommit(join(root, "repo")), c);
    // A worktree: .git is a file pointing at .git/worktrees/<name>, refs live in the main .git.
    const wt = join(git, "worktrees", "wt");
    await Deno.mkdir(wt, { recursive: true });
    await Deno.writeTextFile(join(wt, "HEAD"), "ref: refs/heads/main\n");
    await Deno.writeTextFile(join(wt, "commondir"), "../..\n");
    await Deno.mkdir(join(root, "wt"));
    await Deno.writeTextFile(join(root, "wt", ".git"), `gitdir: ${wt}\n`);
    assert.equal(gitCommit(join(root, "wt")), c);
    assert.equal(gitCommit(join(root, "nowhere")), undefined);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
