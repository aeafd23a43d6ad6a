/**
 * `deno task demo`: see image-transfer work in under a minute, on this
 * machine only. Makes a temporary watch folder with three small FITS files,
 * writes a config for the `local` method, runs `image-transfer run --once`
 * with the project's permission set, shows what arrived where, and how to
 * keep it watching (the daemon).
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RUNTIME_FLAGS } from "../src/version.ts";
import { pastedWord } from "../src/shell_words.ts";

const repo = fileURLToPath(new URL("../", import.meta.url));
const root = await Deno.makeTempDir({ prefix: "image-transfer-demo-" });
const watch = join(root, "camera");
const dest = join(root, "server");
await Deno.mkdir(join(watch, "flats"), { recursive: true });

/** A minimal FITS file: one header block with DATE-OBS, then a small data block. */
function fits(dateObs: string, object: string): Uint8Array {
  const cards = [
    "SIMPLE  =                    T",
    "BITPIX  =                   16",
    "NAXIS   =                    2",
    "NAXIS1  =                   16",
    "NAXIS2  =                   16",
    `DATE-OBS= '${dateObs}'`,
    `OBJECT  = '${object}'`,
    "END",
  ].map((c) => c.padEnd(80));
  const header = cards.join("").padEnd(2880);
  const out = new Uint8Array(2880 * 2);
  out.set(new TextEncoder().encode(header));
  return out;
}

await Deno.writeFile(join(watch, "m42 001.fits"), fits("2024-03-15T23:10:00", "M42"));
await Deno.writeFile(join(watch, "m42 002.fits"), fits("2024-03-16T02:45:00", "M42"));
await Deno.writeFile(join(watch, "flats", "flat V.fits"), fits("2024-03-16T10:05:00", "FLAT"));
await Deno.writeTextFile(join(watch, "notes.txt"), "not an image: stays here\n");

const config = join(root, "config.yaml");
await Deno.writeTextFile(
  config,
  [
    `watch_path: ${JSON.stringify(watch)}`,
    `remote_base_path: ${JSON.stringify(dest)}`,
    "transfer_method: local",
    "verify_transfer: checksum",
    "night_date_source: fits      # the night comes from DATE-OBS",
    "night_rollover_hour: 12      # a 02:45 image belongs to the evening before",
    "night_timezone: UTC",
    "stability_window_seconds: 1",
    `state_dir: ${JSON.stringify(join(root, "state"))}`,
    `log_file: ${JSON.stringify(join(root, "image_transfer.log"))}`,
    "",
  ].join("\n"),
);

console.log(`Demo folder: ${root}\n\nConfig (${config}):\n${await Deno.readTextFile(config)}`);
console.log("Running: image-transfer run --once -c config.yaml\n");
const run = await new Deno.Command("deno", {
  args: [
    "run",
    "-q",
    "-P=image-transfer",
    ...RUNTIME_FLAGS,
    "--config",
    join(repo, "deno.json"),
    join(repo, "main.ts"),
  ]
    .concat(["run", "--once", "-c", config]),
  stdout: "inherit",
  stderr: "inherit",
}).output();

console.log("\nWhat arrived at the destination:");
async function show(dir: string, indent: string): Promise<void> {
  const entries = await Array.fromAsync(Deno.readDir(dir));
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    console.log(`${indent}${entry.name}${entry.isDirectory ? "/" : ""}`);
    if (entry.isDirectory) await show(join(dir, entry.name), indent + "  ");
  }
}
await show(dest, "  ");
const c = pastedWord(config);
console.log(`\nThe ledger remembers them: deno task image-transfer status -c ${c}`);
// run --once sent what was there and stopped; the daemon is what a user runs for real.
console.log(
  `Keep it watching (Ctrl-C stops): deno task image-transfer run -c ${c}\n` +
    `  and copy a FITS file into ${pastedWord(watch)}: it arrives under ${pastedWord(dest)}`,
);
console.log(`Remove the demo with: rm -r ${pastedWord(root)}`);
Deno.exitCode = run.code;
