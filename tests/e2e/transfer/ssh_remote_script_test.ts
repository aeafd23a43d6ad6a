/**
 * The remote scripts (src/transfer/ssh/remote/*.sh with their generated lines),
 * run for real under dash and bash in POSIX mode (the remote `sh` of most
 * hosts), with each SHA-256 tool the remote side may have, and checked with
 * shellcheck.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  type BaseRule,
  MAKE_BASE,
  makeFoldersLines,
} from "../../../src/transfer/ssh/remote_folders.ts";
import {
  buildScript,
  parseResults,
  type RemoteScript,
  resultsByIndex,
  scriptFiles,
} from "../../../src/transfer/ssh/remote_script.ts";
import {
  type FinishContext,
  type FinishEntry,
  finishLines,
  type FinishPlan,
  settleFinish,
} from "../../../src/transfer/ssh/finish.ts";
import { sshDelivery } from "../../../src/transfer/ssh/method.ts";
import {
  parseFoundFlush,
  parseRemoteSizes,
  remoteSizesScript,
} from "../../../src/transfer/destination_sizes.ts";
import type { Delivery } from "../../../src/transfer/deliver.ts";
import { isDestinationFull } from "../../../src/errors.ts";
import { posixWord } from "../../../src/shell_words.ts";
import { STREAMED_SCRIPT_COMMAND } from "../../../src/transfer/ssh/connection.ts";
import { exists, listFiles } from "../../helpers/files.ts";
import { runProgram } from "../../helpers/cli.ts";
import { withExt4, withTmpfs } from "../../helpers/tmpfs.ts";
import { standInPrograms } from "../../helpers/recording_tools.ts";

const sha = (text: string) => createHash("sha256").update(text).digest("hex");

/** The tools the scripts use, besides the SHA-256 ones. */
const TOOLS = [
  "sh",
  "mv",
  "rm",
  "stat",
  "mktemp",
  "cat",
  "tr",
  "mkdir",
  "rmdir",
  "sync",
  "chmod",
  "df",
  "awk",
  "ls",
  "xargs",
  "head",
];

/** A folder of links to the scripts' tools plus `hashTools`, for a PATH with nothing else. */
async function toolFolder(hashTools: string[]): Promise<string> {
  const bin = await Deno.makeTempDir({ prefix: "itx-bin-" });
  for (const tool of [...TOOLS, ...hashTools]) {
    const target = await Deno.realPath(`/usr/bin/${tool}`).catch(() => `/bin/${tool}`);
    await Deno.symlink(target, join(bin, tool));
  }
  return bin;
}

const ONLY_OPENSSL = await toolFolder(["openssl"]);
const ONLY_SHA256SUM = await toolFolder(["sha256sum"]);
const ONLY_SHASUM = await toolFolder(["shasum", "perl"]);
const NO_HASH_TOOL = await toolFolder([]);
globalThis.addEventListener("unload", () => {
  for (const bin of [ONLY_OPENSSL, ONLY_SHA256SUM, ONLY_SHASUM, NO_HASH_TOOL]) {
    Deno.removeSync(bin, { recursive: true });
  }
});

/** Shells the scripts run under: each with the system's tools, or with one hash tool only. */
const SHELLS = [
  ["dash", "-s"],
  ["bash", "--posix", "-s"],
  ["env", `PATH=${ONLY_OPENSSL}`, "/bin/dash", "-s"],
  ["env", `PATH=${ONLY_SHA256SUM}`, "/bin/dash", "-s"],
  ["env", `PATH=${ONLY_SHASUM}`, "/bin/dash", "-s"],
];

