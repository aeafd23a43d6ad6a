/**
 * The status page: one self-contained HTML document (no CDN, works offline),
 * updated by Server-Sent Events from `/api/events`. Every value from the
 * daemon is put on the page as text (`textContent`), never as HTML, so a
 * file named `<img src=x onerror=...>.fits` shows as that name.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { UNSAFE_IN_LINE } from "../log/logging.ts";
import { nextTry } from "./next_try.ts";
import { MAX_STREAMS, RETRY_AFTER_S, TOO_MANY_PAGES } from "./pusher.ts";

const STYLE = `
:root{color-scheme:light dark;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--mute:#6e7781}
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:12px}
h1{font-size:1.3em;margin:0 0 4px}h2{font-size:1.05em;margin:18px 0 6px}
.meta{color:var(--mute);font-size:.9em}.meta span{margin-right:14px;white-space:nowrap}
.head{display:flex;flex-wrap:wrap}
.jobs{display:grid;gap:10px;grid-template-columns:repeat(auto-fit,minmax(300px,1fr))}
.job{border:1px solid #8884;border-radius:8px;padding:10px}
.state{font-weight:600;padding:1px 8px;border-radius:10px;color:#fff}
.s-watching{background:var(--ok)}.s-paused{background:var(--mute)}
.s-unreachable,.s-full,.s-failing,.s-ledger_error{background:var(--bad)}
.q{display:flex;gap:12px;flex-wrap:wrap;margin:6px 0}.q b{font-size:1.2em}
table{border-collapse:collapse;width:100%;font-size:.92em}
td,th{text-align:left;padding:3px 6px;border-bottom:1px solid #8883;vertical-align:top}
td.n,th.n{text-align:right;white-space:nowrap}.name{word-break:break-all;min-width:9em;white-space:pre-wrap}
.err{color:var(--bad);overflow-wrap:anywhere;white-space:pre-wrap}.scroll{overflow-x:auto}button{font:inherit;padding:2px 10px;margin-right:6px;cursor:pointer}
#conn.off{color:var(--bad)}.empty{color:var(--mute)}
#conn.lost{flex-basis:100%;white-space:normal;color:#fff;background:var(--bad);font-weight:600;padding:4px 8px;margin:4px 0;border-radius:6px}
.lost .job{filter:grayscale(1);opacity:.6}.s-unknown{background:var(--mute)}
svg{width:100%;height:100px;border-bottom:1px solid #8886;background:#8881}
.bar{fill:var(--ok);opacity:.75}.rate{stroke:#0969da;stroke-width:2}
.key-files{color:var(--ok)}.key-rate{color:#0969da}
.axis{display:flex;justify-content:space-between;color:var(--mute);font-size:.8em}
@media (max-width:600px){body{padding:8px}td,th{padding:3px 4px}.name{min-width:6em}
#problems tr{display:grid;grid-template-columns:1fr auto;border-bottom:1px solid #8883}
#problems td{border:0}#problems td.err{grid-column:1/-1}.problems-head{display:none}}
`;

const SCRIPT = `
"use strict";
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") e.onclick = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
// A name or a reason (it may name a file) holding a newline, another control character or a
// bidirectional override, quoted and escaped (as \`status\` and the log do): shown raw, a newline
// would look like a space, and an override would show the name's end reversed; quoted, a line
// break (\\n) is told from a backslash and an n typed in a name (\\\\n).
const UNSAFE = new RegExp(${JSON.stringify(UNSAFE_IN_LINE.source)}, "g");
function shown(name) {
  if (!name.match(UNSAFE)) return name;
  return '"' + escaped(name.replace(/["\\\\]/g, (c) => "\\\\" + c)) + '"';
}
// A message (a reason, an error) with its control characters and overrides written as escapes,
// as the log writes them.
function escaped(text) {
  const short = { "\\n": "\\\\n", "\\r": "\\\\r", "\\t": "\\\\t" };
  return text.replace(UNSAFE, (c) => {
    const code = c.charCodeAt(0);
    return short[c] || (code <= 0xff ? "\\\\x" + code.toString(16).padStart(2, "0")
      : "\\\\u" + code.toString(16).padStart(4, "0"));
  });
}
function bytes(n) {
  // Binary units, as the log, status and doctor say them.
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : Math.round(n)) + " " + u[i];
}
function ago(ms, now) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return s + " s ago";
  // Whole minutes gone, as the uptime counts them: never longer ago than the daemon is up.
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return (s / 3600).toFixed(1) + " h ago";
  return (s / 86400).toFixed(1) + " d ago";
}
function dur(s) {
  return s < 3600 ? Math.floor(s / 60) + " min" : s < 86400 ? (s / 3600).toFixed(1) + " h"
    : (s / 86400).toFixed(1) + " d";
}
// Local time as the status command says it (2024-03-15 03:12:45), whatever the browser's language.
const time = (ms) => ms ? new Date(ms).toLocaleString("sv-SE") : "-";
function took(ms) {
  if (ms === null || ms === undefined) return "-";
  const s = ms / 1000;
  return s < 1 ? Math.round(ms) + " ms" : s < 60 ? s.toFixed(s < 10 ? 1 : 0) + " s" : dur(s);
}
// A press the daemon did not take says so: a daemon that stopped answers nothing.
async function act(job, action, body) {
  let r;
  try {
    r = await fetch("/api/jobs/" + encodeURIComponent(job) + "/" + action, {
      method: "POST", headers: { "content-type": "application/json" },
      body: body ? JSON.stringify(body) : undefined });
  } catch (e) {
    alert(action + " failed: the daemon did not answer (" + e.message + ")");
    return;
  }
  if (!r.ok) alert(action + " failed: " + (await r.text()));
}
function rows(tbody, list, make, empty) {
  tbody.replaceChildren(...(list.length ? list.map(make)
    : [el("tr", {}, el("td", { class: "empty", colspan: "9" }, empty))]));
}
// The connection to the daemon: the last status it sent, when (the browser's clock), how far the
// daemon's clock is ahead, and since when it does not answer (0: it does).
let last = null, lastAt = 0, skew = 0, lostAt = 0;
function render(s) {
  // While the daemon does not answer, times ago count on from its last word to the browser's now.
  const lost = lostAt > 0, now = lost ? Date.now() + skew : s.now;
  // A daemon that refuses the page's stream answers, but tells nothing of its jobs.
  const unknown = !lost ? "" : (turnedAway ? "no update from the daemon since "
    : "the daemon has not answered since ") + time(lostAt);
  document.body.classList.toggle("lost", lost);
  showConnection();
  $("version").textContent = "version " + s.version;
  // Up for how long is a claim of the daemon that answers: none while it does not.
  $("uptime").hidden = lost;
  $("uptime").textContent = lost ? "" : "up " + dur(s.uptimeSeconds);
  $("last").textContent = "last success " + ago(s.lastSuccessAt, now);
  const refused = s.reloadRefused;
  $("reload").hidden = !refused;
  $("reload").textContent = refused ? "The last reload (" + time(Date.parse(refused.at)) +
    ") was refused; the daemon runs with the config it had: " + shown(refused.reason) : "";
  const rebuilt = s.ledgerRebuilt;
  $("rebuilt").hidden = !rebuilt;
  $("rebuilt").textContent = !rebuilt ? "" : "The ledger was " + (rebuilt.damagedCopy
    ? "rebuilt " + time(rebuilt.at) + ": the old one was damaged (" + shown(rebuilt.reason) +
      "); it is kept as " + shown(rebuilt.damagedCopy)
    : "started anew " + time(rebuilt.at) + ": the old one was lost (" + shown(rebuilt.reason) +
      ")") + ". Files found at their destination then are listed as arrived, not sent again.";
  // Lines the log file could not take (a full disk): the log is not the whole account.
  const loss = s.logFileLoss;
  $("logloss").hidden = !loss;
  $("logloss").textContent = !loss ? "" : "The log file " + shown(loss.file) + " lost " +
    loss.lines + " line(s) " + (loss.until === null ? "since " + time(Date.parse(loss.since)) +
      " and still loses them" : "from " + time(Date.parse(loss.since)) + " to " +
      time(Date.parse(loss.until))) + " (" + escaped(loss.reason) + "); stderr had them.";
  $("jobs").replaceChildren(...s.jobs.map((j) => {
    const q = j.queue;
    const paused = j.state === "paused";
    // A job the destination holds (files wait, one is tried at a time) says so, as \`status\` does.
    const pause = !paused && j.pause;
    const said = pause ? "paused: " + pause.state : ({ unreachable: "destination unreachable",
      full: "destination full", ledger_error: "ledger cannot be written" })[j.state] ?? j.state;
    const reason = pause ? pause.reason : j.reason;
    return el("div", { class: "job", "data-job": j.job },
      el("div", {}, el("b", {}, j.job), " ",
        // Not answering, the daemon tells no state: only what it last told, in grey.
        lost ? el("span", { class: "state s-unknown", title: "last told: " + said }, "unknown")
          : el("span", { class: "state s-" + (pause && j.state === "watching" ? "failing" : j.state) }, said),
        " ", el("span", { class: "meta since" }, lost ? unknown + "; it was " + said + " at " +
          time(lastAt) : "since " + ago(pause ? Date.parse(pause.since) : j.since, now))),
      el("div", { class: "meta" }, j.method + " \u2192 " + j.target,
        j.freeSpace ? el("span", { class: "free", title: "measured " + time(j.freeSpace.at) },
          " · " + bytes(j.freeSpace.bytes) + " free") : ""),
      j.watch ? el("div", { class: "meta watch" }, "Watched with " + j.watch.summary) : "",
      j.watch && j.watch.unavailable ? el("div", { class: "err unavailable" },
        "Watch folder cannot be read: " + shown(j.watch.unavailable)) : "",
      // A transfer window's pause is planned, not a fault: not in the colour of one.
      reason ? el("div", { class: (paused ? "meta" : "err") + " reason" }, shown(reason)) : "",
      j.pause ? el("div", { class: "meta held" }, "Files wait while the destination takes none: " +
        "one is tried at a time, and sending resumes as soon as one arrives") : "",
      j.cannotSend ? el("div", { class: "err cannot" }, j.cannotSend +
        " file(s) or folder(s) found since the daemon started could not be sent (a name that is not UTF-8, a name with a line break over FTP, a folder that cannot be read): image-transfer status lists those still there") : "",
      j.hookFailures ? el("div", { class: "err hooks" }, j.hookFailures +
        " hook run(s) failed, timed out or could not start since the daemon started: the log says why") : "",
      j.scheduleFailures ? el("div", { class: "err schedules" }, j.scheduleFailures +
        " scheduled action(s) (command, report, rescan) failed or could not run since the daemon started: the log says why") : "",
      j.cleanupFailures ? el("div", { class: "err cleanup" }, j.cleanupFailures +
        " source(s) after_transfer could not delete or move into the archive since the daemon started: they stay in the watch folder; the log says why") : "",
      el("div", { class: "q" },
        el("span", {}, el("b", {}, q.observing + q.planning + q.queued), " pending",
          q.observing ? " (" + q.observing + " not complete yet" + (j.unreadable ? ", " + j.unreadable +
            " of them cannot be looked at now: the log says why" : "") + ")" : ""),
        el("span", {}, el("b", {}, q.sending), q.sending && j.transfers !== undefined
          ? " file(s) sending in " + j.transfers + " transfer(s)" : " sending"),
        el("span", {}, el("b", {}, q.waiting), " waiting to retry"),
        el("span", {}, el("b", {}, q.failed), " gave up"),
        q.unrecorded ? el("span", {}, el("b", {}, q.unrecorded), " unrecorded (found complete, or arrived: the ledger cannot record them now)") : "",
        el("span", {}, el("b", {}, j.sent), " sent this run"),
        j.rateBytesPerSecond && !lost ? el("span", {}, el("b", {}, bytes(j.rateBytesPerSecond) + "/s"), " now") : ""),
      el("div", {},
        el("button", { class: paused ? "resume" : "pause",
          onclick: () => act(j.job, paused ? "resume" : "pause") }, paused ? "Resume" : "Pause"),
        el("button", { class: "retry-all", onclick: () => act(j.job, "retry") }, "Retry failed")),
      j.inFlight.length ? el("div", { class: "meta" },
        lost ? "On their way at " + time(lastAt) + ": " : "Now: ",
        ...j.inFlight.slice(0, 5).map(
        (f) => el("div", { class: "name" }, shown(f.relPath) + " (" + bytes(f.bytes) + ", " +
          Math.round((s.now - f.startedAt) / 1000) + " s)"))) : "");
  }));
  rows($("nights"), s.nights, (n) => el("tr", {}, el("td", {}, n.night), el("td", {}, n.job),
    el("td", { class: "n" }, n.done + " / " + n.files), el("td", { class: "n" }, bytes(n.bytes)),
    el("td", { class: "n" + (n.failures ? " err" : "") }, n.failures)), "No night folders yet");
  $("nightsmore").textContent = s.nightsMore ? "Only the latest " + s.nights.length +
    " rows (night folder and job) of the last 10 days are listed; /api/nights?limit=N lists the latest N" : "";
  rows($("problems"), s.problems, (p) => el("tr", { class: "problem" },
    el("td", { class: "name" }, shown(p.relPath)), el("td", {}, p.job),
    el("td", { class: "err" }, shown(p.lastError || "")),
    el("td", { class: "next" }, lost ? "unknown: " + unknown : nextTry(p, s, time, ", or Retry now")),
    el("td", {}, p.state === "failed" ? el("button", { class: "retry",
      onclick: () => act(p.job, "retry", { file: p.relPath }) }, "Retry") : "")), "No failures");
  $("problemsmore").textContent = s.problemsMore ? "More files have an error than the latest " +
    s.problems.length + " listed here; image-transfer status -n N lists the latest N" : "";
  rows($("recent"), s.recent, (r) => el("tr", { class: "sent" },
    el("td", { class: "name" }, shown(r.relPath)), el("td", {}, r.job),
    el("td", { class: "n" }, bytes(r.size)),
    el("td", { class: "n took" }, took(r.durationMs)), el("td", { class: "name" }, shown(r.destination)), el("td", {}, ago(r.transferredAt, now))),
    "Nothing sent yet");
  chart(s.perMinute || [], now);
}
// When a file with an error goes next: the words \`status\` says too (next_try.ts).
${nextTry.toString()}
function chart(points, now) {
  // One slot per minute of the last 6 hours: files as bars, throughput as a line.
  const svg = $("chart"), W = 600, H = 100, N = 360, w = W / N, ns = "http://www.w3.org/2000/svg";
  const files = new Array(N).fill(0), rate = new Array(N).fill(0);
  for (const p of points) {
    const i = N - 1 - Math.floor((now - p.minute) / 60e3);
    if (i >= 0 && i < N) { files[i] += p.files; rate[i] += p.bytes / 60; }
  }
  const maxFiles = Math.max(1, ...files), maxRate = Math.max(1, ...rate);
  const shape = (tag, attrs) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  };
  const bars = [];
  files.forEach((n, i) => { if (n) bars.push(shape("rect", { x: (i * w).toFixed(1),
    y: (H - (n / maxFiles) * H).toFixed(1), width: Math.max(w, 2).toFixed(2),
    height: ((n / maxFiles) * H).toFixed(1), class: "bar" })); });
  const y = (r) => (H - (r / maxRate) * (H - 2) - 1).toFixed(1);
  const line = shape("polyline", { class: "rate", fill: "none", "vector-effect": "non-scaling-stroke",
    points: rate.map((r, i) => ((i + 0.5) * w).toFixed(1) + "," + y(r)).join(" ") });
  svg.replaceChildren(...bars, line);
  $("chartmax").textContent = files.some((n) => n > 0)
    ? "max " + maxFiles + " files/min, " + bytes(maxRate) + "/s" : "nothing sent in this time";
}
// An update replaces the buttons; one that came while a button is pressed waits until the click
// is over, or the click would land on a button no longer there (and be lost on a busy page).
// A press holds them a minute at most: a button released outside the window may send no pointerup.
let pressed = false, held = null, letGo;
const release = () => { pressed = false; if (held) { const s = held; held = null; render(s); } };
document.addEventListener("pointerdown", (e) => {
  pressed = !!e.target.closest("button");
  clearTimeout(letGo);
  if (pressed) letGo = setTimeout(release, 60000);
}, true);
document.addEventListener("pointerup", () => setTimeout(release, 0), true);
document.addEventListener("pointercancel", release, true);
window.addEventListener("blur", release);
const show = (s) => { if (pressed) held = s; else render(s); };
// A lost connection shows at once as reconnecting; one not back within GRACE_MS (the browser tries
// again every 2 s), or a stream that brought nothing for SILENCE_MS (an update comes every 15 s at
// least: a daemon that hangs, a network cut without a word), makes the page say the daemon does not
// answer, grey its jobs out and count times on, until an update comes again (a restarted daemon).
const GRACE_MS = 5000, SILENCE_MS = 40000;
let es, grace, silence, ticking, failedAt = 0;
// Why the daemon refused the stream, where it answered: "token" (401: not this page's token, one
// changed since the page was opened, and the daemon started again with it), "busy" (503: the most
// pages it serves live are open); "" where it did not answer (or is stopping).
let turnedAway = "";
const TURNED_AWAY = {
  token: "The daemon no longer takes this page's access token (it was changed since the page " +
    "was opened): open the page again with the new link (/?token=NEW_TOKEN)",
  busy: "Too many status pages are open (the daemon serves ${MAX_STREAMS} at once): close some; " +
    "this page tries again every ${RETRY_AFTER_S} s",
};
function showConnection() {
  const c = $("conn");
  c.className = lostAt ? "lost" : failedAt ? "off" : "";
  const told = last ? "; below is what it told at " + time(lastAt) : "";
  c.textContent = lostAt && turnedAway
    ? TURNED_AWAY[turnedAway] + "; what its jobs do now is unknown" + told
    : lostAt ? "The daemon has not answered since " + time(lostAt) + " (stopped?): " +
    "what its jobs do now is unknown" + told
    : failedAt ? "reconnecting\u2026" : last ? "live" : "connecting\u2026";
}
// EventSource does not tell why a stream was refused: a look at the stream's probe does (the
// status code, and for a 503 its first words: too many pages, or a daemon stopping).
async function askWhy(at) {
  let why = "";
  try {
    const r = await fetch("/api/events?probe", { cache: "no-store" });
    const said = await r.text();
    why = r.status === 401 ? "token"
      : r.status === 503 && said.startsWith(${JSON.stringify(TOO_MANY_PAGES)}) ? "busy" : "";
  } catch { /* no answer: the daemon stopped, said as such */ }
  if (failedAt !== at || !why) return; // Live again meanwhile, or nothing more to say.
  turnedAway = why;
  clearTimeout(grace);
  if (lostAt) { if (last) show(last); else showConnection(); } else lose(at);
}
function lose(at) {
  if (lostAt) return;
  lostAt = at;
  ticking = setInterval(() => { if (last) show(last); }, 15000);
  if (last) show(last); else showConnection();
}
function connect() {
  es = new EventSource("/api/events");
  es.addEventListener("status", (e) => {
    const s = JSON.parse(e.data);
    last = s; lastAt = Date.now(); skew = s.now - lastAt; failedAt = 0; lostAt = 0; turnedAway = "";
    clearTimeout(grace); grace = undefined; clearInterval(ticking);
    clearTimeout(silence); silence = setTimeout(() => lose(lastAt), SILENCE_MS);
    showConnection();
    show(s);
  });
  es.onerror = () => {
    failedAt ||= Date.now();
    const at = failedAt;
    grace ??= setTimeout(() => lose(at), GRACE_MS);
    // A stream the browser gives up on (an answer not a stream: a daemon stopping, or with too many
    // pages open, answers 503 and Retry-After: 10; a token it does not take, 401) is opened anew
    // then: a daemon started again is found. Why it was refused is asked; no answer at all (the
    // browser tries again by itself) is a daemon not answering.
    if (es.readyState === EventSource.CLOSED) {
      es.close(); setTimeout(connect, ${RETRY_AFTER_S * 1000}); askWhy(at);
    } else turnedAway = "";
    showConnection();
  };
}
connect();
`;

/** The `'sha256-...'` source that allows exactly `text` as an inline script or style. */
function hashSource(text: string): string {
  return `'sha256-${createHash("sha256").update(text).digest("base64")}'`;
}

/**
 * The page's Content-Security-Policy: its own script and style only (by their
 * hashes, so an injected one would not run), live updates from this server,
 * never framed, no forms, no `<base>`.
 */
export const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${hashSource(SCRIPT)}`,
  `style-src ${hashSource(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "frame-ancestors 'none'",
  "form-action 'none'",
  "base-uri 'none'",
].join("; ");

/** The whole page. */
export const STATUS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>image-transfer status</title><link rel="icon" href="data:,"><style>${STYLE}</style></head>
<body>
<h1>image-transfer</h1>
<div class="meta head"><span id="conn">connecting\u2026</span><span id="last"></span><span id="uptime"></span><span id="version"></span></div>
<div class="err" id="reload" hidden></div>
<div class="err" id="rebuilt" hidden></div>
<div class="err" id="logloss" hidden></div>
<h2>Jobs</h2><div class="jobs" id="jobs"></div>
<h2>Throughput and files per minute, last 6 hours <span class="meta" id="chartmax"></span></h2>
<div class="meta"><span class="key-files">\u25a0 files per minute</span><span class="key-rate">\u2501 throughput (bytes/s)</span></div>
<svg id="chart" viewBox="0 0 600 100" preserveAspectRatio="none" role="img" aria-label="throughput and files per minute"></svg>
<div class="axis"><span>6 h ago</span><span>3 h ago</span><span>now</span></div>
<h2>Failures</h2>
<div class="scroll"><table><thead class="problems-head"><tr><th>File</th><th>Job</th><th>Reason</th><th>Next</th><th></th></tr></thead><tbody id="problems"></tbody></table></div>
<div class="meta" id="problemsmore"></div>
<h2>Recent transfers</h2>
<div class="scroll"><table><thead><tr><th>File</th><th>Job</th><th class="n">Size</th><th class="n">Took</th><th>Destination</th><th>When</th></tr></thead><tbody id="recent"></tbody></table></div>
<h2>Nights</h2>
<div class="scroll"><table><thead><tr><th>Night</th><th>Job</th><th class="n">Files</th><th class="n">Bytes</th><th class="n">Last try failed</th></tr></thead><tbody id="nights"></tbody></table></div>
<div class="meta" id="nightsmore"></div>
<script>${SCRIPT}</script>
</body></html>
`;
