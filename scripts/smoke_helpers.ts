/**
 * Helpers shared by the smoke test's steps (`scripts/smoke.ts`,
 * `scripts/smoke_service.ts`): running the product, real FITS files, configs.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** What a run of the product printed. */
export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** The smoke test's options. */
export interface SmokeOptions {
  /** The product's command line, before its own arguments. */
  product: string[];
  /** Also install the service for real. */
  service: boolean;
  /** `--version` must name this commit. */
  expectCommit?: string;
  /** `--version` must name this target (default: the one running the smoke test). */
  expectTarget?: string;
}

const FIXTURES = fileURLToPath(new URL("../tests/fixtures/fits/", import.meta.url));

/** A night with a fixed date: files with this mtime belong in `20240315/` (UTC). */
export const NIGHT = new Date("2024-03-15T22:30:00Z");

/** Fail the smoke test with `message`. */
export function fail(message: string): never {
  throw new Error(message);
}

/** Run the product with `args` (and `prefix`, e.g. `sudo -n`) and capture its output. */
export async function product(
  options: SmokeOptions,
  args: string[],
  prefix: string[] = [],
): Promise<Output> {
  const argv = [...prefix, ...options.product, ...args];
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** Require exit code `code`, else fail with everything the product printed. */
export function expectCode(out: Output, code: number, what: string): void {
  if (out.code !== code) {
    fail(`${what}: exit code ${out.code}, expected ${code}\n${out.stdout}\n${out.stderr}`);
  }
}

/** Write a config file; values as JSON, which is valid YAML and keeps any path intact. */
export async function writeConfig(path: string, fields: Record<string, unknown>): Promise<void> {
  const lines = Object.entries(fields).map(([key, value]) => `${key}: ${JSON.stringify(value)}`);
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
}

/** Copy a real FITS fixture to `path`, dated in {@linkcode NIGHT}; return its bytes. */
export async function placeFits(fixture: string, path: string): Promise<Uint8Array> {
  const bytes = await Deno.readFile(join(FIXTURES, fixture));
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeFile(path, bytes);
  await Deno.utime(path, NIGHT, NIGHT);
  return bytes;
}

/** Whether the file at `path` holds exactly `bytes`. */
export async function sameBytes(path: string, bytes: Uint8Array): Promise<boolean> {
  try {
    const found = await Deno.readFile(path);
    return found.length === bytes.length && found.every((byte, i) => byte === bytes[i]);
  } catch {
    return false;
  }
}