/** Run `fn` once per shell of {@linkcode SHELLS}, each time in a fresh folder (removed after). */
async function inEachShell(
  prefix: string,
  fn: (shell: string[], dir: string, where: string) => Promise<void>,
): Promise<void> {
  for (const shell of SHELLS) {
    const dir = await Deno.makeTempDir({ prefix });
    try {
      await fn(shell, dir, shell.join(" "));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
}

/** Run `script` under `shell` in `cwd` to a successful end; returns its stdout. */
async function runShell(shell: string[], script: string, cwd: string): Promise<string> {
  const out = await runProgram(shell[0], shell.slice(1), { cwd, stdin: script });
  assert.ok(out.code === 0, out.stderr);
  return out.stdout;
}

/** Run `script` and return its results by index (word and detail). */
async function run(shell: string[], script: RemoteScript, cwd: string) {
  const results = parseResults(await runShell(shell, script.text, cwd), script.marker);
  return {
    results,
    byIndex: new Map([...resultsByIndex(results)].map(([i, r]) => [i, r.word])),
    details: resultsByIndex(results),
  };
}

/** A finish plan with defaults. */
function finishPlan(entries: FinishEntry[], options: Partial<FinishPlan> = {}): FinishPlan {
  return {
    entries,
    remove: [],
    uploadFolders: [],
    keptCopies: [],
    keptFolders: [],
    spaceFolders: [],
    sync: false,
    ...options,
  };
}

/**
 * Write the copy `name` into the upload folder `.up` of `folder`, holding
 * `written`, and return its entry, which expects `expected`.
 */
async function uploadedCopy(
  index: number,
  folder: string,
  name: string,
  written: string,
  expected = written,
): Promise<FinishEntry> {
  await Deno.mkdir(join(folder, ".up"), { recursive: true });
  await Deno.writeTextFile(join(folder, ".up", name), written);
  return entry(index, folder, ".up", name, expected);
}

/** An entry for the copy `name` in `upload` (inside `folder`), holding `data`. */
function entry(
  index: number,
  folder: string,
  upload: string,
  name: string,
  data: string,
  check: { size?: boolean; sha256?: string | null } = {},
): FinishEntry {
  return {
    index,
    tempPath: join(folder, upload, name),
    finalPath: join(folder, name),
    expectedSize: check.size === false ? null : new TextEncoder().encode(data).length,
    expectedSha256: check.sha256 === undefined ? sha(data) : check.sha256,
    dropWrite: false,
  };
}

const HOSTILE = [
  "plain",
  "with space",
  "it's",
  'say "hi"',
  "$(touch CANARY)",
  "`touch CANARY`",
  "a;touch CANARY",
  "-n",
  "--",
  "new\nline",
  "trailing newline\n",
  "star*",
  "back\\slash\\n",
  "tab\there",
  "caf\u00e9 cafe\u0301",
  "ITX000000 renamed 0",
  "'",
  "''",
  "",
];

Deno.test("posixWord keeps every string byte-exact in dash and bash", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-quote-" });
  try {
    for (const shell of SHELLS.slice(0, 2)) {
      // Hostile ones, and plain ones that go unquoted.
      for (const value of [...HOSTILE, "20240315/frame_0001.fits", "user@host:%d+x=1,2-"]) {
        const out = await runShell(shell, `printf '%s' ${posixWord(value)}`, dir);
        assert.equal(out, value, `${shell[0]}: ${JSON.stringify(value)}`);
      }
      assert.deepEqual([...Deno.readDirSync(dir)], [], "no command ran");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every remote script file passes shellcheck, alone and as sent with hostile data", async () => {
  // As sent, a script holds prologue helpers it does not call (SC2317: "unreachable"), and
  // hostile names in single quotes, which is the point (SC2016: "expressions don't expand").
  const check = async (name: string, text: string, exclude: string[] = []) => {
    const child = new Deno.Command("shellcheck", {
      args: ["--shell=sh", "--severity=style", ...exclude.map((code) => `--exclude=${code}`), "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
    const out = await child.output();
    const report = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `shellcheck ${name} (apt-get install shellcheck):\n${report}`);
  };
  const files = scriptFiles();
  // Every file in remote/ is embedded (and so checked here).
  const folder = new URL("../../../src/transfer/ssh/remote/", import.meta.url);
  const onDisk = [];
  for await (const entry of Deno.readDir(folder)) onDisk.push(entry.name);
  assert.deepEqual(Object.keys(files).sort(), onDisk.sort());
  assert.ok(onDisk.length >= 6, "prologue, make_folders, finish, probe, sizes, disk_space");
  for (const [name, text] of Object.entries(files)) await check(name, text);
  const night = "/data/night $(x) 'q'\n-n";
  const upload = ".incoming-abc-def.image-transfer-partial";
  await check(
    "make_folders as sent",
    buildScript(
      "make_folders",
      makeFoldersLines("/data", [
        { folder: night, uploadName: upload, sweepPrefix: ".incoming-abc-" },
        { folder: "/data", uploadName: upload, sweepPrefix: null },
      ]),
    ).text,
    ["SC2317", "SC2016"],
  );
  const entries = HOSTILE.filter((name) => name !== "").map((name, i) =>
    entry(i, night, upload, name, `data ${i}`, { sha256: i % 2 ? null : sha(name) })
  );
  await check(
    "finish as sent",
    buildScript(
      "finish",
      finishLines(finishPlan(entries, {
        remove: [`${night}/${upload}/x`],
        uploadFolders: [`${night}/${upload}`],
        keptCopies: [{ index: 99, tempPath: `${night}/${upload}-kept/x` }],
        keptFolders: [`${night}/${upload}-kept`],
        spaceFolders: [night],
        sync: true,
      })),
    ).text,
    ["SC2317", "SC2016"],
  );
});

Deno.test("make_folders creates hostile folders and private upload folders, and reports the ones it cannot", async () => {
  await inEachShell("itx-mkdir-", async (shell, dir, where) => {
    await Deno.writeTextFile(join(dir, "file"), "");
    const base = join(dir, "base $(touch CANARY)");
    const folders = [
      join(base, "a/$(touch CANARY)/new\nline"),
      join(base, "-x y"),
      join(base, "file/sub"),
      join(base, "a"),
      base,
    ];
    await Deno.mkdir(base);
    await Deno.writeTextFile(join(base, "file"), "");
    const specs = folders.map((folder) => ({ folder, uploadName: ".up 'x'", sweepPrefix: null }));
    const { byIndex, details } = await run(
      shell,
      buildScript("make_folders", makeFoldersLines(base, specs)),
      dir,
    );
    for (const i of [0, 1, 3, 4]) {
      const info = await Deno.lstat(join(folders[i], ".up 'x'"));
      assert.ok(info.isDirectory, `${where}: ${folders[i]}`);
      assert.equal(info.mode! & 0o777, 0o700, "nobody else can put anything in it");
    }
    assert.deepEqual([...byIndex], [[2, "folder-failed"]], where);
    assert.match(details.get(2)!.detail, /Not a directory/);
    assert.equal(await exists(join(dir, "CANARY")), false);
  });
});

Deno.test("make_folders: a base that was a mount point and is an empty folder now gets nothing; one that holds files has moved for good", async () => {
  await inEachShell("itx-mkdir-mount-", async (shell, dir, where) => {
    const base = join(dir, "disk $(touch CANARY)");
    const folder = join(base, "20240315");
    let uploads = 0;
    const script = (rule: BaseRule) => {
      const spec = { folder, uploadName: `.up${uploads++}`, sweepPrefix: null };
      return buildScript("make_folders", makeFoldersLines(base, [spec], [], rule));
    };
    const said = (results: { word: string; detail: string }[]) =>
      results.map(({ word, detail }) => `${word} ${detail}`);
    // A disk mounted there: asked, the script says so, and makes the folders on it.
    await withTmpfs(base, "1m", async () => {
      const asked = await run(shell, script({ rule: "make", ask: true }), dir);
      assert.deepEqual(said(asked.results), ["base-mount 1"], where);
      assert.ok((await Deno.stat(join(folder, ".up0"))).isDirectory);
    });
    // Unmounted: the empty folder below gets nothing, and says why.
    const gone = await run(shell, script({ rule: "mounted", ask: false }), dir);
    assert.deepEqual(said(gone.results), ["base-gone 0 unmounted"], where);
    assert.deepEqual([...Deno.readDirSync(base)], [], "nothing made below the mount point");
    // No disk was mounted there before: the folder is used, and is said to be no mount point.
    const plain = await run(shell, script({ rule: "keep", ask: true }), dir);
    assert.deepEqual(said(plain.results), ["base-mount 0"], where);
    // It holds files now: moved there for good, used without a look (the first call of a run
    // asks, and learns it is no mount point any more).
    const moved = await run(shell, script({ rule: "mounted", ask: false }), dir);
    assert.deepEqual(said(moved.results), [], where);
    assert.ok((await Deno.stat(join(folder, ".up3"))).isDirectory);
    const asked = await run(shell, script({ rule: "mounted", ask: true }), dir);
    assert.deepEqual(said(asked.results), ["base-mount 0"], where);
    assert.equal(await exists(join(dir, "CANARY")), false);
  });
});

Deno.test("make_folders: a base files arrived in before is not made again once gone", async () => {
  await inEachShell("itx-mkdir-base-", async (shell, dir, where) => {
    const base = join(dir, "share $(touch CANARY)", "images");
    const specs = [join(base, "20240315"), join(base, "20240316", "sub")]
      .map((folder) => ({ folder, uploadName: ".up", sweepPrefix: null }));
    const gone = await run(
      shell,
      buildScript("make_folders", makeFoldersLines(base, specs, [], { rule: "keep", ask: false })),
      dir,
    );
    assert.deepEqual([...gone.byIndex], [[0, "base-gone"], [1, "base-gone"]], where);
    assert.equal(await exists(join(dir, "share $(touch CANARY)")), false, "nothing made");
    // Allowed (no file arrived there yet): made with its parents.
    const made = await run(
      shell,
      buildScript("make_folders", makeFoldersLines(base, specs, [], MAKE_BASE)),
      dir,
    );
    assert.deepEqual([...made.byIndex], [], where);
    for (const spec of specs) assert.ok((await Deno.stat(join(spec.folder, ".up"))).isDirectory);
    assert.equal(await exists(join(dir, "CANARY")), false);
  });
});

Deno.test("make_folders: an existing upload folder name or a link on the way fails, nothing written through it", async () => {
  await inEachShell("itx-mkdir-links-", async (shell, dir, where) => {
    const base = join(dir, "base");
    const elsewhere = join(dir, "elsewhere");
    await Deno.mkdir(join(base, "night"), { recursive: true });
    await Deno.mkdir(elsewhere);
    // A link planted as a night folder, one planted under the upload folder's name, one
    // dangling, and a plain folder already there.
    await Deno.symlink(elsewhere, join(base, "linked"));
    await Deno.symlink(elsewhere, join(base, "night", ".up-1"));
    await Deno.symlink(join(elsewhere, "new"), join(base, "night", ".up-2"));
    await Deno.mkdir(join(base, "night", ".up-3"));
    const night = join(base, "night");
    const specs = [
      { folder: join(base, "linked", "sub"), uploadName: ".up", sweepPrefix: null },
      { folder: night, uploadName: ".up-1", sweepPrefix: null },
      { folder: night, uploadName: ".up-2", sweepPrefix: null },
      { folder: night, uploadName: ".up-3", sweepPrefix: null },
    ];
    const { byIndex, details } = await run(
      shell,
      buildScript("make_folders", makeFoldersLines(base, specs)),
      dir,
    );
    assert.deepEqual([...byIndex].sort(), [
      [0, "folder-is-link"],
      [1, "folder-failed"],
      [2, "folder-failed"],
      [3, "folder-failed"],
    ], where);
    for (const i of [1, 2, 3]) assert.match(details.get(i)!.detail, /File exists/);
    assert.deepEqual([...Deno.readDirSync(elsewhere)], [], "nothing was created through a link");
  });
});

Deno.test("make_folders sweeps this daemon's leftover upload folders and nothing else", async () => {
  await inEachShell("itx-sweep-", async (shell, dir, where) => {
    const night = join(dir, "night $(touch CANARY)");
    const victim = join(dir, "victim");
    await Deno.mkdir(victim);
    await Deno.writeTextFile(join(victim, "keep"), "x");
    const ours = [
      ".incoming-abc-1.image-transfer-partial",
      ".incoming-abc-2.image-transfer-partial",
    ];
    await Deno.mkdir(join(night, ours[0], "deep"), { recursive: true });
    await Deno.writeTextFile(join(night, ours[0], "deep", "leftover"), "x");
    await Deno.symlink(victim, join(night, ours[1]));
    const others = [".incoming-def-1.image-transfer-partial", "a.fits", ".incoming-abc-1"];
    for (const name of others) await Deno.writeTextFile(join(night, name), "y");
    const upload = ".incoming-abc-3.image-transfer-partial";
    const { results } = await run(
      shell,
      buildScript(
        "make_folders",
        makeFoldersLines(dir, [{
          folder: night,
          uploadName: upload,
          sweepPrefix: ".incoming-abc-",
        }]),
      ),
      dir,
    );
    assert.deepEqual(results, [], where);
    assert.deepEqual(
      [...Deno.readDirSync(night)].map((e) => e.name).sort(),
      [...others, upload].sort(),
    );
    assert.equal(await Deno.readTextFile(join(victim, "keep")), "x", "a link is removed");
    assert.equal(await exists(join(dir, "CANARY")), false);
  });
});

Deno.test("finish verifies size and SHA-256, renames the good copies, removes bad ones and the upload folder", async () => {
  await inEachShell("itx-finish-", async (shell, dir, where) => {
    const up = ".up 'x'";
    const upload = join(dir, up);
    await Deno.mkdir(upload);
    const names = [
      "ok $(touch CANARY)",
      "short",
      "bad-sum",
      "missing",
      "is-folder",
      "new\nline -n",
      "back\\slash",
      "-n",
    ];
    const entries = names.map((name, i) => entry(i, dir, up, name, `data ${name}`));
    for (const name of names) await Deno.writeTextFile(join(upload, name), `data ${name}`);
    await Deno.writeTextFile(join(upload, "short"), "da");
    entries[2].expectedSha256 = sha("something else");
    await Deno.remove(join(upload, "missing"));
    await Deno.mkdir(join(dir, "is-folder"));
    await Deno.writeTextFile(join(dir, "ok $(touch CANARY)"), "old final");
    await Deno.writeTextFile(join(upload, "failed before"), "x");
    const plan = finishPlan(entries, {
      remove: [join(upload, "failed before")],
      uploadFolders: [upload],
    });
    const { byIndex, details } = await run(shell, buildScript("finish", finishLines(plan)), dir);
    assert.deepEqual([...byIndex].sort(), [
      [0, "renamed"],
      [1, "size-differs"],
      [2, "checksum-differs"],
      [3, "missing"],
      [4, "final-is-folder"],
      [5, "renamed"],
      [6, "renamed"],
      [7, "renamed"],
    ], where);
    assert.equal(details.get(1)!.detail, "2");
    assert.equal(details.get(2)!.detail, sha("data bad-sum"));
    for (const i of [0, 5, 6, 7]) {
      assert.equal(await Deno.readTextFile(join(dir, names[i])), `data ${names[i]}`, where);
    }
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["-n", "back\\slash", "is-folder", "new\nline -n", "ok $(touch CANARY)"],
      `${where}: the upload folder is gone with what was left in it`,
    );
  });
});

Deno.test("finish keeps a failed upload's copy only where something was written, and removes the upload folders left empty", async () => {
  await inEachShell("itx-kept-", async (shell, dir, where) => {
    // A good copy beside them, renamed as always.
    await Deno.mkdir(join(dir, ".good"));
    await Deno.writeTextFile(join(dir, ".good", "good"), "data good");
    // Written to before the upload failed; nothing written (its handshake failed); an empty
    // copy; nothing but rsync's own temporary file.
    const folders = [".part $(touch CANARY)", ".none", ".empty", ".temp"].map((name) => {
      Deno.mkdirSync(join(dir, name));
      return join(dir, name);
    });
    await Deno.writeTextFile(join(folders[0], "a\nb"), "half");
    await Deno.writeTextFile(join(folders[2], "c"), "");
    await Deno.writeTextFile(join(folders[3], ".d.Xy12Ab"), "rsync's");
    const plan = finishPlan([entry(9, dir, ".good", "good", "data good")], {
      uploadFolders: [join(dir, ".good")],
      keptCopies: ["a\nb", "b", "c", "d"].map((name, i) => ({
        index: i,
        tempPath: join(folders[i], name),
      })),
      keptFolders: folders,
    });
    const { results, byIndex } = await run(shell, buildScript("finish", finishLines(plan)), dir);
    assert.deepEqual(
      results.map((r) => `${r.word} ${r.detail}`).sort(),
      ["folder-left 0", "folder-left 3", "kept 0", "renamed 9"],
      where,
    );
    assert.equal(byIndex.get(9), "renamed");
    assert.equal(await Deno.readTextFile(join(folders[0], "a\nb")), "half", where);
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      [".part $(touch CANARY)", ".temp", "good"],
      `${where}: the empty upload folders are gone`,
    );
  });
});

Deno.test("finish hashes a folder's copies with one process and cannot be misled by its output", async () => {
  await inEachShell("itx-finish-hash-", async (shell, dir, where) => {
    const up = ".up";
    await Deno.mkdir(join(dir, up));
    const copies: { name: string; data: string; expected?: string; remove?: boolean }[] = [
      // Hashed on its own (a hash tool would print its name escaped).
      { name: "new\nline.fits", data: "data d" },
      { name: "a.fits", data: "data a" },
      // Listed for the folder's hash process, but gone: its line is missing.
      { name: "gone.fits", data: "data gone", remove: true },
      // Pattern characters in a name are data.
      { name: "b *.fits", data: "data b" },
      { name: "c.fits", data: "data c", expected: "data a" },
      { name: "d.fits", data: "data d" },
    ];
    const entries = copies.map((c, i) =>
      entry(i, dir, up, c.name, c.data, { size: false, sha256: sha(c.expected ?? c.data) })
    );
    for (const c of copies) {
      if (!c.remove) await Deno.writeTextFile(join(dir, up, c.name), c.data);
    }
    const lines = finishLines(finishPlan(entries));
    assert.equal(lines.filter((line) => line.startsWith("begin_folder")).length, 1);
    const { byIndex } = await run(shell, buildScript("finish", lines), dir);
    assert.deepEqual([...byIndex].sort(), [
      [0, "renamed"],
      [1, "renamed"],
      [2, "missing"],
      [3, "renamed"],
      [4, "checksum-differs"],
      [5, "renamed"],
    ], where);
    for (const c of copies.filter((c) => !c.remove && !c.expected)) {
      assert.equal(await Deno.readTextFile(join(dir, c.name)), c.data, `${where}: ${c.name}`);
    }
  });
});

Deno.test("finish runs the hash tool once per folder, plus once per copy whose name it would escape: sha256sum for a few small copies, OpenSSL for more", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-finish-count-" });
  try {
    const bin = join(dir, "bin");
    await Deno.mkdir(bin);
    for (const tool of ["openssl", "sha256sum"]) {
      await Deno.writeTextFile(
        join(bin, tool),
        `#!/bin/sh\necho "${tool} $#" >>'${dir}/calls'\nexec /usr/bin/${tool} "$@"\n`,
      );
      await Deno.chmod(join(bin, tool), 0o755);
    }
    const shell = ["env", `PATH=${bin}:/usr/bin:/bin`, "/bin/dash", "-s"];
    for (const [round, large] of [false, true].entries()) {
      const entries: FinishEntry[] = [];
      for (const [f, folder] of [`night ${round}1`, `night ${round}2`].entries()) {
        await Deno.mkdir(join(dir, folder, ".up"), { recursive: true });
        for (const [i, name] of ["a", "b", "c", "d\\e"].entries()) {
          await Deno.writeTextFile(join(dir, folder, ".up", name), `${folder} ${name}`);
          const one = entry(f * 10 + i, join(dir, folder), ".up", name, `${folder} ${name}`);
          // Told as 1 MiB each, the eight are too many bytes for sha256sum (the copies match
          // their hashes, so their sizes are not read).
          if (large) one.expectedSize = 1024 * 1024;
          entries.push(one);
        }
      }
      await Deno.remove(join(dir, "calls")).catch(() => {});
      // The work files (the hash tool's lists) go into the upload folders, removed at the end.
      const uploadFolders = [1, 2].map((n) => join(dir, `night ${round}${n}`, ".up"));
      const { byIndex } = await run(
        shell,
        buildScript("finish", finishLines(finishPlan(entries, { uploadFolders }))),
        dir,
      );
      assert.deepEqual([...byIndex.values()], entries.map(() => "renamed"));
      // A folder's three names (+3 words) twice, each "d\\e" alone (3 words); the tool is taken
      // without a trial run.
      const tool = large ? "openssl" : "sha256sum";
      const words = large ? [3, 3, 6, 6] : [1, 1, 4, 4];
      const calls = (await Deno.readTextFile(join(dir, "calls"))).trim().split("\n");
      assert.deepEqual(calls.sort(), words.map((n) => `${tool} ${n}`));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finish checks a copy with a hash by the hash alone, says when its size differs too, and keeps its work files in the upload folder it removes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-finish-size-" });
  try {
    const bin = await toolFolder(["openssl", "sha256sum"]);
    // stat and mktemp record their runs.
    for (const tool of ["stat", "mktemp"]) {
      await Deno.remove(join(bin, tool));
      await Deno.writeTextFile(
        join(bin, tool),
        `#!/bin/sh\necho "${tool} $*" >>'${dir}.runs'\nexec /usr/bin/${tool} "$@"\n`,
      );
      await Deno.chmod(join(bin, tool), 0o755);
    }
    try {
      const night = join(dir, "night");
      const entries = [
        await uploadedCopy(0, night, "good", "good copy"),
        await uploadedCopy(1, night, "short", "cut", "cut short, it was longer"),
        await uploadedCopy(2, night, "changed", "the same length!", "THE SAME LENGTH!"),
      ];
      const { byIndex, details } = await run(
        ["env", `PATH=${bin}`, "/bin/dash", "-s"],
        buildScript(
          "finish",
          finishLines(finishPlan(entries, { uploadFolders: [join(dir, "night", ".up")] })),
        ),
        dir,
      );
      assert.deepEqual([...byIndex].sort(), [
        [0, "renamed"],
        [1, "size-differs"],
        [2, "checksum-differs"],
      ]);
      assert.equal(details.get(1)?.detail, "3");
      // Sizes are read only for the copies whose hash differs; no work folder of its own.
      const runs = (await Deno.readTextFile(`${dir}.runs`)).trim().split("\n");
      assert.equal(runs.length, 2, runs.join("; "));
      assert.ok(runs.every((line) => /^stat .*(short|changed)$/.test(line)), runs.join("; "));
      // The work files went with the upload folder: nothing else is left.
      assert.deepEqual(await listFiles(dir), ["night/good"]);
      assert.equal(await Deno.readTextFile(join(dir, "night", "good")), "good copy");
    } finally {
      await Deno.remove(bin, { recursive: true });
      await Deno.remove(`${dir}.runs`).catch(() => {});
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finish with an openssl that cannot hash takes the next tool, and still finds a bad copy", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-finish-badssl-" });
  try {
    const bin = await toolFolder(["sha256sum"]);
    await Deno.writeTextFile(join(bin, "openssl"), "#!/bin/sh\nexit 1\n");
    await Deno.chmod(join(bin, "openssl"), 0o755);
    try {
      const entries = [
        await uploadedCopy(0, join(dir, "n1"), "a", "one a"),
        {
          ...await uploadedCopy(1, join(dir, "n1"), "b", "one b, changed", "one b"),
          expectedSize: null,
        },
        await uploadedCopy(2, join(dir, "n2"), "c", "two c"),
      ];
      const { byIndex } = await run(
        ["env", `PATH=${bin}`, "/bin/dash", "-s"],
        buildScript("finish", finishLines(finishPlan(entries))),
        dir,
      );
      assert.deepEqual([...byIndex].sort(), [[0, "renamed"], [1, "checksum-differs"], [
        2,
        "renamed",
      ]]);
      assert.equal(await Deno.readTextFile(join(dir, "n1", "a")), "one a");
      assert.equal(await Deno.readTextFile(join(dir, "n2", "c")), "two c");
      assert.equal(await exists(join(dir, "n1", "b")), false, "the bad copy is not delivered");
      assert.equal(await exists(join(dir, "n1", ".up", "b")), false, "the bad copy is removed");
    } finally {
      await Deno.remove(bin, { recursive: true });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finish renames a lone copy without xargs, whatever its name", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-finish-lone-" });
  const bin = await toolFolder(["openssl"]);
  // An xargs that only says it ran.
  await Deno.remove(join(bin, "xargs"));
  await Deno.writeTextFile(
    join(bin, "xargs"),
    `#!/bin/sh\necho ran >>'${dir}/xargs ran'\nexit 1\n`,
  );
  await Deno.chmod(join(bin, "xargs"), 0o755);
  try {
    for (const [i, name] of HOSTILE.filter((name) => name !== "").entries()) {
      const folder = join(dir, `night ${i}`);
      await Deno.mkdir(join(folder, ".up"), { recursive: true });
      await Deno.writeTextFile(join(folder, ".up", name), `data ${i}`);
      const { byIndex } = await run(
        ["env", `PATH=${bin}`, "/bin/dash", "-s"],
        buildScript(
          "finish",
          finishLines(
            finishPlan([entry(i, folder, ".up", name, `data ${i}`)], {
              uploadFolders: [join(folder, ".up")],
            }),
          ),
        ),
        dir,
      );
      assert.equal(byIndex.get(i), "renamed", JSON.stringify(name));
      assert.equal(await Deno.readTextFile(join(folder, name)), `data ${i}`, JSON.stringify(name));
      assert.deepEqual([...Deno.readDirSync(folder)].map((e) => e.name), [name]);
    }
    assert.equal(await exists(join(dir, "CANARY")), false, "no command ran");
    assert.equal(await exists(join(dir, "xargs ran")), false, "xargs is not needed for one copy");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(bin, { recursive: true });
  }
});

Deno.test("finish never renames a copy whose final name is kept onto a file that came there after its check, with or without work files, and where mv has no -n", async () => {
  // The server's `chmod` (drop_group_and_other_write: after every check, before the renames)
  // first does what another sender does at that moment: a file under the final name of each
  // copy it is given, with other bytes, or the copy's own where its name starts with "same ".
  // A second folder holds an `mv` without -n (BSD mv of old, OpenBSD's).
  const stands = await Deno.makeTempDir({ prefix: "itx-finish-race-" });
  const noN = join(stands, "no-n");
  await standInPrograms(stands, {
    chmod: "for arg do\n  case $arg in go-w|--) continue ;; esac\n  name=${arg##*/}\n" +
      "  up=${arg%/*}\n  final=${up%/*}/$name\n" +
      '  case $name in "same "*) cat -- "$arg" >"$final" ;; *) printf other >"$final" ;; esac\n' +
      'done\nexec /usr/bin/chmod "$@"\n',
  });
  // held_by_other compares the two files with cmp.
  await Deno.symlink("/usr/bin/cmp", join(stands, "cmp"));
  await standInPrograms(noN, {
    mv: 'case $1 in -n) echo "mv: illegal option -- n" >&2; exit 64 ;; esac\n' +
      'exec /usr/bin/mv "$@"\n',
  });
  const shells = [
    { shell: ["env", `PATH=${stands}:${ONLY_OPENSSL}`, "/bin/dash", "-s"], mv: "mv -n" },
    {
      shell: ["env", `PATH=${stands}:${ONLY_SHA256SUM}`, "/bin/bash", "--posix", "-s"],
      mv: "mv -n",
    },
    { shell: ["env", `PATH=${noN}:${stands}:${ONLY_OPENSSL}`, "/bin/dash", "-s"], mv: "no -n" },
  ];
  const names = HOSTILE.filter((name) => name !== "");
  // Per name, round the four: kept and raced by another file, kept and raced by the source's
  // bytes, kept and not raced, replacing (the source's own copy there) and raced.
  const kinds = ["occupied", "already", "renamed", "replaced"] as const;
  try {
    for (const { shell, mv } of shells) {
      for (const work of [true, false]) {
        const where = `${shell.slice(2).join(" ")} (${mv}), ${
          work ? "with" : "without"
        } work files`;
        const dir = await Deno.makeTempDir({ prefix: "itx-finish-keep-" });
        try {
          const upload = join(dir, ".up");
          await Deno.mkdir(upload);
          const entries = await Promise.all(names.map(async (raw, i) => {
            const kind = kinds[i % kinds.length];
            const name = kind === "already" ? `same ${raw}` : raw;
            await Deno.writeTextFile(join(upload, name), `data ${i}`);
            const one = entry(i, dir, ".up", name, `data ${i}`);
            return {
              ...one,
              dropWrite: kind !== "renamed",
              keepOther: kind === "replaced" ? null : one.expectedSize,
            };
          }));
          const plan = finishPlan(entries, { uploadFolders: work ? [upload] : [] });
          const { byIndex } = await run(shell, buildScript("finish", finishLines(plan)), dir);
          for (const [i, { finalPath }] of entries.entries()) {
            const kind = kinds[i % kinds.length];
            const what = `${where}: ${JSON.stringify(finalPath)}`;
            assert.equal(byIndex.get(i), kind === "replaced" ? "renamed" : kind, what);
            const held = await Deno.readTextFile(finalPath);
            assert.equal(held, kind === "occupied" ? "other" : `data ${i}`, what);
          }
          // No copy left, whether the rename took it or it was judged and removed.
          if (!work) assert.deepEqual([...Deno.readDirSync(upload)], [], where);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      }
    }
  } finally {
    await Deno.remove(stands, { recursive: true });
  }
});

Deno.test("finish without a SHA-256 tool reports it; size checks and no checks still work", async () => {
  const shell = ["env", `PATH=${NO_HASH_TOOL}`, "/bin/dash", "-s"];
  const dir = await Deno.makeTempDir({ prefix: "itx-finish-nohash-" });
  try {
    await Deno.mkdir(join(dir, ".up"));
    for (const name of ["a", "b", "c"]) await Deno.writeTextFile(join(dir, ".up", name), "12345");
    const entries = [
      entry(0, dir, ".up", "a", "12345"),
      entry(1, dir, ".up", "b", "12345", { sha256: null }),
      entry(2, dir, ".up", "c", "12345", { size: false, sha256: null }),
      entry(3, dir, ".up", "gone", "1", { sha256: null }),
    ];
    const { byIndex } = await run(
      shell,
      buildScript("finish", finishLines(finishPlan(entries))),
      dir,
    );
    assert.deepEqual([...byIndex].sort(), [
      [0, "no-hash-tool"],
      [1, "renamed"],
      [2, "renamed"],
      [3, "missing"],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finish replaces a link under the final name, never delivers a copy that is a link, drops group and other write", async () => {
  await inEachShell("itx-finish-links-", async (shell, dir, where) => {
    const victim = join(dir, "victim");
    await Deno.writeTextFile(victim, "keep me");
    await Deno.chmod(victim, 0o600);
    await Deno.mkdir(join(dir, ".up"));
    await Deno.writeTextFile(join(dir, ".up", "public.fits"), "data public");
    await Deno.chmod(join(dir, ".up", "public.fits"), 0o664);
    await Deno.symlink(victim, join(dir, "public.fits"));
    await Deno.symlink(victim, join(dir, ".up", "link.fits"));
    const entries = [
      { ...entry(0, dir, ".up", "public.fits", "data public"), dropWrite: true },
      entry(1, dir, ".up", "link.fits", "keep me"),
    ];
    const { byIndex } = await run(
      shell,
      buildScript("finish", finishLines(finishPlan(entries))),
      dir,
    );
    assert.deepEqual([...byIndex].sort(), [[0, "renamed"], [1, "missing"]], where);
    const info = await Deno.lstat(join(dir, "public.fits"));
    assert.ok(info.isFile);
    assert.equal(info.mode! & 0o777, 0o644);
    assert.equal(await exists(join(dir, "link.fits")), false);
    assert.equal(await Deno.readTextFile(victim), "keep me");
    assert.equal((await Deno.stat(victim)).mode! & 0o777, 0o600);
  });
});

Deno.test("finish on a disk out of inodes (its work files cannot be made) checks and renames every copy, and says no file fits", async () => {
  await inEachShell("itx-finish-inodes-", async (shell, dir, where) => {
    // Its root, the upload folder and the four copies: not one inode left.
    await withTmpfs(join(dir, "full"), "4m", async (full) => {
      const entries = [
        await uploadedCopy(0, full, "a.fits", "data a"),
        await uploadedCopy(1, full, "b.fits", "data b"),
        entry(2, full, ".up", "c.fits", "data c", { sha256: null }),
        // Still checked, one by one.
        await uploadedCopy(3, full, "d.fits", "data X", "data d"),
      ];
      await Deno.writeTextFile(join(full, ".up", "c.fits"), "data c");
      const plan = finishPlan(entries, {
        uploadFolders: [join(full, ".up")],
        spaceFolders: [full],
      });
      const { byIndex, details, results } = await run(
        shell,
        buildScript("finish", finishLines(plan)),
        dir,
      );
      assert.deepEqual([...byIndex].sort(), [
        [0, "renamed"],
        [1, "renamed"],
        [2, "renamed"],
        [3, "checksum-differs"],
      ], where);
      const space = results.find((result) => result.word === "space-left");
      assert.match(space?.detail ?? "", /^0 \d+ 0$/, `${where}: ${[...details]}`);
      assert.deepEqual(await listFiles(full), ["a.fits", "b.fits", "c.fits"], where);
      for (const name of ["a", "b", "c"]) {
        assert.equal(await Deno.readTextFile(join(full, `${name}.fits`)), `data ${name}`, where);
      }
    }, { inodes: 6 });
  });
});

Deno.test("finish says why a rename was refused for space (a full ext4 folder needing a new block)", async () => {
  await inEachShell("itx-finish-mvfull-", async (shell, dir, where) => {
    await withExt4(join(dir, "disk"), 8, async (disk) => {
      const night = join(disk, "night");
      const entries = [await uploadedCopy(0, night, "a.fits", "data a")];
      // The disk full to its last block, then the folder's blocks full of names: the rename
      // needs a new block for the folder, and there is none.
      const filler = await Deno.open(join(disk, "filler"), { write: true, create: true });
      try {
        for (let chunk = 1 << 20; chunk >= 1;) {
          try {
            await filler.write(new Uint8Array(chunk));
          } catch {
            chunk = Math.floor(chunk / 2);
          }
        }
      } finally {
        filler.close();
      }
      // The folder keeps its one block: filled with ever shorter names, to its last 16 bytes,
      // where no entry as long as the copy's fits.
      let made = 0;
      for (const length of [200, 100, 50, 20, 8]) {
        for (;; made++) {
          try {
            await Deno.writeFile(
              join(night, String(made).padEnd(length, "n")),
              new Uint8Array(),
            );
          } catch {
            break;
          }
        }
      }
      const plan = finishPlan(entries, { uploadFolders: [join(night, ".up")] });
      const { byIndex, details } = await run(
        shell,
        buildScript("finish", finishLines(plan)),
        dir,
      );
      assert.deepEqual([...byIndex], [[0, "rename-failed"]], where);
      assert.match(details.get(0)!.detail, /^mv: cannot move .*: No space left on device$/, where);
      await Deno.remove(join(disk, "filler"));
    });
  });
});

Deno.test("finish reports the room left in the folders asked about, and result lines need the marker", async () => {
  await inEachShell("itx-finish-space-", async (shell, dir, where) => {
    await Deno.mkdir(join(dir, "it's"));
    const script = buildScript(
      "finish",
      finishLines(finishPlan([], { spaceFolders: [join(dir, "it's"), dir] })),
    );
    const { results } = await run(shell, script, dir);
    assert.deepEqual(results.map((r) => r.word), ["space-left", "space-left"], where);
    assert.match(results[1].detail, /^1 [1-9]\d* (\d+|-)$/);
  });
  const marker = "ITXabc";
  const out = `ITX000000 renamed 0\n${marker} size-differs 1 10\nnoise from .bashrc\n` +
    `${marker} rename-failed 2 mv: cannot move\n`;
  assert.deepEqual([...resultsByIndex(parseResults(out, marker))], [
    [1, { word: "size-differs", detail: "10" }],
    [2, { word: "rename-failed", detail: "mv: cannot move" }],
  ]);
});

Deno.test("finish flushes the file system before the renames and after them, only with remote_sync", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sync-" });
  try {
    // A `sync` that records its arguments and whether the final name exists yet.
    const shim = await standInPrograms(join(dir, "shim"), {
      sync: '{ printf \'%s|\' "$*"; [ -e "$FINAL" ] && echo final || echo none; } >>"$LOG"\n',
    });
    const night = join(dir, "night 'x'");
    const log = join(dir, "sync.log");
    for (const sync of [true, false]) {
      await Deno.mkdir(join(night, ".up"), { recursive: true });
      await Deno.writeTextFile(join(night, ".up", "a.fits"), "12345");
      const final = join(night, "a.fits");
      const shell = ["env", `PATH=${shim}:/usr/bin:/bin`, `LOG=${log}`, `FINAL=${final}`];
      const plan = finishPlan([entry(0, night, ".up", "a.fits", "12345", { sha256: null })], {
        sync,
      });
      const { byIndex } = await run(
        [...shell, "/bin/dash", "-s"],
        buildScript("finish", finishLines(plan)),
        dir,
      );
      assert.deepEqual([...byIndex], [[0, "renamed"]]);
      const flushes = await Deno.readTextFile(log).catch(() => "");
      assert.deepEqual(
        flushes.trim().split("\n").filter((line) => line !== ""),
        sync ? [`-f -- ${night}|none`, `-f -- ${night}|final`] : [],
      );
      await Deno.remove(night, { recursive: true });
      await Deno.remove(log).catch(() => {});
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sizes with flushFound flushes only the folders where it found a file, each once, and says when that fails", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sizes-flush-" });
  try {
    // A `sync` that records its arguments, and fails (GNU sync's words) while FAIL is set.
    const shim = await standInPrograms(join(dir, "shim"), {
      sync: 'printf \'%s\\n\' "$*" >>"$LOG"\n[ -z "$FAIL" ] && exit 0\n' +
        "echo \"sync: error syncing '$3': Input/output error\" >&2\nexit 1\n",
    });
    const base = join(dir, "base");
    for (const folder of ["night 'x'", "1 $(y)", "empty"]) {
      await Deno.mkdir(join(base, folder), { recursive: true });
    }
    await Deno.writeTextFile(join(base, "night 'x'", "a.fits"), "12345");
    await Deno.writeTextFile(join(base, "night 'x'", "b\nc.fits"), "123");
    await Deno.writeTextFile(join(base, "1 $(y)", "d.fits"), "1");
    const asked = [
      "night 'x'/a.fits",
      "empty/e.fits",
      "1 $(y)/d.fits",
      "night 'x'/b\nc.fits",
      "gone/f.fits",
    ];
    const log = join(dir, "sync.log");
    for (const fail of ["", "yes"]) {
      const shell = ["env", `PATH=${shim}:/usr/bin:/bin`, `LOG=${log}`, `FAIL=${fail}`];
      const script = remoteSizesScript(base, asked, true);
      const stdout = await runShell([...shell, "/bin/dash", "-s"], script.text, dir);
      const sizes = parseRemoteSizes(asked, script, stdout);
      assert.deepEqual([...sizes.values()], [5, null, 1, 3, null]);
      const flushes = (await Deno.readTextFile(log)).trim().split("\n");
      assert.deepEqual(flushes, [`-f -- ${join(base, "1 $(y)")} ${join(base, "night 'x'")}`]);
      assert.equal(
        parseFoundFlush(script, stdout, sizes),
        fail ? `sync: error syncing '${join(base, "1 $(y)")}': Input/output error` : null,
      );
      await Deno.remove(log);
    }
    // Nothing found: nothing flushed, nothing to confirm.
    const script = remoteSizesScript(base, ["empty/e.fits"], true);
    const stdout = await runShell(
      ["env", `PATH=${shim}:/usr/bin:/bin`, `LOG=${log}`, "FAIL=yes", "/bin/dash", "-s"],
      script.text,
      dir,
    );
    assert.equal(
      parseFoundFlush(script, stdout, parseRemoteSizes(["empty/e.fits"], script, stdout)),
      null,
    );
    assert.ok(!await exists(log));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finish renames no copy its file system could not write out, and the job is told the disk is full", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sync-failed-" });
  try {
    // GNU sync's words where the data could not be written out (a disk found full only at
    // write-back, on NFS or a thin volume: no tmpfs or loop disk fails so).
    const shim = await standInPrograms(join(dir, "shim"), {
      sync: `echo "sync: error syncing '$3': No space left on device" >&2\nexit 1\n`,
    });
    const { night, entries, results, byIndex } = await finishTwoWithSync(dir, shim);
    assert.deepEqual([...byIndex].sort(), [[0, "not-flushed"], [1, "not-flushed"]]);
    assert.match(
      results.find((result) => result.word === "flush-failed")?.detail ?? "",
      /^sync: error syncing '.*night': No space left on device$/,
    );
    assert.deepEqual(await listFiles(night), [], "nothing renamed, the upload folder removed");
    // What the transport makes of it: a full destination, which pauses the job.
    const deliveries = deliveriesOf(entries);
    const ctx = {
      job: { remote_sync: true },
      context: { host: "freya", destination: "obs@freya", port: null },
      describeTarget: (destination: string) => `obs@freya:/data/${destination}`,
    } as unknown as FinishContext;
    settleFinish(ctx, deliveries, results, []);
    for (const delivery of deliveries) {
      assert.ok(
        delivery.error !== null && isDestinationFull(delivery.error),
        delivery.error?.message,
      );
      assert.match(
        delivery.error.message,
        /its copy was not written out: the destination disk on freya is full/,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * `finish` with remote_sync of two uploaded copies (`a.fits`, `b.fits` in `dir/night`), run by
 * dash with the programs of `shim` first on its PATH.
 */
async function finishTwoWithSync(dir: string, shim: string) {
  const night = join(dir, "night");
  const entries = [
    await uploadedCopy(0, night, "a.fits", "data a"),
    await uploadedCopy(1, night, "b.fits", "data b"),
  ];
  const plan = finishPlan(entries, { sync: true, uploadFolders: [join(night, ".up")] });
  const { results, byIndex } = await run(
    ["env", `PATH=${shim}:/usr/bin:/bin`, "/bin/dash", "-s"],
    buildScript("finish", finishLines(plan)),
    dir,
  );
  return { night, entries, results, byIndex };
}

/** The deliveries of `entries` as the transport keeps them, for {@linkcode settleFinish}. */
function deliveriesOf(entries: FinishEntry[]) {
  return entries.map((entry) => ({
    ...sshDelivery({
      index: entry.index,
      item: { source: `/src/${entry.index}.fits`, destination: `night/${entry.index}.fits` },
      finalPath: entry.finalPath,
      tempPath: entry.tempPath,
      error: null,
      source: null,
      sha256: null,
      done: false,
      checkedAfterRead: false,
    } as unknown as Delivery),
  }));
}

Deno.test("finish with remote_sync where the flush after the renames fails: the copies stay in place, and none counts as arrived", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sync-after-" });
  try {
    // GNU sync's words for a write-back error, once the folder holds a file under a final name
    // (the upload folder is hidden): the flush before the renames succeeds, the one after fails.
    const shim = await standInPrograms(join(dir, "shim"), {
      sync: '[ -z "$(ls -- "$3")" ] && exit 0\n' +
        `echo "sync: error syncing '$3': Input/output error" >&2\nexit 1\n`,
    });
    const { night, entries, results, byIndex } = await finishTwoWithSync(dir, shim);
    assert.deepEqual([...byIndex].sort(), [[0, "renamed"], [1, "renamed"]]);
    assert.match(
      results.find((result) => result.word === "renames-not-flushed")?.detail ?? "",
      /^sync: error syncing '.*night': Input\/output error$/,
    );
    assert.ok(!results.some((result) => result.word === "renames-flushed"));
    // Nothing is taken back: the copies are in place, the upload folder is gone.
    assert.deepEqual(await listFiles(night), ["a.fits", "b.fits"]);
    assert.equal(await Deno.readTextFile(join(night, "a.fits")), "data a");
    // What the transport makes of it: no arrival, sync's words, and the copies its own there.
    const deliveries = deliveriesOf(entries);
    const unflushed = new Set<string>();
    const ctx = {
      job: { remote_sync: true },
      context: { host: "freya", destination: "obs@freya", port: null },
      describeTarget: (destination: string) => `obs@freya:/data/${destination}`,
      unflushed,
    } as unknown as FinishContext;
    settleFinish(ctx, deliveries, results, []);
    for (const delivery of deliveries) {
      assert.equal(delivery.error?.kind, "retry", delivery.error?.message);
      assert.match(
        delivery.error?.message ?? "",
        /^Cannot send \/src\/\d\.fits to obs@freya:\/data\/night\/\d\.fits: its copy is in place, but the server did not confirm it on disk after the rename \(remote_sync\): not counted as arrived, it is sent again: sync: error syncing '.*night': Input\/output error$/,
      );
    }
    assert.deepEqual([...unflushed].sort(), entries.map((entry) => entry.finalPath));
    // Without a word of that flush (the script ended before it), no copy counts either.
    const cut = results.filter((result) => !result.word.startsWith("renames-"));
    const again = deliveriesOf(entries);
    settleFinish(ctx, again, cut, []);
    assert.ok(again.every((delivery) => delivery.error !== null));
    // Once a flush confirms them, they count, and are no longer taken for unconfirmed.
    const confirmed = deliveriesOf(entries);
    settleFinish(ctx, confirmed, [...cut, { word: "renames-flushed", detail: "" }], []);
    assert.ok(confirmed.every((delivery) => delivery.error === null));
    assert.equal(unflushed.size, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finish with remote_sync on a host without sync renames nothing and says so", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sync-none-" });
  try {
    // The scripts' tools, but no sync.
    const bin = join(dir, "bin");
    await Deno.mkdir(bin);
    for (const tool of [...TOOLS, "sha256sum"]) {
      if (tool === "sync") continue;
      const target = await Deno.realPath(`/usr/bin/${tool}`).catch(() => `/bin/${tool}`);
      await Deno.symlink(target, join(bin, tool));
    }
    for (const shell of [["/bin/dash", "-s"], ["/bin/bash", "--posix", "-s"]]) {
      const night = join(dir, "night");
      const entries = [await uploadedCopy(0, night, "a.fits", "data a")];
      const plan = finishPlan(entries, { sync: true, uploadFolders: [join(night, ".up")] });
      const { results, byIndex } = await run(
        ["env", `PATH=${bin}`, ...shell],
        buildScript("finish", finishLines(plan)),
        dir,
      );
      assert.deepEqual([...byIndex], [[0, "not-flushed"]], shell[0]);
      assert.match(
        results.find((result) => result.word === "flush-failed")?.detail ?? "",
        /^sync: not found on the PATH of this login: install it there \(coreutils\), or set remote_sync: false$/,
        shell[0],
      );
      assert.deepEqual(await listFiles(night), [], `${shell[0]}: nothing renamed`);
      await Deno.remove(night, { recursive: true });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finish writes nothing outside the destination: a full temporary folder on the server changes nothing, even with no upload folder to hold its work files", async () => {
  await inEachShell("itx-finish-tmp-", async (shell, dir, where) => {
    // TMPDIR on a file system with no inode left: nothing can be made there.
    await withTmpfs(join(dir, "tmp"), "1m", async (tmp) => {
      // The batch's one upload folder holds an interrupted copy kept to be continued, so it is
      // not removed: the work files have no place, and the copies are checked one by one.
      const night = join(dir, "night");
      const entries = [
        await uploadedCopy(1, night, "a.fits", "data a"),
        await uploadedCopy(2, night, "b.fits", "data b"),
        await uploadedCopy(3, night, "c.fits", "data X", "data c"),
      ];
      await Deno.writeTextFile(join(night, ".up", "part.fits"), "half");
      const plan = finishPlan(entries, {
        keptCopies: [{ index: 0, tempPath: join(night, ".up", "part.fits") }],
        // (Results by index: the kept copy's and its folder's share 0; the folder's is last.)
        keptFolders: [join(night, ".up")],
      });
      const { results, byIndex } = await run(
        ["env", `TMPDIR=${tmp}`, ...shell],
        buildScript("finish", finishLines(plan)),
        dir,
      );
      assert.deepEqual([...byIndex].sort(), [
        [0, "folder-left"],
        [1, "renamed"],
        [2, "renamed"],
        [3, "checksum-differs"],
      ], where);
      assert.ok(results.some((r) => r.word === "kept" && r.detail === "0"), where);
      assert.deepEqual(
        await listFiles(night),
        [".up/part.fits", "a.fits", "b.fits"],
        `${where}: only the kept copy is left in its upload folder`,
      );
      assert.equal(await Deno.readTextFile(join(night, "b.fits")), "data b", where);
      assert.deepEqual([...Deno.readDirSync(tmp)], [], where);
    }, { inodes: 1 });
  });
});

Deno.test("finish completes its renames and removes the upload folder when nobody reads its results", async () => {
  await inEachShell("itx-finish-unread-", async (shell, dir, where) => {
    const up = ".up";
    const upload = join(dir, up);
    await Deno.mkdir(upload);
    const names = ["a.fits", "b.fits", "c.fits"];
    for (const name of names) await Deno.writeTextFile(join(upload, name), `data ${name}`);
    const plan = finishPlan(names.map((name, i) => entry(i, dir, up, name, `data ${name}`)), {
      uploadFolders: [upload],
    });
    // As when the daemon is killed mid-call: its end of the results pipe is closed before
    // the script writes its first result line.
    const child = new Deno.Command(shell[0], {
      args: shell.slice(1),
      cwd: dir,
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    await child.stdout.cancel();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(buildScript("finish", finishLines(plan)).text));
    await writer.close();
    await child.status;
    for (const name of names) {
      assert.equal(await Deno.readTextFile(join(dir, name)), `data ${name}`, `${where}: ${name}`);
    }
    assert.equal(await exists(upload), false, `${where}: the upload folder is gone`);
  });
});

Deno.test("the streamed command reads exactly its script, however the bytes arrive, and leaves the rest as its input", async () => {
  const command = STREAMED_SCRIPT_COMMAND[2].slice(1, -1);
  const dir = await Deno.makeTempDir({ prefix: "itx-streamed-" });
  try {
    for (const shell of [["dash"], ["bash", "--posix"]]) {
      for (const padding of [0, 5_000, 200_000]) {
        const where = `${shell[0]}, ${padding} bytes of padding`;
        // Longer than a pipe holds (several reads), hostile words, trailing line breaks.
        const lines = HOSTILE.map((value) => `printf '%s|' ${posixWord(value)}`);
        const script = `# ${"x".repeat(padding)}\n${lines.join("\n")}\nwc -c\n\n\n`;
        const text = new TextEncoder().encode(script);
        const rest = crypto.getRandomValues(new Uint8Array(50_000));
        const input = new Uint8Array([...new TextEncoder().encode(`${text.length}\n`), ...text]);
        const child = new Deno.Command(shell[0], {
          args: [...shell.slice(1), "-c", command],
          cwd: dir,
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const writer = child.stdin.getWriter();
        // In pieces that cut the length line, the script and the rest anywhere.
        const whole = new Uint8Array([...input, ...rest]);
        for (let at = 0; at < whole.length; at += 7_777) {
          await writer.write(whole.subarray(at, at + 7_777));
          if (at % 3 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
        }
        await writer.close();
        const out = await child.output();
        assert.ok(out.success, `${where}: ${new TextDecoder().decode(out.stderr)}`);
        assert.equal(
          new TextDecoder().decode(out.stdout),
          `${HOSTILE.join("|")}|${rest.length}\n`,
          where,
        );
        assert.deepEqual([...Deno.readDirSync(dir)], [], `${where}: no word ran as a command`);
      }
      // The input ends inside the script: nothing of it runs.
      const cut = new Deno.Command(shell[0], {
        args: [...shell.slice(1), "-c", command],
        cwd: dir,
        stdin: "piped",
        stdout: "piped",
      }).spawn();
      const writer = cut.stdin.getWriter();
      await writer.write(new TextEncoder().encode("100\ntouch CANARY\n"));
      await writer.close();
      const out = await cut.output();
      assert.equal(out.code, 0, shell[0]);
      assert.deepEqual([...Deno.readDirSync(dir)], [], `${shell[0]}: a cut script never runs`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
