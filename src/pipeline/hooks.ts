/**
 * Hooks: the user's program run after each verified arrival (`on_transfer`) or when a file gives
 * up (`on_failure`), with the facts in environment variables. Hooks run beside the transfers and
 * never hold them up: at most `max_concurrent_hooks` at a time, each killed after
 * `hook_timeout_seconds`; their output goes to the log; a failing hook is logged and counted. The
 * programs are checked before the daemon starts (`user_programs.ts`). An `on_transfer` hook is
 * owed from the moment its file is recorded as arrived until it starts (`ledger/due_hooks.ts`): one
 * a stop or a crash kept from starting runs at the next start. The ledger also holds the ones a
 * full queue has no room for: they join the queue as it empties.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { jobLogger, type Logger } from "../log/logging.ts";
import { runCaptured } from "../process/captured.ts";
import { programProblem } from "./user_programs.ts";
import { hookEnvironment, type HookEvent, type HookFacts } from "./hook_facts.ts";

/**
 * Hooks waiting for a free slot beyond this many: an `on_transfer` one waits in the ledger, owed,
 * and joins the queue as it empties; an `on_failure` one is dropped (and counted).
 */
export const MAX_QUEUED_HOOKS = 1000;

/**
 * What the ledger says as an owed hook starts: `taken` (no longer owed), `gone` (it was not owed:
 * started already, or its file arrived again since), or `not now` (it cannot be written; it waits).
 */
export type OwedStart = "taken" | "gone" | "not now";

/** The ledger's side of the `on_transfer` hooks owed (`ledger/due_hooks.ts`). */
export interface OwedHooks {
  /** An owed hook starts. */
  started(facts: HookFacts): OwedStart;
  /** The first `limit` hooks owed, queued or not (@throws when the ledger cannot be read). */
  list(limit: number): HookFacts[];
  /** How many hooks are owed (@throws when the ledger cannot be read). */
  count(): number;
  /**
   * A hook whose start was taken did not start (a stop came first): owed again, unless another
   * version of its file is owed now (@throws when the ledger cannot be written: the hook then runs
   * at once, the stop waiting for it).
   */
  notStarted(facts: HookFacts): void;
}

/** Counters of one job's hooks. */
export interface HookStats {
  succeeded: number;
  /** Ran and failed, timed out, or could not start. */
  failed: number;
  /** Not run: stopping, too many waiting, or the program is no longer safe to run. */
  dropped: number;
}

/**
 * The hooks of a job a reload replaced, finishing in the background (waiting
 * ones run, each within its timeout), with its scheduled commands still
 * running; `abort` ends them as a stop does, and `finished` settles after it
 * (the tally is said then).
 */
export interface FinishingHooks {
  finished: Promise<void>;
  abort(): void;
}

/**
 * A hook waiting for a slot; `started` tells that an owed one starts. One taken from the ledger
 * (`fromLedger`) whose row is gone by then is not run: another took it.
 */
interface QueuedHook {
  event: HookEvent;
  argv: string[];
  facts: HookFacts;
  /** `false`: it cannot be told now (the ledger cannot be written): the hook waits. */
  started?: () => OwedStart;
  fromLedger?: boolean;
}

/** How long a hook waits before the ledger is asked again to take its start or list more (ms). */
const START_AGAIN_MS = 2000;

/** What identifies an owed hook: its file and version. */
const owedKey = (facts: HookFacts) => `${facts.size}/${facts.mtimeMs}/${facts.relPath}`;

/** What the log says of a hook a stop (or a full queue) keeps from starting, by its event. */
const later = (event: HookEvent) => event === "transfer" ? "; it runs at the next start" : "";

/**
 * Runs one job's hooks; see the module doc. A reload that keeps the job hands its hooks on: the
 * waiting ones move to the next runner, the running ones finish in the one they started in and
 * count against the next one's `max_concurrent_hooks`, and one tally goes on.
 */
export class HookRunner {
  #job: JobConfig;
  #log: Logger;
  #queue: QueuedHook[] = [];
  /** Where the `on_transfer` hooks owed are kept; none: they are not kept. */
  #owed: OwedHooks | undefined;
  /** Most hooks waiting here; more `on_transfer` ones wait in the ledger. */
  #queueLimit: number;
  /** Whether the ledger owes hooks the queue does not hold (it had no room, or they are old). */
  #owedBeyondQueue = false;
  /** Set while a look for them waits for the current task to end. */
  #takeSoon = false;
  /** Set while the first hook waits for the ledger to take its start, or to list more. */
  #startAgain: ReturnType<typeof setTimeout> | undefined;
  #running = new Set<Promise<void>>();
  /** Aborted on stop: kills the programs still running. */
  #stopping = new AbortController();
  #closed = false;
  /** A reload removed the job: no hook starts here any more. */
  #removed = false;
  #stats: HookStats = { succeeded: 0, failed: 0, dropped: 0 };
  /** Told of each hook that failed or was not run, as it is counted (see `JobExtras`). */
  onFailure: () => void = () => {};
  /** The runner this one replaces, while hooks it started may still run. */
  #before: HookRunner | undefined;
  /** The runner that replaced this one. */
  #after: HookRunner | undefined;
  /** Resolved by {@linkcode HookRunner.abort} (the daemon stops). */
  #aborted = Promise.withResolvers<void>();

