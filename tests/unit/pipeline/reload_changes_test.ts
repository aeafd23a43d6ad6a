/**
 * The reload's lines of what changed (`reloadChanges`), from configs parsed as a config file's
 * are: jobs added, removed and renamed, a key that changed, and a change inside a list of entries
 * (`schedules`) said per entry and key, not as the whole list.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { parseConfig } from "../../../src/config/load.ts";
import { reloadChanges, sameJobSettings } from "../../../src/pipeline/reload_changes.ts";

/** A config of one `local` job `cam1` from `/data/cam1` to `/archive`, with `jobKeys` added to it, `more` above. */
function configOf(jobKeys: string, more = ""): ReturnType<typeof parseConfig> {
  return parseConfig(
    [
      more,
      "jobs:",
      "  - name: cam1",
      "    watch_path: /data/cam1",
      "    remote_base_path: /archive",
      "    transfer_method: local",
      ...jobKeys.split("\n").filter((line) => line !== "").map((line) => `    ${line}`),
    ].join("\n"),
    "/etc/image-transfer/config.yaml",
  );
}

const SCHEDULES = [
  "schedules:",
  '  - { cron: "0 8 * * *", action: pause }',
  '  - { cron: "0 18 * * *", action: resume }',
].join("\n");

Deno.test("reload changes: nothing changed gives no line, and the job's settings are the same", () => {
  const before = configOf(SCHEDULES), after = configOf(SCHEDULES);
  assertEquals(reloadChanges(before, after), []);
  assertEquals(sameJobSettings(before.jobs[0], after.jobs[0]), true);
});

Deno.test("reload changes: a plain key is said with its value before and after", () => {
  const changes = reloadChanges(configOf("retry_attempts: 3"), configOf("retry_attempts: 5"));
  assertEquals(changes, ["job cam1: retry_attempts 3 -> 5"]);
});

Deno.test("reload changes: one schedules entry changed is said by its index and key, not as the whole list", () => {
  const after = SCHEDULES.replace('"0 18 * * *"', '"30 18 * * *"');
  const changes = reloadChanges(configOf(SCHEDULES), configOf(after));
  assertEquals(changes, ['job cam1: schedules[1].cron "0 18 * * *" -> "30 18 * * *"']);
});

Deno.test("reload changes: a schedules entry added or removed is said with the entry", () => {
  const more = `${SCHEDULES}\n  - { every_seconds: 600, action: rescan }`;
  const added = reloadChanges(configOf(SCHEDULES), configOf(more));
  assertEquals(added.length, 1);
  assertEquals(added[0].startsWith("job cam1: schedules[2] added {"), true, added[0]);
  // Said as given, without the keys it leaves empty (before: `"timezone":"",…,"command":[]`).
  assertEquals(
    added[0],
    'job cam1: schedules[2] added {"every_seconds":600,"action":"rescan"}',
  );
  const removed = reloadChanges(configOf(more), configOf(SCHEDULES));
  assertEquals(removed.length, 1);
  assertEquals(removed[0].startsWith("job cam1: schedules[2] removed {"), true, removed[0]);
  const fromNone = reloadChanges(configOf(""), configOf(SCHEDULES));
  assertEquals(fromNone.map((line) => line.replace(/ \{[^}]*\}/g, "")), [
    "job cam1: schedules[0] added, schedules[1] added",
  ]);
});

Deno.test("reload changes: a list of plain values is said whole", () => {
  const changes = reloadChanges(
    configOf('file_patterns: ["*.fits"]'),
    configOf('file_patterns: ["*.fits", "*.fit"]'),
  );
  assertEquals(changes, ['job cam1: file_patterns ["*.fits"] -> ["*.fits","*.fit"]']);
});

Deno.test("reload changes: a job added, one renamed (same folder and destination), a daemon key", () => {
  const before = configOf("", "log_format: text");
  const renamed = parseConfig(
    [
      "log_format: json",
      "jobs:",
      "  - name: north",
      "    watch_path: /data/cam1",
      "    remote_base_path: /archive",
      "    transfer_method: local",
      "  - name: cam2",
      "    watch_path: /data/cam2",
      "    remote_base_path: /archive2",
      "    transfer_method: local",
    ].join("\n"),
    "/etc/image-transfer/config.yaml",
  );
  assertEquals(reloadChanges(before, renamed), [
    "job cam1 renamed to north (/data/cam1 -> /archive (local)): what it sent stays its own",
    "job cam2 added (/data/cam2 -> /archive2 (local))",
    'log_format "text" -> "json"',
  ]);
});

