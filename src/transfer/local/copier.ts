/**
 * Small files of the `local` transport, copied by a thread of their own (the
 * copier, `copier_worker.ts`) when the destination is a local disk: a burst
 * of small files otherwise costs the daemon's thread, per file, the creation
 * of a temporary file, its writes, two SHA-256 passes, a flush and a rename,
 * each but the hashing a hand-over to the runtime's thread pool.
 *
 * The copier opens and checks each source as every transport does
 * (`source.ts`: the checks before and after it is read included), copies it
 * under its temporary name with its mode and times, hashes what it read and
 * what the copy holds, and flushes the copy; the daemon's thread judges each
 * copy with `verifyCopy`; told to, the copier renames the copies into place
 * (each once its name still holds the file written) and flushes their folders.
 *
 * A copy is left to the copier only when nothing else applies: files of at
 * most {@linkcode COPIER_MAX_BYTES}, no bandwidth limit, no earlier copy to
 * continue, a destination on a local disk (calls on a share stay on the pool,
 * where a share that stops answering holds no thread of the daemon's).
 *
 * @module
 */
import { dirname } from "node:path";
import { systemError, TransferError, type TransferErrorKind } from "../../errors.ts";
import { verifyCopy } from "../deliver.ts";
import type { SourceInfo, SourceRef } from "../source.ts";
import type { LocalDelivery } from "./temp_copies.ts";
import { CopyVanished, replacedError } from "./renamed.ts";
import { NameTaken } from "../keep_others.ts";
import { logger } from "../../log/logging.ts";

/** Files up to this size may be copied by the copier. */
export const COPIER_MAX_BYTES = 4 * 1024 * 1024;

/** Threads of a copier: copies of two batches are made side by side. */
const COPIER_THREADS = 2;

/** How long a thread of the copier is kept once idle. */
const IDLE_MS = 60_000;

/** One copy for the copier to make. */
export interface PutOrder {
  key: number;
  item: SourceRef;
  tempPath: string;
  hashIt: boolean;
  verifySize: boolean;
  /** Whether to set the copy's permission bits (not on Windows). */
  setMode: boolean;
}

/** What the copier did with one {@linkcode PutOrder}. */
export type PutResult =
  | { key: number; fault: CopyFault }
  | {
    key: number;
    fault: null;
    /** The source, checked once read. */
    info: SourceInfo;
    bytes: number;
    sha256: string | null;
    size: number | null;
    copySha256: string | null;
  };

/** Copies to rename into place, copies to drop, and folders to flush once renamed. */
export interface FinishOrder {
  /** `noReplace`: the copy replaces no file under its final name (see `renamed.ts`). */
  renames: Array<{ key: number; finalPath: string; noReplace: boolean }>;
  drops: number[];
  folders: string[];
}

/** An error of the copier's thread, as the daemon's thread judges it. */
export interface CopyFault {
  name: string;
  message: string;
  code?: string;
  /** The kind and the cause of a `TransferError` (`transfer`). */
  kind?: TransferErrorKind;
  cause?: CopyFault;
  /**
   * `call`: a file call failed; `transfer`: the source, as judged by
   * `source.ts`; `replaced`/`vanished`: the temporary name before the
   * rename; `taken`: the final name (`NameTaken`); `lost`: the copier's thread did not do it.
   */
  stage: "call" | "transfer" | "replaced" | "vanished" | "taken" | "lost";
  /** The final name taken, and whether by a file (`taken`). */
  taken?: { path: string; file: boolean };
}

/** What the daemon asks of the copier. */
export type CopierRequest =
  | { kind: "put"; id: number; copies: PutOrder[] }
  | { kind: "finish"; id: number; order: FinishOrder };

/** What the copier answers (`ready` once, when it has loaded). */
export type CopierReply =
  | { kind: "ready"; id: 0 }
  | { kind: "put"; id: number; results: PutResult[] }
  | {
    kind: "finish";
    id: number;
    renamed: Array<{ key: number; fault: CopyFault | null }>;
    folders: Array<{ folder: string; fault: CopyFault | null }>;
  }
  | { kind: "failed"; id: number; fault: CopyFault };

