/**
 * Sends one item (or, with `part`, the part of a growing file) with a fresh
 * transport in a process of its own and prints, as JSON, the outcome's error,
 * the part (for `part`), the log messages, and `written`: the bytes this
 * process wrote while sending (`wchar` of `/proc/self/io`). Tests run in
 * parallel in one process, so only a process of its own measures one copy.
 *
 * Usage: `deno run --allow-all tests/helpers/send_measured.ts <request.json>`
 * where the request is `{ job, runtimeDir, item, part? }`.
 */
import { createTransport } from "../../src/transfer/transport.ts";
import { captureLogs } from "./log_capture.ts";

async function bytesWritten(): Promise<number> {
  const io = await Deno.readTextFile("/proc/self/io");
  return Number(io.match(/^wchar: (\d+)$/m)![1]);
}

const { job, runtimeDir, item, part } = JSON.parse(await Deno.readTextFile(Deno.args[0]));
const logs = await captureLogs();
const transport = createTransport(job, runtimeDir);
const never = new AbortController().signal;
const before = await bytesWritten();
const result = part
  ? { error: null, part: await transport.sendPart!(item, never) }
  : { error: (await transport.send([item], never))[0].error?.message ?? null, part: null };
const written = (await bytesWritten()) - before;
await transport.close();
const messages = logs.records.map((record) => String(record.rawMessage));
console.log(JSON.stringify({ ...result, written, messages }));
