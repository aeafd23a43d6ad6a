/**
 * Small file helpers for tests: random content, recursive listings, polling.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";

/** `size` random bytes (any size; crypto.getRandomValues caps at 64 KiB per call). */
export function randomBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) {
    crypto.getRandomValues(out.subarray(offset, Math.min(size, offset + 65536)));
  }
  return out;
}

/**
 * The entries of `root/prefix`. A folder below `root` that disappears while it is listed (a
 * temporary upload folder the daemon removes meanwhile) counts as empty; a missing `root` throws.
 */
async function entriesOf(root: string, prefix: string): Promise<Deno.DirEntry[]> {
  const out: Deno.DirEntry[] = [];
  try {
    for await (const entry of Deno.readDir(join(root, prefix))) out.push(entry);
  } catch (error) {
    if (prefix === "" || !(error instanceof Deno.errors.NotFound)) throw error;
  }
  return out;
}

/** Whether anything (a file, a folder, a link, even one that leads nowhere) is at `path`. */
export function exists(path: string): Promise<boolean> {
  return Deno.lstat(path).then(() => true, () => false);
}

/** {@linkcode exists}, synchronously. */
export function existsSync(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Write `bytes` as `name` in `outside` with `mtime` (the night a camera's clock says), then move
 * it whole into `watch`; the bytes, for comparing with the copy.
 */
export async function dropDated(
  outside: string,
  watch: string,
  name: string,
  bytes: Uint8Array,
  mtime: Date,
): Promise<Uint8Array> {
  await Deno.writeFile(join(outside, name), bytes);
  await Deno.utime(join(outside, name), mtime, mtime);
  await Deno.rename(join(outside, name), join(watch, name));
  return bytes;
}

/** Every file below `root`, as sorted `/`-separated relative paths (hidden ones included). */
export async function listFiles(root: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await entriesOf(root, prefix)) {
    const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory) out.push(...await listFiles(root, rel));
    else out.push(rel);
  }
  return out.sort();
}

/**
 * The files below `root` under final names, as {@linkcode listFiles} gives them: none with a
 * hidden segment (a copy on its way is a hidden temporary file).
 */
export async function listArrived(root: string): Promise<string[]> {
  return (await listFiles(root)).filter((rel) => !rel.split("/").some((s) => s.startsWith(".")));
}

/**
 * Write a file of `size` random bytes at each of `rels` below `root` (folders made as needed);
 * their bytes by relative path.
 */
export async function writeRandomFiles(
  root: string,
  rels: string[],
  size: number,
): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (const rel of rels) {
    files.set(rel, randomBytes(size));
    await Deno.mkdir(dirname(join(root, rel)), { recursive: true });
    await Deno.writeFile(join(root, rel), files.get(rel)!);
  }
  return files;
}

/**
 * Assert that each file below `dest` under a final name ({@linkcode listArrived}) is one of
 * `files` (keyed by their path below the night folder) byte for byte. With `complete`, every file
 * below `dest` is checked, hidden ones too, and there must be as many as `files`: all arrived and
 * nothing else is left (no temporary copy, no upload folder).
 */
export async function assertCopiesIntact(
  dest: string,
  files: Map<string, Uint8Array>,
  complete = false,
): Promise<void> {
  const listed = complete ? await listFiles(dest) : await listArrived(dest);
  for (const rel of listed) {
    const source = rel.slice(rel.indexOf("/") + 1);
    assert.ok(files.has(source), `unexpected file ${rel}`);
    assert.deepEqual(await Deno.readFile(join(dest, rel)), files.get(source), `bytes of ${rel}`);
  }
  if (complete) assert.equal(listed.length, files.size, `not one file each:\n${listed.join("\n")}`);
}

/** Every folder under `root` (relative, "/" separators), sorted; empty ones too. */
export async function listFolders(root: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await entriesOf(root, prefix)) {
    if (!entry.isDirectory) continue;
    const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    out.push(rel, ...await listFolders(root, rel));
  }
  return out.sort();
}

/** SHA-256 (hex) of `bytes`; independent of the product's own hashing code. */
export function sha256Of(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** SHA-256 (hex) of a file, streamed; independent of the product's own hashing code. */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buffer = new Uint8Array(1 << 20);
  for (let n = await file.read(buffer); n !== null; n = await file.read(buffer)) {
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}

/**
 * The least time any wait for an event allows: tests run side by side on
 * machines that may be busy, and a ceiling only bounds how long a failing
 * test takes, so a smaller one asked for is raised to this.
 */
export const LEAST_CEILING_MS = 60_000;

/** A ceiling of `timeoutMs`, at least {@linkcode LEAST_CEILING_MS}. */
export function ceilingMs(timeoutMs: number): number {
  return Math.max(timeoutMs, LEAST_CEILING_MS);
}

/**
 * Poll `condition` every 50 ms until it holds; throw after `timeoutMs` (at
 * least {@linkcode LEAST_CEILING_MS}).
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = LEAST_CEILING_MS,
  what = "condition",
): Promise<void> {
  const ceiling = ceilingMs(timeoutMs);
  const deadline = Date.now() + ceiling;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${ceiling} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * `promise`'s value; throw if it has not settled after `timeoutMs` (at least
 * {@linkcode LEAST_CEILING_MS}).
 */
export async function within<T>(
  promise: Promise<T>,
  timeoutMs = LEAST_CEILING_MS,
  what = "promise",
): Promise<T> {
  const ceiling = ceilingMs(timeoutMs);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) =>
        timer = setTimeout(
          () => reject(new Error(`Timed out after ${ceiling} ms waiting for ${what}`)),
          ceiling,
        )
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Write a config file from key/value pairs. Values are written as JSON, which
 * is valid YAML and keeps hostile paths intact.
 */
export async function writeConfig(path: string, fields: Record<string, unknown>): Promise<void> {
  // Tests run daemons side by side: no status page unless a test asks for one.
  const lines = Object.entries({ status_listen: "", ...fields }).map(([key, value]) =>
    `${key}: ${JSON.stringify(value)}`
  );
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
}

/** Run `fn` with a fresh temporary folder, removed (with what it holds) afterwards. */
export async function withTempDir<T>(
  fn: (dir: string) => Promise<T>,
  prefix = "itx-test-",
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Make below `root` 25 nested folders of 200-byte names, a path past PATH_MAX (only steps made
 * relative to the folder before can make it), and write `file` in the deepest; its path. Remove
 * `root` with {@linkcode removeDeepTree}.
 */
export async function treePastPathMax(root: string, file: string): Promise<string> {
  const names = Array.from({ length: 25 }, (_, i) => `${i}`.padStart(200, "0"));
  // Made by a process of its own: a change of folder here would move every test running beside
  // this one (test files run in one process), whose programs would start in this tree.
  const steps = "const [file, ...names] = Deno.args; " +
    "for (const name of names) { Deno.mkdirSync(name); Deno.chdir(name); } " +
    "Deno.writeTextFileSync(file, file);";
  const made = await new Deno.Command(Deno.execPath(), {
    args: ["eval", steps, file, ...names],
    cwd: root,
    stderr: "piped",
  }).output();
  if (!made.success) throw new Error(new TextDecoder().decode(made.stderr));
  return join(root, ...names);
}

/** Remove `root` and a tree deeper than a path may be (`rm -rf` goes from inside out). */
export async function removeDeepTree(root: string): Promise<void> {
  await new Deno.Command("rm", { args: ["-rf", root] }).output();
}