/** The job's settings a copy follows. */
export interface CopySettings {
  verify: "none" | "size" | "checksum";
  /** Whether the copy's permission bits are set (not on Windows). */
  setMode: boolean;
}

/**
 * What `finish` did, by delivery (`null`: renamed) and by folder (`null`:
 * flushed); `lost`: those whose temporary name no longer held the copy.
 */
export interface Finished {
  renamed: Map<LocalDelivery, Error | null>;
  folders: Map<string, Error | null>;
  lost: LocalDelivery[];
}

/** The daemon's side of the copier: see the module doc. */
export class LocalCopier {
  /** The copier's threads, taking the batches in turn. */
  #threads: CopierThread[];
  #turn = 0;
  #nextKey = 1;
  /** The thread holding each copy, by its key. */
  #holder = new Map<number, CopierThread>();
  /** The copies being made, by delivery: a batch ending meanwhile drops them once made. */
  #putting = new WeakMap<LocalDelivery, Promise<void>>();
  /** Why the copier cannot be used (it did not start): copies then go the usual way. */
  #broken: string | null = null;

  /**
   * `module`: the copier thread's module (another only in tests); `idleMs`:
   * how long a thread is kept once idle and holding no copy.
   */
  constructor(module = new URL("./copier_worker.ts", import.meta.url), idleMs = IDLE_MS) {
    this.#threads = Array.from({ length: COPIER_THREADS }, () => {
      const thread: CopierThread = new CopierThread(
        module,
        (reason) => {
          if (this.#broken !== null) return;
          this.#broken = reason;
          logger("transfer").warn("Local copies go without their own thread: {reason}", { reason });
        },
        idleMs,
        () => [...this.#holder.values()].includes(thread),
      );
      return thread;
    });
  }

  /**
   * Whether the copier takes copies from a batch of `files`: a lone file
   * while no thread runs is copied the usual way (starting a thread takes
   * longer than its copy).
   */
  welcomes(files: number): boolean {
    return this.#broken === null && (files > 1 || this.#threads.some((thread) => thread.running));
  }

  /** Whether the copier can take `delivery` (see the module doc for the rest of the rule). */
  takes(delivery: LocalDelivery): boolean {
    return delivery.item.size <= COPIER_MAX_BYTES;
  }