  /**
   * @param replaces the same job's runner of the config a reload replaced
   * @param owed where the `on_transfer` hooks owed are kept: told as each starts (it waits while
   *   that says `false`), and asked for more as the queue empties; one a stop keeps from starting
   *   stays owed, to run at the next start
   * @param queueLimit most hooks waiting in memory
   */
  constructor(
    job: JobConfig,
    replaces?: HookRunner,
    owed?: OwedHooks,
    queueLimit = MAX_QUEUED_HOOKS,
  ) {
    this.#log = jobLogger("hooks", job.name);
    this.#job = job;
    this.#owed = owed;
    this.#queueLimit = queueLimit;
    if (replaces) {
      this.#stats = replaces.#stats;
      this.#queue = replaces.#queue.splice(0);
      this.#owedBeyondQueue = replaces.#owedBeyondQueue;
      replaces.#owedBeyondQueue = false;
      this.#before = replaces;
      replaces.#after = this;
      this.#next();
    }
  }

  /** Hooks that ran well, failed, or were dropped so far. */
  get stats(): HookStats {
    return { ...this.#stats };
  }

  /** Run the `on_transfer` hooks the ledger owes (those of the last run, at the start). */
  runOwed(): void {
    this.#owedBeyondQueue = true;
    this.#next();
  }

  /** Run `on_transfer` (if set) for a file that arrived verified. */
  arrived(facts: HookFacts): void {
    this.#enqueue("transfer", this.#job.on_transfer, facts);
  }

  /** Run `on_failure` (if set) for a file that gave up. */
  gaveUp(facts: HookFacts): void {
    this.#enqueue("failure", this.#job.on_failure, facts);
  }

  /**
   * Stop taking hooks. With `drain`, hooks still waiting run (each within its timeout;
   * {@linkcode HookRunner.abort} ends them sooner); without, they are dropped (each named) and
   * running ones are killed (both counted), so a stopping daemon does not wait for them (but for
   * one whose start the ledger took and cannot keep owed again: see `#run`). `reloading`: the
   * tally is said after {@linkcode HookRunner.abort}, by the job's next runner when it has one.
   * `removed` (with `reloading`: the reload removed the job): the running ones end, the waiting
   * ones are left (see {@linkcode HookRunner.#leave}) and the tally is said then.
   */
  async close(drain: boolean, reloading = false, removed = false): Promise<void> {
    this.#closed = true;
    if (!drain) this.abort();
    if (removed) this.#leave();
    // The waiting ones start as running ones end: none waits once none runs. Those still running
    // in the runners this one replaced count too (their outcomes go into the same tally). Awaited
    // at least once: the hooks of arrivals recorded right after this call, in the caller's task
    // (a stop's last ones, `JobExtras.close`), are dropped before the tally, and counted in it.
    do await Promise.allSettled(this.#allRunning()); while (this.#busy() > 0);
    // Ones still waiting for the ledger stay owed, for the next start; at a reload they wait on in
    // the job's next runner (the job removed: left owed), to run once it can be told.
    if (!reloading && this.#queue.length > 0) this.abort();
    // Replaced by a reload: the tally is said at the stop, by the job's next runner; removed: now.
    if (reloading && !removed) await this.#aborted.promise;
    clearTimeout(this.#startAgain);
    const { succeeded, failed, dropped } = this.#stats;
    // A runner that replaced this one goes on with the tally, and says it.
    if (this.#after) return;
    // Those the ledger holds beyond the queue were not named: they are counted here.
    const owed = this.#owedBeyondQueue ? this.#askOwed((owed) => owed.count(), 0) : 0;
    if (succeeded + failed + dropped + owed === 0) return;
    const when = this.#removed
      ? "when a job of this name sends to its destination again"
      : "at the next start";
    const message = "Hooks of job {job}: {succeeded} done, {failed} failed, {dropped} not run" +
      (owed > 0 ? `; {owed} on_transfer hook(s) owed in all, run ${when}` : "");
    const fields = { succeeded, failed, dropped, owed };
    if (failed + dropped + owed > 0) this.#log.warn(message, fields);
    else this.#log.info(message, fields);
  }

  /**
   * The job is removed by a reload: no hook waiting starts (an `on_transfer` one stays owed in the
   * ledger, nothing of which is forgotten, for the job should it come back; an `on_failure` one is
   * dropped, named), and none is taken from the ledger: no hook runs twice, here and in that job.
   */
  #leave(): void {
    this.#removed = true;
    clearTimeout(this.#startAgain);
    for (const { event, facts } of this.#queue.splice(0)) {
      if (event !== "transfer" || !this.#owed) {
        this.#notRun(event, facts, "a reload removed the job");
      }
    }
    this.#owedBeyondQueue = this.#owed !== undefined;
  }

  /** What `ask` of the ledger's owed hooks answers, or `otherwise` where it cannot (it says why). */
  #askOwed<T>(ask: (owed: OwedHooks) => T, otherwise: T): T {
    try {
      return this.#owed ? ask(this.#owed) : otherwise;
    } catch {
      return otherwise;
    }
  }

  /** Count and name a hook that is not run, with why, and `then`: what follows (when it runs). */
  #notRun(event: HookEvent, facts: HookFacts, reason: string, then = ""): void {
    this.#stats.dropped++;
    this.onFailure();
    const fields = { event, source: facts.source, reason };
    this.#log.error(`Hook on_{event} of job {job} for {source} not run: {reason}${then}`, fields);
  }

  /**
   * Drop the hooks still waiting, each named, and kill running ones: an `on_transfer` hook runs
   * at the next start instead (owed), an `on_failure` one when its file gives up again.
   */
  abort(): void {
    clearTimeout(this.#startAgain);
    for (const { event, facts } of this.#queue.splice(0)) {
      this.#notRun(event, facts, "stopping", later(event));
    }
    this.#stopping.abort();
    this.#aborted.resolve();
  }

  #enqueue(event: HookEvent, argv: string[], facts: HookFacts): void {
    if (argv.length === 0) return;
    const owed = event === "transfer" ? this.#owed : undefined;
    if (!this.#closed && owed && this.#queue.length >= this.#queueLimit) {
      // Owed in the ledger already: it joins the queue as the queue empties.
      if (!this.#owedBeyondQueue) {
        this.#log.warn(
          "Job {job} has {count} hooks waiting; the next ones wait in the ledger and run as " +
            "these start",
          { count: this.#queue.length },
        );
      }
      this.#owedBeyondQueue = true;
      return;
    }
    if (this.#closed || this.#queue.length >= this.#queueLimit) {
      const reason = this.#closed ? "stopping" : `${this.#queueLimit} hooks are already waiting`;
      this.#notRun(event, facts, reason, later(event));
      return;
    }
    // Taken from the ledger already (the same version recorded again): one run.
    if (owed && this.#queue.some((h) => h.started && owedKey(h.facts) === owedKey(facts))) return;
    this.#queue.push(this.#queued(event, argv, facts));
    this.#next();
  }

  #queued(event: HookEvent, argv: string[], facts: HookFacts, fromLedger = false): QueuedHook {
    const owed = event === "transfer" ? this.#owed : undefined;
    return { event, argv, facts, started: owed && (() => owed.started(facts)), fromLedger };
  }

  /**
   * Once the current task has ended (so the hooks of a batch recorded in it are all queued or
   * beyond the queue), take owed hooks the queue does not hold from the ledger.
   */
  #takeOwedSoon(): void {
    if (!this.#owedBeyondQueue || this.#takeSoon) return;
    this.#takeSoon = true;
    queueMicrotask(() => {
      this.#takeSoon = false;
      const runner = this.#newest();
      if (runner.#takeOwed()) runner.#next();
    });
  }

  /**
   * Take owed hooks the queue does not hold from the ledger, once the queue is half empty, up to
   * three quarters of its room (the rest is for the hooks of files that give up). One that cannot
   * be read now is asked again a little later. @returns whether any was taken
   */
  #takeOwed(): boolean {
    const owed = this.#owed;
    const room = this.#queueLimit - Math.floor(this.#queueLimit / 4) - this.#queue.length;
    if (!this.#owedBeyondQueue || !owed || this.#queue.length > this.#queueLimit / 2) return false;
    if (this.#stopping.signal.aborted || this.#removed || this.#job.on_transfer.length === 0) {
      return false;
    }
    // The first rows hold at least `room` that are not queued: at most the queue's are.
    const limit = this.#queue.length + room;
    let listed: HookFacts[];
    try {
      listed = owed.list(limit);
    } catch {
      this.#askAgain();
      return false;
    }
    const queued = new Set(this.#queue.filter((h) => h.started).map((h) => owedKey(h.facts)));
    let taken = 0;
    let full = false;
    for (const facts of listed) {
      if (queued.has(owedKey(facts))) continue;
      if (taken === room) {
        full = true;
        break;
      }
      this.#queue.push(this.#queued("transfer", this.#job.on_transfer, facts, true));
      taken++;
    }
    this.#owedBeyondQueue = full || listed.length >= limit;
    return taken > 0;
  }

  /** Call {@linkcode HookRunner.#next} again in a while (the ledger could not answer now). */
  #askAgain(): void {
    this.#startAgain ??= setTimeout(() => {
      this.#startAgain = undefined;
      this.#newest().#next();
    }, START_AGAIN_MS);
  }

  #next(): void {
    this.#takeOwedSoon();
    while (this.#busy() < this.#job.max_concurrent_hooks && this.#queue.length > 0) {
      const start = this.#queue[0].started?.();
      if (start === "not now") {
        this.#askAgain();
        return;
      }
      const { event, argv, facts, fromLedger } = this.#queue.shift()!;
      if (start === "gone" && fromLedger) continue;
      const taken = start === "taken";
      const running: Promise<void> = this.#run(event, argv, facts, taken).finally(() => {
        this.#running.delete(running);
        // The newest runner of the job takes the freed slot.
        this.#newest().#next();
      });
      this.#running.add(running);
    }
  }

  /** The runner that replaced this one last (this one when none did). */
  #newest(): HookRunner {
    return this.#after ? this.#after.#newest() : this;
  }

  /** Hooks running for this job: here, and in the runners this one replaced. */
  #busy(): number {
    return this.#allRunning().length;
  }

  /** The hooks running here and in the runners this one replaced. */
  #allRunning(): Array<Promise<void>> {
    if (this.#before && this.#before.#allRunning().length === 0) this.#before = undefined;
    return [...this.#running, ...(this.#before ? this.#before.#allRunning() : [])];
  }

  /** Run a hook; `taken`: its start was taken from the ledger (no longer owed). */
  async #run(event: HookEvent, argv: string[], facts: HookFacts, taken: boolean): Promise<void> {
    const job = this.#job;
    const fields = { event, hook: argv[0], source: facts.source };
    // Checked at start, and again before each run: one removed, replaced or made writable by
    // others since is not run.
    const problem = await programProblem(argv[0]);
    if (problem !== undefined) {
      const then = "; then reload the daemon (kill -HUP its pid) or restart it";
      return this.#notRun(event, facts, problem, then);
    }
    let signal: AbortSignal | undefined = this.#stopping.signal;
    // The stop came before its program started: not run, and an owed one is owed again. One whose
    // start was taken that the ledger cannot keep owed now (its disk full) runs all the same, not
    // killed by the stop, which waits for it: it would be lost otherwise, run neither now nor later.
    if (signal.aborted) {
      const again = taken && this.#askOwed((owed) => {
        owed.notStarted(facts);
        return true;
      }, false);
      if (!taken || again) return this.#notRun(event, facts, "stopping", again ? later(event) : "");
      this.#log.warn(
        "Hook on_{event} of job {job} for {source} runs as the daemon stops: its start was taken " +
          "from the ledger, which cannot keep it owed for the next start",
        fields,
      );
      signal = undefined;
    }
    const result = await runCaptured(argv, hookEnvironment(job, event, facts), {
      timeoutMs: job.hook_timeout_seconds * 1000,
      signal,
    });
    if (result.kind === "not-started") {
      this.#stats.failed++;
      this.onFailure();
      this.#log.error("Hook on_{event} of job {job} for {source} could not start: {error}", {
        ...fields,
        error: result.error,
      });
      return;
    }
    const logged = {
      ...fields,
      stdout: result.stdout,
      stderr: result.stderr,
      output: result.output,
    };
    const suffix = result.output === "" ? "" : "; {output}";
    if (result.kind === "ok") {
      this.#stats.succeeded++;
      this.#log.info(`Hook on_{event} of job {job} for {source} done${suffix}`, logged);
      return;
    }
    this.#stats.failed++;
    this.onFailure();
    const reason = result.kind === "timed-out"
      ? `killed after ${job.hook_timeout_seconds} s (hook_timeout_seconds)`
      : this.#closed && result.signal
      ? "killed: stopping"
      : result.reason;
    this.#log.error(`Hook on_{event} of job {job} for {source} failed: {reason}${suffix}`, {
      ...logged,
      reason,
    });
  }
}
