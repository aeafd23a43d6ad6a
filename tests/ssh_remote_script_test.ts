/**
 * The remote scripts (folder creation, verify + rename) and shellQuote, run
 * for real under dash and bash in POSIX mode (the remote `sh` of most hosts).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { buildMkdirScript } from "../src/transfer/remote_folders.ts";
import { buildFollowScript } from "../src/transfer/remote_follow.ts";
import { buildFinishScript, newMarker, parseScriptOutput } from "../src/transfer/remote_verify.ts";
import { shellQuote } from "../src/transfer/ssh.ts";

/** A PATH with the tools the scripts use but without perl, to exercise the mv fallback. */
const NO_PERL_BIN = await Deno.makeTempDir({ prefix: "itx-noperl-" });
const TOOLS = [
  "mv",
  "rm",
  "stat",
  "mktemp",
  "cat",
  "tr",
  "mkdir",
  "sha256sum",
  "dd",
  "sleep",
  "sync",
  "chmod",
  "touch",
  "df",
  "awk",
];
for (const tool of TOOLS) {
  await Deno.symlink(`/usr/bin/${tool}`, join(NO_PERL_BIN, tool)).catch(() =>
    Deno.symlink(`/bin/${tool}`, join(NO_PERL_BIN, tool))
  );
}
globalThis.addEventListener("unload", () => Deno.removeSync(NO_PERL_BIN, { recursive: true }));

const SHELLS = [
  ["dash", "-s"],
  ["bash", "--posix", "-s"],
  ["env", `PATH=${NO_PERL_BIN}`, "/bin/dash", "-s"],
];

