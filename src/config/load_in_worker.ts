/**
 * The daemon loads its config (at start and at each reload, a file or the
 * options of a run without one) in a worker of its own (`load_worker.ts`),
 * which ends once it answered: the YAML reader,
 * the schema and its validator (zod) are several MB of code and objects that
 * would otherwise stay in the daemon's memory for months, used once.
 *
 * @module
 */
import type { Config } from "./types.ts";
import { ConfigError, systemError } from "../errors.ts";

/** An error thrown in the worker, as plain data. */
export interface ThrownError {
  name: string;
  message: string;
  /** A `ConfigError`'s file and line. */
  file?: string;
  line?: number;
  /** The system's error code, when known. */
  code?: string;
  cause?: ThrownError;
}

/** The worker's one answer. */
export type ConfigLoadAnswer = { config: Config } | { failure: ThrownError };

/** The error `thrown` describes, of the class it was thrown as where that matters. */
function rebuilt(thrown: ThrownError): Error {
  const cause = thrown.cause === undefined ? undefined : rebuilt(thrown.cause);
  if (thrown.name === "ConfigError") {
    return new ConfigError(thrown.message, { file: thrown.file, line: thrown.line, cause });
  }
  const error = systemError(thrown);
  if (cause !== undefined) error.cause = cause;
  return error;
}

/**
 * `loadConfig(file)` run in a worker that ends with it: the same config, or
 * the same error (a {@linkcode ConfigError} with every problem). Given
 * `text`, that text is read as if from `file` (`parseConfig`).
 */
export async function loadConfigInWorker(file: string, text?: string): Promise<Config> {
  const worker = new Worker(new URL("./load_worker.ts", import.meta.url), {
    type: "module",
    // It reads the config and the modes of the files it names: nothing else.
    deno: {
      permissions: {
        read: "inherit",
        env: "inherit",
        sys: "inherit",
        import: "inherit",
        write: false,
        net: false,
        run: false,
        ffi: false,
      },
    },
  } as WorkerOptions);
  try {
    const answer = await new Promise<ConfigLoadAnswer>((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<ConfigLoadAnswer>) => resolve(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(`Cannot load config file ${file}: ${event.message}`));
      };
      worker.postMessage({ file, text });
    });
    if ("failure" in answer) throw rebuilt(answer.failure);
    return answer.config;
  } finally {
    worker.terminate();
  }
}
