/**
 * What a fleet's monitoring is given: the alert rules pass their unit tests
 * under `promtool test rules`, and every metric the rules and the Grafana
 * dashboard query is one a live daemon exports, scraped with its status
 * token as Prometheus does.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { REPO_ROOT, runProgram } from "../../helpers/cli.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { startStatusDaemon } from "../../helpers/status.ts";
import { JOB_STATES } from "../../../src/status/job_status.ts";

const RULES_DIR = join(REPO_ROOT, "service", "prometheus");
const RULES = join(RULES_DIR, "image-transfer.rules.yml");
const RULES_TEST = join(RULES_DIR, "image-transfer.rules.test.yml");
const DASHBOARD = join(REPO_ROOT, "service", "grafana", "image-transfer.json");

/** Run `promtool` to completion; its stdout and stderr together. */
async function promtool(
  args: string[],
  options: { cwd?: string; stdin?: string } = {},
): Promise<{ code: number; output: string }> {
  const out = await runProgram("promtool", args, options);
  return { code: out.code, output: out.stdout + out.stderr };
}

/** PromQL words that look like names but are not metrics. */
const PROMQL_WORDS = new Set([
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "offset",
]);

/** The metric names a PromQL expression (or Grafana's `label_values(...)`) reads. */
function metricNames(expr: string): string[] {
  const labelValues = /^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$/.exec(expr);
  if (labelValues) return metricNames(labelValues[1]);
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names: string[] = [];
  for (const match of stripped.matchAll(/(?<![A-Za-z0-9_.:$])[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const after = stripped.slice(match.index + match[0].length).trimStart();
    if (after.startsWith("(") || PROMQL_WORDS.has(match[0])) continue;
    names.push(match[0]);
  }
  return names;
}

/** Every query of the dashboard: the panels' `expr` and the variables' queries. */
function dashboardQueries(dashboard: unknown): string[] {
  const queries: string[] = [];
  const walk = (node: unknown, key = "") => {
    if (typeof node === "string") {
      if (key === "expr" || key === "query" && node.includes("(")) queries.push(node);
    } else if (Array.isArray(node)) node.forEach((n) => walk(n));
    else if (node !== null && typeof node === "object") {
      for (const [k, v] of Object.entries(node)) walk(v, k);
    }
  };
  walk(dashboard);
  return queries;
}

function ruleQueries(text: string): string[] {
  const rules = parse(text) as { groups: Array<{ rules: Array<{ expr: string }> }> };
  return rules.groups.flatMap((g) => g.rules.map((r) => r.expr));
}

/** The sample names of an exposition (histograms as `_bucket`, `_sum`, `_count`). */
function exposedNames(exposition: string): Set<string> {
  return new Set(
    exposition.split("\n").filter((line) => line !== "" && !line.startsWith("#"))
      .map((line) => /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line)![0]),
  );
}

/** Names queried but not exported (`up` is made by Prometheus for every target). */
function unknownNames(queries: string[], exported: Set<string>): string[] {
  return [...new Set(queries.flatMap(metricNames))]
    .filter((name) => name !== "up" && !exported.has(name));
}

Deno.test("alert rules: promtool checks them and their unit tests pass (and can fail)", async () => {
  const checked = await promtool(["check", "rules", RULES]);
  assert.equal(checked.code, 0, checked.output);
  assert.match(checked.output, /SUCCESS: 10 rules found/);
  const tested = await promtool(["test", "rules", "image-transfer.rules.test.yml"], {
    cwd: RULES_DIR,
  });
  assert.equal(tested.code, 0, tested.output);
  assert.match(tested.output, /SUCCESS/);

  // The same unit tests against rules that alert on the wrong thing fail, naming the alert.
  const dir = await Deno.makeTempDir({ prefix: "itx-rules-" });
  try {
    const rules = await Deno.readTextFile(RULES);
    const broken = rules.replace('state="ledger_error"} == 1', 'state="ledger_error"} == 0');
    assert.notEqual(broken, rules);
    await Deno.writeTextFile(join(dir, "image-transfer.rules.yml"), broken);
    await Deno.copyFile(RULES_TEST, join(dir, "image-transfer.rules.test.yml"));
    const failed = await promtool(["test", "rules", "image-transfer.rules.test.yml"], { cwd: dir });
    assert.notEqual(failed.code, 0, failed.output);
    assert.match(failed.output, /ImageTransferLedgerError/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("metric names: read from queries, not from label values, functions or keywords", () => {
  assert.deepEqual(
    metricNames(
      'sum by (job, le) (rate(a_bucket{job=~"$job",x="y{z}"}[5m])) * 60 > 1e3 and on (instance) b unless c{state="d"} == 1',
    ),
    ["a_bucket", "b", "c"],
  );
  assert.deepEqual(metricNames('label_values(m_total{instance=~"$instance"}, job)'), ["m_total"]);
  assert.deepEqual(metricNames("time() - process_start_time_seconds"), [
    "process_start_time_seconds",
  ]);
});

Deno.test("dashboard: every daemon scraped is listed, up or down, for every scrape job docs/monitoring.md allows", async () => {
  const json = JSON.parse(await Deno.readTextFile(DASHBOARD));
  const dashboard = dashboardQueries(json);
  // The Daemon selector lists the targets from `up`, which Prometheus writes for each one at
  // every scrape: a daemon down for the whole time range, or never reached (a wrong token), is
  // listed too, not only those that exported their own series.
  const daemons = json.templating.list.find((v: { name: string }) => v.name === "instance");
  assert.deepEqual(metricNames(daemons.query.query), ["up"]);
  // One scrape job per token: "image-transfer" and others whose names begin with it.
  const scrapeJobs = ["image-transfer", "image-transfer-cam2"];
  const own = dashboard.filter((expr) =>
    metricNames(expr).some((name) => name === "up" || name.startsWith("process_"))
  );
  assert.ok(own.includes(daemons.query.query) && own.length >= 5, own.join("\n"));
  for (const expr of own) {
    const matcher = /\bjob\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"/.exec(expr);
    assert.ok(matcher, `${expr}: selects the scrape job`);
    const [, op, value] = matcher;
    const pattern = op === "=~" ? new RegExp(`^(?:${value})$`) : null;
    for (const job of scrapeJobs) {
      assert.ok(pattern ? pattern.test(job) : value === job, `${expr} shows scrape job ${job}`);
    }
  }
});

Deno.test("dashboard and rules: every metric they query is in a live daemon's /metrics, scraped with its token", async () => {
  const tokenDir = await Deno.makeTempDir({ prefix: "itx-token-" });
  const token = "fedcba9876543210fedcba9876543210";
  const tokenFile = join(tokenDir, "token");
  await Deno.writeTextFile(tokenFile, token + "\n", { mode: 0o600 });
  try {
    // A local job only: the daemon gives up starting programs, and still counts its descriptors.
    await using d = await startStatusDaemon({ status_token_file: tokenFile });
    const auth = { authorization: `Bearer ${token}` };
    const anonymous = await fetch(`${d.base}/metrics`);
    await anonymous.body?.cancel();
    assert.equal(anonymous.status, 401);
    const scrape = async () => {
      const response = await fetch(`${d.base}/metrics`, { headers: auth });
      assert.equal(response.status, 200);
      return await response.text();
    };
    const value = (text: string, series: string) => {
      const line = text.split("\n").find((l) => l.startsWith(series + " "));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    const labels = 'job="default",method="local"';

    // Paused, a new file waits: counted, its age grows, the state gauge says paused.
    const paused = await fetch(`${d.base}/api/jobs/default/pause`, {
      method: "POST",
      headers: { ...auth, origin: d.base },
    });
    assert.equal(paused.status, 200, await paused.text());
    const bytes = randomBytes(70_000);
    await Deno.writeFile(join(d.watch, "a.fits"), bytes);
    await waitFor(
      async () => {
        const text = await scrape();
        return value(text, `image_transfer_files_waiting{${labels}}`) === 1 &&
          value(text, `image_transfer_oldest_waiting_file_age_seconds{${labels}}`)! > 0;
      },
      30_000,
      "one file waiting, with an age",
    );
    let text = await scrape();
    for (const state of JOB_STATES) {
      const series = `image_transfer_job_state{${labels},state="${state}"}`;
      assert.equal(value(text, series), state === "paused" ? 1 : 0, series);
    }

    // Resumed: it arrives, nothing waits, the job watches again.
    const resumed = await fetch(`${d.base}/api/jobs/default/resume`, {
      method: "POST",
      headers: { ...auth, origin: d.base },
    });
    assert.equal(resumed.status, 200, await resumed.text());
    // The arrived file is looked at once more (it may have changed while it was sent): the
    // gauges settle a moment after the counter.
    await waitFor(
      async () => {
        text = await scrape();
        return value(text, `image_transfer_files_transferred_total{${labels}}`) === 1 &&
          value(text, `image_transfer_destination_free_bytes{${labels}}`) !== undefined &&
          value(text, `image_transfer_files_waiting{${labels}}`) === 0;
      },
      30_000,
      "the file counted as arrived, nothing waiting, and the free space measured",
    );
    const night = (await Array.fromAsync(Deno.readDir(d.dest)))[0].name;
    assert.deepEqual(await Deno.readFile(join(d.dest, night, "a.fits")), bytes);
    // Sent once.
    const sends = d.daemon.stderr().split("\n").filter((l) =>
      /Successfully transferred .*a\.fits/.test(l)
    );
    assert.equal(sends.length, 1, d.daemon.stderr());
    // A file sent is never said to be skipped (the close shortcut's own patterns skip nothing).
    assert.doesNotMatch(d.daemon.stderr(), /Skipped .*a\.fits/);
    assert.equal(value(text, `image_transfer_oldest_waiting_file_age_seconds{${labels}}`), 0);
    assert.equal(value(text, `image_transfer_job_state{${labels},state="watching"}`), 1);
    assert.equal(value(text, `image_transfer_bytes_transferred_total{${labels}}`), 70_000);
    const arrived = value(text, `image_transfer_last_success_timestamp_seconds{${labels}}`)!;
    assert.ok(Math.abs(arrived - Date.now() / 1000) < 3600, `last arrival ${arrived}`);
    // The process figures, read with the daemon's own permissions.
    assert.ok(value(text, "process_resident_memory_bytes")! > 1_000_000);
    assert.ok(value(text, "process_cpu_seconds_total")! > 0);
    const started = value(text, "process_start_time_seconds")!;
    assert.ok(started <= Date.now() / 1000 && started > Date.now() / 1000 - 3600);
    const fds = value(text, "process_open_fds")!;
    assert.ok(fds > 3 && fds < 1000, `open descriptors ${fds}`);
    const checked = await promtool(["check", "metrics"], { stdin: text });
    assert.equal(checked.code, 0, checked.output);

    // Every name the dashboard and the rules query is exported.
    const exported = exposedNames(text);
    const dashboard = dashboardQueries(JSON.parse(await Deno.readTextFile(DASHBOARD)));
    const rules = ruleQueries(await Deno.readTextFile(RULES));
    const queried = new Set([...dashboard, ...rules].flatMap(metricNames));
    for (const name of ["image_transfer_job_state", "process_resident_memory_bytes"]) {
      assert.ok(queried.has(name), `${name} found in the queries`);
    }
    assert.ok(queried.size >= 12, [...queried].join(", "));
    assert.deepEqual(unknownNames(dashboard, exported), [], "dashboard");
    assert.deepEqual(unknownNames(rules, exported), [], "rules");
    // A name the daemon does not export is caught.
    assert.deepEqual(unknownNames(["rate(image_transfer_files_sent_total[5m])"], exported), [
      "image_transfer_files_sent_total",
    ]);
  } finally {
    await Deno.remove(tokenDir, { recursive: true });
  }
});

Deno.test("docs: the Prometheus configurations in the README and docs/monitoring.md pass promtool check config", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-prom-config-" });
  try {
    await Deno.copyFile(RULES, join(dir, "image-transfer.rules.yml"));
    await Deno.writeTextFile(join(dir, "image-transfer.token"), "0123456789abcdef0123456789abcdef");
    const upRule = ruleQueries(await Deno.readTextFile(RULES)).find((e) => e.startsWith("up{"));
    for (const doc of ["README.md", join("docs", "monitoring.md")]) {
      const text = await Deno.readTextFile(join(REPO_ROOT, doc));
      const blocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1])
        .filter((block) => block.includes("scrape_configs:"));
      assert.equal(blocks.length, 1, `${doc}: one scrape configuration`);
      const config = blocks[0].replaceAll("/etc/prometheus/", dir + "/");
      const parsed = parse(config) as {
        scrape_configs: Array<{ job_name: string; honor_labels?: boolean }>;
      };
      const job = parsed.scrape_configs[0];
      assert.equal(job.honor_labels, true, doc);
      assert.equal(upRule, `up{job="${job.job_name}"} == 0`, `${doc}: the up rule's job`);
      await Deno.writeTextFile(join(dir, "prometheus.yml"), config);
      const checked = await promtool(["check", "config", join(dir, "prometheus.yml")]);
      assert.equal(checked.code, 0, `${doc}: ${checked.output}`);
      assert.match(checked.output, /SUCCESS: 10 rules found/);
    }
    // A configuration Prometheus cannot read is refused: the check can fail.
    await Deno.writeTextFile(join(dir, "prometheus.yml"), "scrape_configs:\n  - honor_labels: 1\n");
    assert.notEqual((await promtool(["check", "config", join(dir, "prometheus.yml")])).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