  /**
   * Copy `deliveries` (each already claimed: see `LocalTempCopies.claimNew`)
   * under their temporary names; `fail` each that could not be, or whose
   * copy is not its source. Returns those it did not take: all of them when
   * its thread could not start (to be copied the usual way).
   */
  async put(
    deliveries: LocalDelivery[],
    settings: CopySettings,
    fail: (delivery: LocalDelivery, error: unknown) => void,
  ): Promise<LocalDelivery[]> {
    const { promise: making, resolve: made } = Promise.withResolvers<void>();
    for (const delivery of deliveries) this.#putting.set(delivery, making);
    try {
      if (deliveries.length === 0) return [];
      const thread = this.#threads[this.#turn++ % this.#threads.length];
      const byKey = new Map<number, LocalDelivery>();
      const copies: PutOrder[] = deliveries.map((delivery) => {
        const key = this.#nextKey++;
        byKey.set(key, delivery);
        const { source, followLink, size, mtimeMs, watchFolder } = delivery.item;
        return {
          key,
          item: { source, followLink, size, mtimeMs, watchFolder },
          tempPath: delivery.tempPath,
          hashIt: settings.verify === "checksum",
          verifySize: settings.verify !== "none",
          setMode: settings.setMode,
        };
      });
      let reply: CopierReply;
      try {
        reply = await thread.ask({ kind: "put", id: 0, copies });
        if (reply.kind !== "put") throw faultError(reply.kind === "failed" ? reply.fault : null);
      } catch (error) {
        if (this.#broken !== null) return deliveries;
        // Whatever it holds of these is dropped (a thread that stopped, or never started, holds
        // nothing).
        if (this.#broken === null && thread.running) {
          await thread.ask({
            kind: "finish",
            id: 0,
            order: { renames: [], drops: [...byKey.keys()], folders: [] },
          }).catch(() => {});
        }
        for (const delivery of deliveries) fail(delivery, error);
        return [];
      }
      // Every copy made is known held before any is judged (a judgement may end the batch).
      for (const result of reply.results) {
        if (result.fault !== null) continue;
        byKey.get(result.key)!.copierKey = result.key;
        this.#holder.set(result.key, thread);
      }
      // Kept while it holds them, however long the rest of the batch takes.
      if (reply.results.some((result) => result.fault === null)) thread.keep();
      for (const result of reply.results) {
        const delivery = byKey.get(result.key)!;
        if (result.fault !== null) {
          fail(delivery, faultError(result.fault));
          continue;
        }
        delivery.source = result.info;
        delivery.checkedAfterRead = true;
        delivery.written = { bytes: result.bytes, appended: result.bytes, sha256: result.sha256 };
        const error = verifyCopy(delivery.item, settings.verify, {
          bytesRead: result.bytes,
          size: result.size ?? undefined,
          sourceSha256: result.sha256,
          copySha256: result.copySha256,
        });
        if (error) fail(delivery, error);
      }
      return [];
    } finally {
      made();
    }
  }

  /**
   * Rename the live ones of `deliveries` held by the copier into place, drop
   * the copies of the others, and flush the folders of those renamed.
   */
  async finish(deliveries: LocalDelivery[]): Promise<Finished> {
    const finished: Finished = { renamed: new Map(), folders: new Map(), lost: [] };
    await Promise.all([...this.#byHolder(deliveries)].map(async ([thread, held]) => {
      const renaming = held.filter((delivery) => delivery.error === null);
      const byKey = new Map(renaming.map((delivery) => [delivery.copierKey!, delivery]));
      const order: FinishOrder = {
        renames: renaming.map((delivery) => ({
          key: delivery.copierKey!,
          finalPath: delivery.finalPath,
          noReplace: delivery.item.noReplace === true,
        })),
        drops: held.filter((delivery) => delivery.error !== null).map((d) => d.copierKey!),
        folders: [...new Set(renaming.map((delivery) => dirname(delivery.finalPath)))],
      };
      this.#release(held);
      const reply = await thread.ask({ kind: "finish", id: 0, order }).catch((error) => error);
      if (reply.kind !== "finish") {
        // Not renamed (a thread that stopped closed its copies: leftovers the next start sweeps).
        const error = reply instanceof Error ? reply : faultError(reply.fault ?? null);
        for (const delivery of renaming) finished.renamed.set(delivery, error);
        return;
      }
      for (const { key, fault } of reply.renamed) {
        const delivery = byKey.get(key)!;
        finished.renamed.set(delivery, fault && faultError(fault, delivery.tempPath));
        if (fault?.stage === "replaced" || fault?.stage === "vanished") {
          finished.lost.push(delivery);
        }
      }
      for (const { folder, fault } of reply.folders) {
        // A folder two threads flushed counts as flushed only if both did.
        if (finished.folders.get(folder) == null) {
          finished.folders.set(folder, fault && faultError(fault));
        }
      }
    }));
    return finished;
  }

  /** Drop the copies held for `deliveries` (a batch ending early), once made if being made. */
  async drop(deliveries: LocalDelivery[]): Promise<void> {
    await Promise.all(deliveries.map((delivery) => this.#putting.get(delivery)));
    await Promise.all([...this.#byHolder(deliveries)].map(([thread, held]) => {
      const drops = held.map((delivery) => delivery.copierKey!);
      this.#release(held);
      // A thread that stopped holds nothing any more.
      const order = { renames: [], drops, folders: [] };
      return thread.ask({ kind: "finish", id: 0, order }).catch(() => {});
    }));
  }

  /** Stop the copier's threads (started again when needed). */
  close(): void {
    for (const thread of this.#threads) thread.close();
    this.#holder.clear();
  }

  /** The deliveries the copier holds a copy of, by the thread holding it. */
  #byHolder(deliveries: LocalDelivery[]): Map<CopierThread, LocalDelivery[]> {
    const threads = new Map<CopierThread, LocalDelivery[]>();
    for (const delivery of deliveries) {
      const thread = delivery.copierKey == null ? undefined : this.#holder.get(delivery.copierKey);
      if (thread === undefined) continue;
      threads.set(thread, [...threads.get(thread) ?? [], delivery]);
    }
    return threads;
  }

  #release(held: LocalDelivery[]): void {
    for (const delivery of held) {
      this.#holder.delete(delivery.copierKey!);
      delivery.copierKey = null;
    }
  }
}

