/** A TOML config is answered with the same keys as YAML: that YAML must load as the TOML meant. */
import assert from "node:assert/strict";
import { looksLikeToml, tomlAsYaml, tomlMessage } from "../../../src/config/toml_hint.ts";
import { parseConfig } from "../../../src/config/load.ts";

/** The sync tool's layout with this program's keys: jobs, each job's schedules, lists over lines. */
const SYNC_STYLE = `# two jobs
state_dir = "/var/lib/it"
transfer_method = "local"

[[jobs]]
name = "documents"
watch_path = "/data/docs"
remote_base_path = "/backup/docs"
exclude_patterns = [
  "*.tmp",   # scratch
  "*.log",
]

[[jobs.schedules]]
cron = "0 */15 * * * *"
action = "rescan"

[[jobs.schedules]]
every_seconds = 300
action = "rescan"

[[jobs]]
name = "cam2"
watch_path = "/data/cam2"
remote_base_path = "/backup/cam2"
schedules = [ { cron = "0 8 * * *", action = "report", nights = 2 } ]
`;

Deno.test("tomlAsYaml: each [[jobs.schedules]] goes to its own job, lists and inline tables as YAML", () => {
  assert.ok(looksLikeToml(SYNC_STYLE, "/etc/it/config.toml"));
  const yaml = tomlAsYaml(SYNC_STYLE);
  assert.doesNotMatch(yaml, /jobs\.schedules/);
  const config = parseConfig(yaml, "/etc/it/config.yaml");
  assert.deepEqual(config.jobs.map((job) => job.name), ["documents", "cam2"]);
  const [docs, cam2] = config.jobs;
  assert.deepEqual(docs.exclude_patterns, ["*.tmp", "*.log"]);
  assert.deepEqual(
    docs.schedules.map((entry) => [entry.cron ?? entry.every_seconds, entry.action]),
    [["0 */15 * * * *", "rescan"], [300, "rescan"]],
  );
  assert.deepEqual(
    cam2.schedules.map((entry) => [entry.cron, entry.action, entry.nights]),
    [["0 8 * * *", "report", 2]],
  );
  assert.equal(config.state_dir, "/var/lib/it");
  assert.match(yaml, /^# two jobs\n/);
});

Deno.test("tomlAsYaml: [a.b] tables and dotted keys nest; a table after [[jobs]] belongs to that job", () => {
  const yaml = tomlAsYaml(
    'transfer_method = "local"\n[[jobs]]\nname = "a"\nwatch_path = "/w/a"\n' +
      'remote_base_path = "/d/a"\n[[jobs]]\nname = "b"\nwatch_path = "/w/b"\n' +
      'remote_base_path = "/d/b"\n[jobs.x-extra]\nk = 1\nsub.key = "v"\n',
  );
  assert.equal(
    yaml,
    'transfer_method: "local"\njobs:\n  - name: "a"\n    watch_path: "/w/a"\n' +
      '    remote_base_path: "/d/a"\n  - name: "b"\n    watch_path: "/w/b"\n' +
      '    remote_base_path: "/d/b"\n    x-extra:\n      k: 1\n      sub:\n        key: "v"',
  );
});

Deno.test("tomlMessage: the sync tool's admin_password (and tokens, keys) are not shown; files naming them are", () => {
  const text = '[pocketbase]\nurl = "http://localhost:8090"\nadmin_password = "admin123456"\n' +
    'inline = { user = "u", api_key = "K-42", n = 1 }\nftp_password_file = "/etc/it/pw"\n' +
    '"quoted password" = "hunter2"\npassive = true\n';
  const message = tomlMessage(text, "/etc/it/sync.toml");
  for (const secret of ["admin123456", "K-42", "hunter2"]) assert.ok(!message.includes(secret));
  assert.match(message, /\n {6}admin_password: "\(not shown\)"\n/);
  assert.match(message, /\n {6}inline: \{ user: "u", api_key: "\(not shown\)", n: 1 \}\n/);
  assert.match(message, /\n {6}ftp_password_file: "\/etc\/it\/pw"\n/);
  assert.match(
    message,
    /\n {6}# \(a line that may hold a secret is not shown\)\n {6}passive: true\n/,
  );
});

Deno.test("tomlAsYaml: a comment inside a list over several lines stays on its line, and the YAML loads", () => {
  const yaml = tomlAsYaml(
    'transfer_method = "local"\n[[jobs]]\nname = "a"\nwatch_path = "/w/a"\n' +
      'remote_base_path = "/d/a"\nexclude_patterns = [  # what the camera leaves\n' +
      '  "*.tmp",   # scratch\n\n  # the guider\'s log\n  "*.log",\n]\npoll_interval_seconds = 5\n',
  );
  assert.match(
    yaml,
    /\n {4}exclude_patterns: \[ {2}# what the camera leaves\n {6}"\*\.tmp", {2}# scratch\n {6}# the guider's log\n {6}"\*\.log",\n {6}\]\n {4}poll_interval_seconds: 5$/,
  );
  const config = parseConfig(yaml, "/etc/it/config.yaml");
  assert.deepEqual(config.jobs[0].exclude_patterns, ["*.tmp", "*.log"]);
  assert.equal(config.jobs[0].poll_interval_seconds, 5);
});
