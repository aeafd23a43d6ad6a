/**
 * Times in `/api/status` and `status --json` are whole milliseconds since the epoch (and
 * durations whole milliseconds), never `1796115959015.3467`: a real `local` daemon sends one
 * file and holds another waiting for its retry (its night folder's place taken by a file).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { LEAST_CEILING_MS, randomBytes, waitFor } from "../../helpers/files.ts";
import { getJson, startStatusDaemon } from "../../helpers/status.ts";

interface Status {
  jobs: Array<{ oldestWaitingSince: number | null; sent: number; queue: { waiting: number } }>;
}

/** Every number under a key that says a time or a duration in ms, with its path, not whole. */
function fractional(value: unknown, path = ""): string[] {
  if (Array.isArray(value)) return value.flatMap((item, i) => fractional(item, `${path}[${i}]`));
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([key, item]) =>
    typeof item === "number" && /(At|Since|Ms|^now|^at|^minute)$/.test(key) &&
      !Number.isInteger(item)
      ? [`${path}.${key}: ${item}`]
      : fractional(item, `${path}.${key}`)
  );
}

Deno.test("/api/status and status --json: times and durations are whole milliseconds", async () => {
  await using d = await startStatusDaemon({ retry_attempts: 3, retry_delay_seconds: 600 });
  await Deno.mkdir(d.dest);
  await Deno.writeTextFile(join(d.dest, "20240315"), "in the way");
  const sent = join(d.watch, "sent.fits"), blocked = join(d.watch, "blocked.fits");
  await Deno.writeFile(sent, randomBytes(3000));
  await Deno.utime(sent, new Date("2024-03-16T20:00:00Z"), new Date("2024-03-16T20:00:00Z"));
  await Deno.writeFile(blocked, randomBytes(3000));
  await Deno.utime(blocked, new Date("2024-03-15T20:00:00Z"), new Date("2024-03-15T20:00:00Z"));
  let status: Status | undefined;
  await waitFor(
    async () => {
      status = await getJson<Status>(d.base, "/api/status");
      const [job] = status.jobs;
      return job.sent === 1 && job.queue.waiting === 1 && job.oldestWaitingSince !== null;
    },
    LEAST_CEILING_MS,
    "one file sent and one waiting for its retry",
  );
  assert.deepEqual(fractional(status), [], JSON.stringify(status));
  const json = await runCli(["status", "--json", "-c", d.config], { env: { HOME: d.root } });
  assert.equal(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout);
  assert.ok(report.live?.jobs?.[0]?.oldestWaitingSince, json.stdout);
  assert.deepEqual(fractional(report), [], json.stdout);
});
