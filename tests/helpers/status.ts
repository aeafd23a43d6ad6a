/**
 * A daemon with its status page on a free loopback port, for status tests.
 *
 * @module
 */
import { join } from "node:path";
import { runCli, type RunningCli, startCli } from "./cli.ts";
import { LEAST_CEILING_MS, waitFor, writeConfig } from "./files.ts";
import { type BrowserContextOptions, chromium, type Page } from "playwright-core";
import { freePort } from "./net.ts";
import type { JobPause } from "../../src/ledger/daemon_lock.ts";

/** A running daemon with a status page. */
export interface StatusDaemon {
  root: string;
  config: string;
  watch: string;
  dest: string;
  state: string;
  base: string;
  daemon: RunningCli;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Start a `local` daemon whose status page listens on a free loopback port. */
export async function startStatusDaemon(
  fields: Record<string, unknown> = {},
): Promise<StatusDaemon> {
  const root = await Deno.makeTempDir({ prefix: "itx-status-" });
  const watch = join(root, "watch");
  const dest = join(root, "dest");
  const state = join(root, "state");
  await Deno.mkdir(watch);
  await Deno.mkdir(join(root, "home"));
  const config = join(root, "config.yaml");
  // A port found free can be taken by another test's daemon before this one listens: then this
  // daemon runs without its page (and another answers there), so it is started again on another.
  for (let attempt = 1;; attempt++) {
    const port = freePort();
    await writeConfig(config, {
      watch_path: watch,
      remote_base_path: dest,
      transfer_method: "local",
      stability_window_seconds: 0.3,
      night_timezone: "UTC",
      state_dir: state,
      log_file: "",
      status_listen: `127.0.0.1:${port}`,
      ...fields,
    });
    const daemon = startCli(["run", "-c", config], { env: { HOME: join(root, "home") } });
    await daemon.waitForOutput(/Status page (on|not started)/);
    if (daemon.stderr().includes("Status page not started") && attempt < 5) {
      await daemon.stop();
      continue;
    }
    await daemon.waitForOutput("Watching");
    return {
      root,
      config,
      watch,
      dest,
      state,
      base: `http://127.0.0.1:${port}`,
      daemon,
      async [Symbol.asyncDispose]() {
        await daemon.stop();
        await Deno.remove(root, { recursive: true });
      },
    };
  }
}

/** Job `default`'s pause as `status --json` with `config` tells it (`undefined`: not paused). */
export async function pausedJob(
  config: string,
  env: Record<string, string>,
): Promise<JobPause | undefined> {
  const out = await runCli(["status", "--json", "-c", config], { env });
  if (out.code !== 0) throw new Error(`status ended with ${out.code}: ${out.stderr}`);
  return JSON.parse(out.stdout).daemon.paused?.default as JobPause | undefined;
}

/** Wait until `status --json` says job `default` is paused in `state`; that pause. */
export async function waitPaused(
  config: string,
  env: Record<string, string>,
  state: JobPause["state"] = "destination failing",
): Promise<JobPause> {
  let pause: JobPause | undefined;
  await waitFor(
    async () => (pause = await pausedJob(config, env))?.state === state,
    LEAST_CEILING_MS,
    `status to say the job is paused (${state})`,
  );
  return pause!;
}

/** GET `path` as JSON. */
export async function getJson<T = Record<string, unknown>>(base: string, path: string): Promise<T> {
  const response = await fetch(base + path);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return await response.json() as T;
}

/** POST to `path` as the page does (same origin). */
export async function post(base: string, path: string, body?: unknown): Promise<Response> {
  return await fetch(base + path, {
    method: "POST",
    headers: { origin: base, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** A page in headless Chromium (the system's), closed with its browser when disposed. */
export interface ChromiumPage extends AsyncDisposable {
  page: Page;
  /** Another page in the same browser. */
  newPage(options?: BrowserContextOptions): Promise<Page>;
}

/**
 * Open one page in headless Chromium (the system's); every wait on it gets
 * the suite's generous ceiling (a busy machine). Dispose it (`await using`)
 * to close the browser.
 */
export async function chromiumPage(options: BrowserContextOptions = {}): Promise<ChromiumPage> {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  try {
    const page = await browser.newPage(options);
    page.setDefaultTimeout(LEAST_CEILING_MS);
    return {
      page,
      newPage: (options) => browser.newPage(options),
      [Symbol.asyncDispose]: () => browser.close(),
    };
  } catch (error) {
    await browser.close();
    throw error;
  }
}

/** {@linkcode chromiumPage} opened on the status page at `base`, once it shows itself live. */
export async function liveStatusPage(
  base: string,
  options: BrowserContextOptions = {},
): Promise<ChromiumPage> {
  const browser = await chromiumPage(options);
  try {
    await browser.page.goto(base + "/");
    await browser.page.locator("#conn", { hasText: "live" }).waitFor();
    return browser;
  } catch (error) {
    await browser[Symbol.asyncDispose]();
    throw error;
  }
}

/** The sum of metric `name` over all its labels, as `/metrics` at `base` gives it now. */
export async function metricTotal(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}{`)) total += Number(line.split(" ").pop());
  }
  return total;
}
