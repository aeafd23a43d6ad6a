/**
 * The program launcher's worker (see `launcher.ts`): runs each requested
 * program with {@linkcode runHere} under the worker's own permissions (only
 * the programs named at its start) and sends back its output and end.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { CommandError } from "../errors.ts";
import { killHere, runHere } from "./run_here.ts";
import type { LauncherReply, LauncherRequest } from "./launcher.ts";

/** The abort of each run under way, by request id. */
const running = new Map<number, AbortController>();

/** The standard input of each run started ahead of need, until its `stdin` request comes. */
const waitingForInput = new Map<number, (parts: Uint8Array[] | null) => void>();

function reply(message: LauncherReply): void {
  self.postMessage(message);
}

async function run(request: Extract<LauncherRequest, { kind: "run" }>): Promise<void> {
  const { id } = request;
  const abort = new AbortController();
  running.set(id, abort);
  const stdinLater = request.stdinLater
    ? new Promise<Uint8Array[] | null>((resolve) => waitingForInput.set(id, resolve))
    : undefined;
  try {
    const result = await runHere(request.argv, {
      ...request.options,
      stdinLater,
      signal: abort.signal,
      onStdout: request.streamStdout
        ? (chunk) => reply({ kind: "stdout", id, chunk: chunk.slice() })
        : undefined,
    });
    reply({ kind: "ran", id, result });
  } catch (error) {
    if (abort.signal.aborted) {
      reply({ kind: "aborted", id });
    } else if (error instanceof CommandError) {
      const cause = error.cause instanceof Error
        ? { name: error.cause.name, message: error.cause.message }
        : null;
      reply({ kind: "failed", id, message: error.message, run: error.run, cause });
    } else {
      const message = error instanceof Error ? error.message : String(error);
      const run = {
        argv: request.argv,
        code: null,
        signal: null,
        timedOut: false,
        stderr: "",
        durationMs: 0,
      };
      reply({
        kind: "failed",
        id,
        message: `Cannot run ${request.argv[0]}: ${message}`,
        run,
        cause: null,
      });
    }
  } finally {
    running.delete(id);
    waitingForInput.delete(id);
  }
}

self.onmessage = (event: MessageEvent<LauncherRequest>) => {
  const request = event.data;
  switch (request.kind) {
    case "run":
      void run(request);
      break;
    case "stdin":
      waitingForInput.get(request.id)?.(request.parts);
      waitingForInput.delete(request.id);
      break;
    case "abort":
      running.get(request.id)?.abort();
      break;
    case "kill":
      void killHere(request.pid).then((sent) => reply({ kind: "killed", id: request.id, sent }));
      break;
  }
};

reply({ kind: "ready", id: 0 });