/** One thread of the copier: started when first asked, stopped after a while idle. */
class CopierThread {
  #worker: Promise<Worker> | null = null;
  #pending = new Map<number, (reply: CopierReply) => void>();
  #nextId = 1;
  #idle: ReturnType<typeof setTimeout> | undefined;
  #module: URL;
  /** Told why, when the thread could not start. */
  #cannotStart: (reason: string) => void;
  #idleMs: number;
  /** Whether the thread holds copies not yet renamed or dropped: then it is not idle. */
  #holds: () => boolean;

  constructor(
    module: URL,
    cannotStart: (reason: string) => void,
    idleMs: number,
    holds: () => boolean,
  ) {
    this.#module = module;
    this.#cannotStart = cannotStart;
    this.#idleMs = idleMs;
    this.#holds = holds;
  }

  /** Whether the thread is started (or starting). */
  get running(): boolean {
    return this.#worker !== null;
  }

  /** Send `request`; resolves to its answer (`failed` when the thread stops meanwhile). */
  async ask(request: CopierRequest): Promise<CopierReply> {
    clearTimeout(this.#idle);
    const worker = await (this.#worker ??= this.#start());
    const id = this.#nextId++;
    const answered = new Promise<CopierReply>((resolve) => this.#pending.set(id, resolve));
    worker.postMessage({ ...request, id });
    try {
      return await answered;
    } finally {
      if (this.#pending.size === 0 && this.#worker !== null && !this.#holds()) {
        this.#idle = setTimeout(() => this.close(), this.#idleMs);
        Deno.unrefTimer(this.#idle);
      }
    }
  }

  /** Not stopped for being idle until asked again (it holds copies). */
  keep(): void {
    clearTimeout(this.#idle);
  }

  /** Stop the thread: what it holds is closed with it. */
  close(reason = "stopped"): void {
    clearTimeout(this.#idle);
    const worker = this.#worker;
    this.#worker = null;
    void worker?.then((worker) => worker.terminate(), () => {});
    const fault: CopyFault = { name: "Error", message: reason, stage: "lost" };
    for (const answer of this.#pending.values()) answer({ kind: "failed", id: 0, fault });
    this.#pending.clear();
  }

  #start(): Promise<Worker> {
    const worker = new Worker(this.#module, {
      type: "module",
      deno: {
        permissions: {
          read: "inherit",
          write: "inherit",
          net: false,
          env: false,
          run: false,
          sys: false,
          ffi: false,
          import: false,
        },
      },
    } as WorkerOptions);
    let started = false;
    return new Promise<Worker>((resolve, reject) => {
      worker.onmessage = () => {
        started = true;
        worker.onmessage = (event: MessageEvent<CopierReply>) => {
          const answer = this.#pending.get(event.data.id);
          this.#pending.delete(event.data.id);
          answer?.(event.data);
        };
        resolve(worker);
      };
      worker.onerror = (event) => {
        event.preventDefault();
        const reason = event.message ?? "it stopped";
        if (!started) this.#cannotStart(reason);
        worker.terminate();
        this.close(reason);
        reject(new Error(`the copier thread stopped: ${reason}`));
      };
    });
  }
}

/** The error a {@linkcode CopyFault} stands for; `tempPath` names the copy before its rename. */
function faultError(fault: CopyFault | null, tempPath = ""): Error {
  if (fault === null) return new TransferError("the copier answered something else", "retry");
  if (fault.stage === "replaced") return replacedError(tempPath);
  if (fault.stage === "vanished") return new CopyVanished(tempPath);
  if (fault.stage === "taken") return new NameTaken(fault.taken!.path, fault.taken!.file);
  if (fault.stage === "transfer") {
    const cause = fault.cause && systemError(fault.cause);
    return new TransferError(fault.message, fault.kind ?? "retry", { cause });
  }
  if (fault.stage === "lost") {
    return new TransferError(`the copier thread did not copy it (${fault.message})`, "retry");
  }
  return systemError(fault);
}