Deno.test("reload changes: remote_base_path spelled another way is said as the same folder; a job renamed and respelled is renamed", () => {
  const spelled = (base: string, name = "cam1") =>
    parseConfig(
      [
        "jobs:",
        `  - name: ${name}`,
        "    watch_path: /data/cam1",
        `    remote_base_path: "${base}"`,
        "    transfer_method: local",
      ].join("\n"),
      "/etc/image-transfer/config.yaml",
    );
  assertEquals(reloadChanges(configOf(""), spelled("/archive//./")), [
    'job cam1: remote_base_path "/archive" -> "/archive//./" (the same folder)',
  ]);
  assertEquals(reloadChanges(configOf(""), spelled("/archive/x/")), [
    'job cam1: remote_base_path "/archive" -> "/archive/x/"',
  ]);
  assertEquals(reloadChanges(configOf(""), spelled("/archive/", "north")), [
    "job cam1 renamed to north (/data/cam1 -> /archive/ (local)): what it sent stays its own; " +
    'remote_base_path "/archive" -> "/archive/"',
  ]);
});

Deno.test("reload changes: a status page key changed alone is a change, said as kept until a restart", () => {
  const before = configOf("", 'status_listen: "127.0.0.1:8080"');
  const after = configOf("", 'status_listen: "127.0.0.1:9090"');
  assertEquals(reloadChanges(before, after), [
    'status_listen "127.0.0.1:8080" -> "127.0.0.1:9090" (taken at the next restart)',
  ]);
});

Deno.test("reload changes: two jobs that swapped names are said as renamed, each to the other's name", () => {
  const two = (first: string, second: string) =>
    parseConfig(
      [
        "jobs:",
        `  - { name: ${first}, watch_path: /data/a, remote_base_path: /archive/a, transfer_method: local }`,
        `  - { name: ${second}, watch_path: /data/b, remote_base_path: /archive/b, transfer_method: local }`,
      ].join("\n"),
      "/etc/image-transfer/config.yaml",
    );
  assertEquals(reloadChanges(two("north", "south"), two("south", "north")), [
    "job north renamed to south (/data/a -> /archive/a (local)): what it sent stays its own",
    "job south renamed to north (/data/b -> /archive/b (local)): what it sent stays its own",
  ]);
});

const FOUR = [
  "schedules:",
  '  - { cron: "0 8 * * *", action: pause }',
  '  - { cron: "0 18 * * *", action: resume }',
  "  - { every_seconds: 600, action: rescan }",
  '  - { cron: "0 9 * * *", action: report }',
].join("\n");

Deno.test("reload changes: schedules entries are matched wherever they are in the list, not by position", () => {
  const entries = FOUR.split("\n");
  // Two entries swapped: no entry changed, only their order (each is numbered anew).
  const swapped = [entries[0], entries[2], entries[1], entries[3], entries[4]].join("\n");
  assertEquals(reloadChanges(configOf(FOUR), configOf(swapped)), [
    "job cam1: schedules reordered (no entry changed; they are numbered as listed now)",
  ]);
  // The first two removed: those two, not the others as edited.
  const lastTwo = [entries[0], entries[3], entries[4]].join("\n");
  assertEquals(reloadChanges(configOf(FOUR), configOf(lastTwo)), [
    'job cam1: schedules[0] removed {"cron":"0 8 * * *","action":"pause"}, ' +
    'schedules[1] removed {"cron":"0 18 * * *","action":"resume"}',
  ]);
  // One added at the front: that one, not every entry after it.
  const front = [entries[0], "  - { every_seconds: 60, action: report }", ...entries.slice(1)];
  assertEquals(reloadChanges(configOf(FOUR), configOf(front.join("\n"))), [
    'job cam1: schedules[0] added {"every_seconds":60,"action":"report"}',
  ]);
  // The first removed and the last edited: the edit is said of the entry, where it is now.
  const edited = [entries[0], entries[2], entries[3], entries[4].replace("0 9", "0 10")];
  assertEquals(reloadChanges(configOf(FOUR), configOf(edited.join("\n"))), [
    'job cam1: schedules[0] removed {"cron":"0 8 * * *","action":"pause"}, ' +
    'schedules[2].cron "0 9 * * *" -> "0 10 * * *" (the entry was schedules[3])',
  ]);
});