/** Run `fn` once per shell of {@linkcode SHELLS}, each time in a fresh folder (removed after). */
async function inEachShell(
  prefix: string,
  fn: (shell: string[], dir: string) => Promise<void>,
): Promise<void> {
  for (const shell of SHELLS) {
    const dir = await Deno.makeTempDir({ prefix });
    try {
      await fn(shell, dir);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
}

/** Start `script` under `shell` in `cwd`, fed on stdin (closed after it). */
function startShell(shell: string[], script: string, cwd: string) {
  const child = new Deno.Command(shell[0], {
    args: shell.slice(1),
    cwd,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  void writer.write(new TextEncoder().encode(script)).then(() => writer.close());
  return child;
}

/** Run `script` under `shell` in `cwd` to a successful end; returns its stdout. */
async function runShell(shell: string[], script: string, cwd: string): Promise<string> {
  const out = await startShell(shell, script, cwd).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
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
  "ITX000000 K 0",
  "'",
  "''",
  "",
];

Deno.test("shellQuote keeps every string byte-exact in dash and bash", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-quote-" });
  try {
    for (const shell of SHELLS) {
      for (const value of HOSTILE) {
        const out = await runShell(shell, `printf '%s' ${shellQuote(value)}`, dir);
        assert.equal(out, value, `${shell[0]}: ${JSON.stringify(value)}`);
      }
      assert.deepEqual([...Deno.readDirSync(dir)], [], "no command ran");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

Deno.test("mkdir script creates hostile folders and upload folders, and reports the ones it cannot", async () => {
  await inEachShell("itx-mkdir-", async (shell, dir) => {
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
    const specs = folders.map((folder) => ({
      folder,
      upload: join(folder, ".up 'x'"),
      sweepPrefix: null,
    }));
    const marker = newMarker();
    const report = parseScriptOutput(
      await runShell(shell, buildMkdirScript(base, specs, marker), dir),
      marker,
    );
    for (const i of [0, 1, 3, 4]) {
      const info = await Deno.lstat(specs[i].upload);
      assert.ok(info.isDirectory, specs[i].upload);
      assert.equal(info.mode! & 0o777, 0o700, "nobody else can put anything in it");
    }
    assert.deepEqual([...report.folderErrors.keys()], [2]);
    assert.match(report.folderErrors.get(2)!, /Not a directory/);
    assert.equal(await exists(join(dir, "CANARY")), false);
  });
});

Deno.test("mkdir script: an existing upload folder name or a link on the way fails, nothing written through it", async () => {
  await inEachShell("itx-mkdir-links-", async (shell, dir) => {
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
    const specs = [
      {
        folder: join(base, "linked", "sub"),
        upload: join(base, "linked", "sub", ".up"),
        sweepPrefix: null,
      },
      { folder: join(base, "night"), upload: join(base, "night", ".up-1"), sweepPrefix: null },
      { folder: join(base, "night"), upload: join(base, "night", ".up-2"), sweepPrefix: null },
      { folder: join(base, "night"), upload: join(base, "night", ".up-3"), sweepPrefix: null },
    ];
    const marker = newMarker();
    const report = parseScriptOutput(
      await runShell(shell, buildMkdirScript(base, specs, marker), dir),
      marker,
    );
    assert.deepEqual([...report.folderLinks], [0]);
    assert.deepEqual([...report.folderErrors.keys()], [1, 2, 3]);
    for (const message of report.folderErrors.values()) assert.match(message, /File exists/);
    assert.deepEqual([...Deno.readDirSync(elsewhere)], [], "nothing was created through a link");
  });
});

Deno.test("mkdir script sweeps this daemon's leftover upload folders and nothing else", async () => {
  await inEachShell("itx-sweep-", async (shell, dir) => {
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
    const marker = newMarker();
    const upload = join(night, ".incoming-abc-3.image-transfer-partial");
    const script = buildMkdirScript(
      dir,
      [{ folder: night, upload, sweepPrefix: ".incoming-abc-" }],
      marker,
    );
    const report = parseScriptOutput(await runShell(shell, script, dir), marker);
    assert.deepEqual([...report.folderErrors.keys()], []);
    assert.deepEqual(
      [...Deno.readDirSync(night)].map((e) => e.name).sort(),
      [...others, ".incoming-abc-3.image-transfer-partial"].sort(),
    );
    assert.equal(
      await Deno.readTextFile(join(victim, "keep")),
      "x",
      "a link is removed, not followed",
    );
    assert.equal(await exists(join(dir, "CANARY")), false);
  });
});

Deno.test("finish script renames out of an upload folder, then removes the folder", async () => {
  await inEachShell("itx-upfolder-", async (shell, dir) => {
    const upload = join(dir, ".incoming 'x'");
    await Deno.mkdir(upload);
    await Deno.writeTextFile(join(upload, "a b.fits"), "data a");
    await Deno.writeTextFile(join(upload, "junk"), "left by an orphan");
    const marker = newMarker();
    const out = await runShell(
      shell,
      buildFinishScript(
        [{
          index: 0,
          tempPath: join(upload, "a b.fits"),
          finalPath: join(dir, "a b.fits"),
          expectedSize: 6,
          expectedSha256: null,
        }],
        marker,
        { removeFolders: [upload] },
      ),
      dir,
    );
    assert.deepEqual([...parseScriptOutput(out, marker).results], [[0, { status: "ok" }]]);
    assert.equal(await Deno.readTextFile(join(dir, "a b.fits")), "data a");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a b.fits"]);
  });
});

Deno.test("finish script verifies size and SHA-256, renames, removes bad copies", async () => {
  const sha = (text: string) => createHash("sha256").update(text).digest("hex");
  await inEachShell("itx-finish-", async (shell, dir) => {
    const names = [
      "ok $(touch CANARY)",
      "short",
      "bad-sum",
      "missing",
      "is-folder",
      "rm-only",
      "new\nline -n",
    ];
    for (const name of names) await Deno.writeTextFile(join(dir, `.${name}.tmp`), `data ${name}`);
    await Deno.writeTextFile(join(dir, ".short.tmp"), "da");
    await Deno.remove(join(dir, ".missing.tmp"));
    await Deno.mkdir(join(dir, "is-folder"));
    await Deno.writeTextFile(join(dir, "ok $(touch CANARY)"), "old final");
    const entry = (index: number, name: string, checksum: boolean) => ({
      index,
      tempPath: join(dir, `.${name}.tmp`),
      finalPath: name === "rm-only" ? null : join(dir, name),
      expectedSize: `data ${name}`.length,
      expectedSha256: checksum ? sha(`data ${name}`) : null,
    });
    const entries = names.map((name, i) => entry(i, name, true));
    entries[2].expectedSha256 = sha("something else");
    const marker = newMarker();
    const out = await runShell(shell, buildFinishScript(entries, marker), dir);
    const { results } = parseScriptOutput(out, marker);
    assert.deepEqual(results.get(0), { status: "ok" });
    assert.deepEqual(results.get(1), { status: "size-mismatch", actual: "2" });
    assert.equal(results.get(2)?.status, "checksum-mismatch");
    assert.deepEqual(results.get(3), { status: "missing" });
    assert.deepEqual(results.get(4), { status: "final-is-folder" });
    assert.equal(results.has(5), false);
    assert.deepEqual(results.get(6), { status: "ok" });
    assert.equal(
      await Deno.readTextFile(join(dir, "ok $(touch CANARY)")),
      "data ok $(touch CANARY)",
    );
    assert.equal(await Deno.readTextFile(join(dir, "new\nline -n")), "data new\nline -n");
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    // Bad copies and the remove-only temp are gone; the folder's temp is kept for the next try.
    assert.deepEqual(left, [".is-folder.tmp", "is-folder", "new\nline -n", "ok $(touch CANARY)"]);
  });
});

Deno.test("finish script with size checks only and no checks at all", async () => {
  await inEachShell("itx-finish-", async (shell, dir) => {
    await Deno.writeTextFile(join(dir, ".a.tmp"), "12345");
    await Deno.writeTextFile(join(dir, ".b.tmp"), "123");
    const marker = newMarker();
    const script = buildFinishScript([
      {
        index: 0,
        tempPath: join(dir, ".a.tmp"),
        finalPath: join(dir, "a"),
        expectedSize: 5,
        expectedSha256: null,
      },
      {
        index: 1,
        tempPath: join(dir, ".gone.tmp"),
        finalPath: join(dir, "gone"),
        expectedSize: 1,
        expectedSha256: null,
      },
      {
        index: 2,
        tempPath: join(dir, ".b.tmp"),
        finalPath: join(dir, "b"),
        expectedSize: null,
        expectedSha256: null,
      },
    ], marker);
    const { results } = parseScriptOutput(await runShell(shell, script, dir), marker);
    assert.deepEqual([...results.entries()].sort(), [
      [0, { status: "ok" }],
      [1, { status: "missing" }],
      [2, { status: "ok" }],
    ]);
    assert.equal(await Deno.readTextFile(join(dir, "a")), "12345");
    assert.equal(await Deno.readTextFile(join(dir, "b")), "123");
  });
});

Deno.test("finish script gives each copy its mode and mtime, and replaces a link under the final name", async () => {
  await inEachShell("itx-finish-meta-", async (shell, dir) => {
    const victim = join(dir, "victim");
    await Deno.writeTextFile(victim, "keep me");
    await Deno.chmod(victim, 0o600);
    const upload = join(dir, ".up");
    await Deno.mkdir(upload);
    const mtimeMs = Date.UTC(2024, 2, 15, 1, 2, 3, 456);
    const cases = [
      { name: "private $(touch CANARY).fits", permissions: 0o600 },
      { name: "public.fits", permissions: 0o644 },
      { name: "tool.fits", permissions: 0o755 },
    ];
    for (const { name } of cases) await Deno.writeTextFile(join(upload, name), `data ${name}`);
    // Someone planted a link under a final name: the rename replaces the link.
    await Deno.symlink(victim, join(dir, "public.fits"));
    // A copy that is a link is never delivered.
    await Deno.symlink(victim, join(upload, "link.fits"));
    const entries = [...cases, { name: "link.fits", permissions: 0o644 }].map((c, index) => ({
      index,
      tempPath: join(upload, c.name),
      finalPath: join(dir, c.name),
      expectedSize: c.name === "link.fits" ? null : `data ${c.name}`.length,
      expectedSha256: c.name === "tool.fits"
        ? createHash("sha256").update(`data ${c.name}`).digest("hex")
        : null,
      permissions: c.permissions,
      times: { atimeMs: mtimeMs, mtimeMs },
    }));
    const marker = newMarker();
    const out = await runShell(
      shell,
      buildFinishScript(entries, marker, { removeFolders: [upload] }),
      dir,
    );
    const { results } = parseScriptOutput(out, marker);
    for (const [index, c] of cases.entries()) {
      assert.deepEqual(results.get(index), { status: "ok" }, `${shell.join(" ")}: ${c.name}`);
      const info = await Deno.lstat(join(dir, c.name));
      assert.ok(info.isFile, c.name);
      assert.equal(info.mode! & 0o777, c.permissions, `${shell.join(" ")}: mode of ${c.name}`);
      const arrived = info.mtime!.getTime();
      assert.ok(Math.abs(arrived - mtimeMs) < 1000, `${shell.join(" ")}: mtime of ${c.name}`);
      assert.equal(await Deno.readTextFile(join(dir, c.name)), `data ${c.name}`);
    }
    assert.deepEqual(results.get(3), { status: "missing" });
    assert.equal(await exists(join(dir, "link.fits")), false);
    assert.equal(await Deno.readTextFile(victim), "keep me");
    assert.equal((await Deno.stat(victim)).mode! & 0o777, 0o600);
    assert.equal(await exists(join(dir, "CANARY")), false);
  });
});

Deno.test("finish script hashes copies in hostile folders by batch, and cannot be fooled by a planted name", async () => {
  const sha = (text: string) => createHash("sha256").update(text).digest("hex");
  await inEachShell("itx-finish-hash-", async (shell, dir) => {
    const folders = [join(dir, "up 'a'\nx"), join(dir, "up $(touch CANARY) \\")];
    for (const folder of folders) await Deno.mkdir(folder);
    const copies = [
      { folder: 0, name: "good $(x).fits", data: "good 0", expected: "good 0" },
      { folder: 0, name: "bad\nname.fits", data: "bad 1", expected: "something else" },
      { folder: 1, name: "-n.fits", data: "good 2", expected: "good 2" },
      // A file planted under the name the hashing step renames to, holding the expected bytes.
      { folder: 1, name: "forged.fits", data: "wrong 3", expected: "right 3" },
    ];
    await Deno.writeTextFile(join(folders[1], ".h3"), "right 3");
    const entries = copies.map((c, index) => ({
      index,
      tempPath: join(folders[c.folder], c.name),
      finalPath: join(dir, c.name),
      expectedSize: c.data.length,
      expectedSha256: sha(c.expected),
    }));
    for (const [i, c] of copies.entries()) await Deno.writeTextFile(entries[i].tempPath, c.data);
    const marker = newMarker();
    const out = await runShell(shell, buildFinishScript(entries, marker), dir);
    const { results } = parseScriptOutput(out, marker);
    const where = shell.join(" ");
    assert.deepEqual(results.get(0), { status: "ok" }, where);
    assert.equal(results.get(1)?.status, "checksum-mismatch", where);
    assert.deepEqual(results.get(2), { status: "ok" }, where);
    assert.equal(results.get(3)?.status, "checksum-mismatch", where);
    assert.equal(await Deno.readTextFile(join(dir, "good $(x).fits")), "good 0");
    assert.equal(await Deno.readTextFile(join(dir, "-n.fits")), "good 2");
    for (const name of ["bad\nname.fits", "forged.fits"]) {
      assert.equal(await exists(join(dir, name)), false, `${where}: ${name}`);
    }
    assert.deepEqual([...Deno.readDirSync(folders[0])], [], `${where}: bad copies removed`);
    assert.deepEqual([...Deno.readDirSync(folders[1])].map((e) => e.name), [".h3"]);
    assert.equal(await exists(join(dir, "CANARY")), false);
  });
});

Deno.test("finish script reports the room left in the folders asked about", async () => {
  await inEachShell("itx-finish-space-", async (shell, dir) => {
    const marker = newMarker();
    const script = buildFinishScript([], marker, { spaceFolders: [join(dir, "it's"), dir] });
    await Deno.mkdir(join(dir, "it's"));
    const { availableKiB } = parseScriptOutput(await runShell(shell, script, dir), marker);
    assert.deepEqual([...availableKiB.keys()], [0, 1]);
    assert.ok(availableKiB.get(1)! > 0);
  });
});

Deno.test("result lines need the run's marker: names cannot forge a result", () => {
  const marker = newMarker();
  const out =
    `ITX000000 K 0\n${marker} S 1 10\nnoise from .bashrc\n${marker} R 2 mv: cannot move\n`;
  const { results } = parseScriptOutput(out, marker);
  assert.equal(results.has(0), false);
  assert.deepEqual(results.get(1), { status: "size-mismatch", actual: "10" });
  assert.deepEqual(results.get(2), { status: "rename-failed", message: "mv: cannot move" });
});

/** Write `data` to `path` in `parts` pieces with a pause between them, like an upload. */
async function writeSlowly(path: string, data: Uint8Array, parts: number, pauseMs: number) {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const step = Math.ceil(data.length / parts);
  for (let offset = 0; offset < data.length; offset += step) {
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
    let chunk = data.subarray(offset, offset + step);
    while (chunk.length > 0) chunk = chunk.subarray(await file.write(chunk));
  }
}

Deno.test("follow script hashes copies while they are written, in order", async () => {
  await inEachShell("itx-follow-", async (shell, dir) => {
    // Sizes that are, and are not, a whole number of 1 MiB blocks.
    const bytesA = new Uint8Array(3 * 1024 * 1024 + 17);
    for (let i = 0; i < bytesA.length; i += 65536) {
      crypto.getRandomValues(bytesA.subarray(i, i + 65536));
    }
    const bytesB = new Uint8Array(2 * 1024 * 1024).fill(7);
    const pathA = join(dir, "new\nline $(touch CANARY)");
    const pathB = join(dir, "-b");
    const marker = newMarker();
    const script = buildFollowScript(
      [{ index: 4, tempPath: pathA, size: bytesA.length }, {
        index: 9,
        tempPath: pathB,
        size: bytesB.length,
      }],
      marker,
      { stallSeconds: 30, hash: true, flush: true },
    );
    const child = startShell(shell, script, dir);
    await writeSlowly(pathA, bytesA, 7, 40);
    await writeSlowly(pathB, bytesB, 3, 40);
    const out = await child.output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const { hashes } = parseScriptOutput(new TextDecoder().decode(out.stdout), marker);
    const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
    assert.deepEqual([...hashes], [[4, sha(bytesA)], [9, sha(bytesB)]]);
    assert.equal(await Deno.lstat(join(dir, "CANARY")).then(() => true, () => false), false);
  });
});

Deno.test("follow script gives up on a copy that stops growing, and reports no hash", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-follow-stall-" });
  try {
    const path = join(dir, "stuck.fits");
    await Deno.writeFile(path, new Uint8Array(1024 * 1024 + 5));
    const marker = newMarker();
    const script = buildFollowScript([{ index: 0, tempPath: path, size: 4 << 20 }], marker, {
      stallSeconds: 1,
      hash: true,
      flush: true,
    });
    const out = await startShell(["dash", "-s"], script, dir).output();
    const report = parseScriptOutput(new TextDecoder().decode(out.stdout), marker);
    assert.equal(report.hashes.size, 0, "a hash of part of the copy must not count");
    assert.match(new TextDecoder().decode(out.stdout), new RegExp(`^${marker} X 0$`, "m"));

    // A copy that cannot be read (here: no dd) is given up the same way.
    const noDd = join(dir, "bin");
    await Deno.mkdir(noDd);
    for (const tool of ["stat", "sleep", "sha256sum"]) {
      await Deno.symlink(`/usr/bin/${tool}`, join(noDd, tool));
    }
    await Deno.writeFile(path, new Uint8Array(4 << 20));
    const second = newMarker();
    const unread = await startShell(
      ["env", `PATH=${noDd}`, "/bin/dash", "-s"],
      buildFollowScript([{ index: 3, tempPath: path, size: 4 << 20 }], second, {
        stallSeconds: 600,
        hash: true,
        flush: false,
      }),
      dir,
    ).output();
    const text = new TextDecoder().decode(unread.stdout);
    assert.equal(parseScriptOutput(text, second).hashes.size, 0, text);
    assert.match(text, new RegExp(`^${second} X 3$`, "m"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("follow script stops when its caller goes away", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-follow-gone-" });
  try {
    const path = join(dir, "never.fits");
    const marker = newMarker();
    const script = buildFollowScript([{ index: 0, tempPath: path, size: 1 << 20 }], marker, {
      stallSeconds: 600,
      hash: false,
      flush: true,
    });
    const child = startShell(["dash", "-s"], script, dir);
    await child.stderr.cancel();
    // Read one poll's line, then close our end: the script's next write fails.
    const reader = child.stdout.getReader();
    await reader.read();
    await reader.cancel();
    const status = await Promise.race([
      child.status,
      new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000)),
    ]);
    assert.notEqual(status, null, "the script ended within 5 s");
    assert.equal(status!.success, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finish script flushes the file system before the renames and after them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sync-" });
  try {
    // A `sync` that records its arguments and whether the final name exists yet.
    const shim = join(dir, "shim");
    await Deno.mkdir(shim);
    await Deno.writeTextFile(
      join(shim, "sync"),
      '#!/bin/sh\n{ printf \'%s|\' "$*"; [ -e "$FINAL" ] && echo final || echo none; } >>"$LOG"\n',
    );
    await Deno.chmod(join(shim, "sync"), 0o755);
    const night = join(dir, "night 'x'");
    for (const withPerl of [true, false]) {
      await Deno.mkdir(night, { recursive: true });
      const temp = join(night, ".a.tmp");
      const final = join(night, "a.fits");
      await Deno.writeTextFile(temp, "12345");
      const log = join(dir, "sync.log");
      const path = withPerl ? `${shim}:/usr/bin:/bin` : `${shim}:${NO_PERL_BIN}`;
      const marker = newMarker();
      const script = buildFinishScript(
        [{ index: 0, tempPath: temp, finalPath: final, expectedSize: 5, expectedSha256: null }],
        marker,
      );
      const out = await runShell(
        ["env", `PATH=${path}`, `LOG=${log}`, `FINAL=${final}`, "/bin/dash", "-s"],
        script,
        dir,
      );
      assert.deepEqual([...parseScriptOutput(out, marker).results], [[0, { status: "ok" }]]);
      assert.deepEqual(
        (await Deno.readTextFile(log)).trim().split("\n"),
        [`-f -- ${night}|none`, `-f -- ${night}|final`],
        withPerl ? "perl renames" : "mv renames",
      );
      await Deno.remove(night, { recursive: true });
      await Deno.remove(log);
    }

    // remote_sync: false flushes nothing.
    await Deno.mkdir(night);
    await Deno.writeTextFile(join(night, ".b.tmp"), "12");
    const log = join(dir, "sync.log");
    const marker = newMarker();
    const out = await runShell(
      ["env", `PATH=${shim}:/usr/bin:/bin`, `LOG=${log}`, `FINAL=x`, "/bin/dash", "-s"],
      buildFinishScript(
        [{
          index: 0,
          tempPath: join(night, ".b.tmp"),
          finalPath: join(night, "b.fits"),
          expectedSize: 2,
          expectedSha256: null,
        }],
        marker,
        { sync: false },
      ),
      dir,
    );
    assert.deepEqual([...parseScriptOutput(out, marker).results], [[0, { status: "ok" }]]);
    assert.equal(await Deno.stat(log).then(() => true, () => false), false, "no flush");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("follow script without hashing flushes a growing copy every 16 MiB, reading nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-follow-flush-" });
  try {
    const shim = join(dir, "shim");
    await Deno.mkdir(shim);
    // `sync` records its arguments; there is no dd, so reading the copy would fail.
    await Deno.writeTextFile(join(shim, "sync"), '#!/bin/sh\necho "$*" >>"$LOG"\n');
    await Deno.chmod(join(shim, "sync"), 0o755);
    for (const tool of ["stat", "sleep"]) {
      await Deno.symlink(`/usr/bin/${tool}`, join(shim, tool));
    }
    const path = join(dir, "big 'x'.fits");
    const log = join(dir, "sync.log");
    const size = 150 * 1024 * 1024;
    for (const flush of [true, false]) {
      await Deno.writeTextFile(log, "");
      const marker = newMarker();
      const child = startShell(
        ["env", `PATH=${shim}`, `LOG=${log}`, "/bin/dash", "-s"],
        buildFollowScript([{ index: 0, tempPath: path, size }], marker, {
          stallSeconds: 30,
          hash: false,
          flush,
        }),
        dir,
      );
      await writeSlowly(path, new Uint8Array(size), 15, 30);
      const out = await child.output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      assert.equal(new TextDecoder().decode(out.stdout).trim(), "", "no result lines");
      const calls = (await Deno.readTextFile(log)).split("\n").filter((line) => line !== "");
      if (!flush) {
        assert.deepEqual(calls, [], "flush: false never flushes");
        continue;
      }
      // 150 MiB in 10 MiB writes: a flush every 16-20 MiB of growth.
      assert.ok(calls.length >= 4 && calls.length <= 10, `flushed ${calls.length} time(s)`);
      for (const call of calls) assert.equal(call, `-f -- ${path}`);
      await Deno.remove(path);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
