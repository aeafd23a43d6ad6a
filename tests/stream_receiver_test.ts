/**
 * The stream receiver (`python3` on the remote side), run here the way ssh runs
 * it: its words joined with spaces and parsed by a POSIX shell, with a real
 * file as standard input.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CommandError } from "../src/errors.ts";
import { runCommand } from "../src/transfer/run_command.ts";
import { parseReceiverOutput, receiverCommand } from "../src/transfer/stream_receiver.ts";
import { randomBytes, sha256OfFile } from "./helpers/files.ts";

/** Run the receiver into `target` with `source` as input, as `sh -c` would from ssh. */
async function receive(
  source: string,
  target: string,
  options: { hash: boolean; sync: boolean },
): Promise<string> {
  const words = receiverCommand(target, "ITXtest", options);
  const { stdout } = await runCommand(["sh", "-c", words.join(" ")], { stdinFile: source });
  return new TextDecoder().decode(stdout);
}

Deno.test("stream receiver writes the input byte-exact under hostile names and hashes it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-receiver-" });
  try {
    const source = join(dir, "source.bin");
    // Over one 4 MiB read buffer and over one 16 MiB flush step.
    await Deno.writeFile(source, randomBytes(17 * 1024 * 1024 + 123));
    const names = ["new\nline $(touch canary) 'q'.fits", '-dash "x" `y` caf\u00e9.fits', "a\\b%c"];
    for (const [i, name] of names.entries()) {
      const target = join(dir, name);
      const stdout = await receive(source, target, { hash: true, sync: i === 0 });
      const report = parseReceiverOutput(stdout, "ITXtest");
      assert.deepEqual(report, {
        bytes: (await Deno.stat(source)).size,
        sha256: await sha256OfFile(source),
      });
      assert.equal(await sha256OfFile(target), report!.sha256);
    }
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort(),
      [
        ...names,
        "source.bin",
      ].sort(),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stream receiver without hashing reports '-'", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-receiver-" });
  try {
    const source = join(dir, "source.bin");
    await Deno.writeFile(source, randomBytes(1000));
    const target = join(dir, "copy.bin");
    const report = parseReceiverOutput(
      await receive(source, target, { hash: false, sync: false }),
      "ITXtest",
    );
    assert.deepEqual(report, { bytes: 1000, sha256: null });
    assert.deepEqual(await Deno.readFile(target), await Deno.readFile(source));
    assert.equal((await Deno.stat(target)).mode! & 0o777, 0o600, "private until renamed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stream receiver never writes over an existing name or through a link", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-receiver-" });
  try {
    const source = join(dir, "source.bin");
    await Deno.writeFile(source, randomBytes(1000));
    const victim = join(dir, "victim");
    await Deno.writeTextFile(victim, "keep me");
    await Deno.symlink(victim, join(dir, "link.bin"));
    await Deno.symlink(join(dir, "absent"), join(dir, "dangling.bin"));
    await Deno.writeTextFile(join(dir, "existing.bin"), "older");
    for (const name of ["link.bin", "dangling.bin", "existing.bin"]) {
      const error = await receive(source, join(dir, name), { hash: true, sync: false })
        .then(() => null, (e) => e);
      assert.ok(error instanceof CommandError, name);
      assert.equal(error.run.stderr, "cannot write the copy: File exists");
    }
    assert.equal(await Deno.readTextFile(victim), "keep me");
    assert.equal(await Deno.readTextFile(join(dir, "existing.bin")), "older");
    assert.equal(await Deno.lstat(join(dir, "absent")).then(() => true, () => false), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stream receiver: a copy it cannot write fails with the system's reason", async () => {
  const error = await receive("/etc/hostname", "/nonexistent-itx/folder/copy", {
    hash: true,
    sync: true,
  }).then(() => null, (e) => e);
  assert.ok(error instanceof CommandError);
  assert.equal(error.run.code, 1);
  assert.equal(error.run.stderr, "cannot write the copy: No such file or directory");
});

Deno.test("stream receiver command: the login shell sees no name, quote or expansion", () => {
  const words = receiverCommand("/x/it's $(rm -rf ~) `id`\n!.fits", "ITXabc", {
    hash: true,
    sync: false,
  });
  assert.deepEqual(words.slice(0, 2), ["python3", "-c"]);
  // The loader is single-quoted and holds nothing csh, fish or sh would expand.
  assert.match(words[2], /^'[A-Za-z0-9 ,.;()\[\]]+'$/);
  for (const word of words.slice(3)) assert.match(word, /^[A-Za-z0-9]+$/);
});

Deno.test("parseReceiverOutput takes only its own marker's well-formed line", () => {
  const hash = "a".repeat(64);
  assert.equal(parseReceiverOutput(`ITXother W 5 ${hash}\n`, "ITXmine"), null);
  assert.equal(parseReceiverOutput(`ITXmine W 5 ${hash.slice(1)}\n`, "ITXmine"), null);
  assert.equal(parseReceiverOutput("login banner\n", "ITXmine"), null);
  assert.deepEqual(parseReceiverOutput(`motd\nITXmine W 5 ${hash}\n`, "ITXmine"), {
    bytes: 5,
    sha256: hash,
  });
  assert.deepEqual(parseReceiverOutput("ITXmine W 0 -\n", "ITXmine"), { bytes: 0, sha256: null });
});
