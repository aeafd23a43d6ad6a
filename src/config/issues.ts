/**
 * The problems found in a config file, collected so that all of them are
 * reported at once, each as `file:line: key.path: what is wrong`, in line order.
 *
 * @module
 */
import type { Document, LineCounter } from "yaml";
import type { z } from "zod";
import { ConfigError } from "../errors.ts";
import { describeIssue, formatPath } from "./messages.ts";
import { lineOf, type Path } from "./yaml_positions.ts";

/** A parsed YAML mapping. */
export type Json = Record<string, unknown>;

/** The collected problems of one file, each with its line. */
export class Issues {
  readonly #lines: { line: number; text: string }[] = [];
  readonly #seen = new Set<string>();

  constructor(
    readonly file: string,
    readonly doc: Document,
    readonly lineCounter: LineCounter,
  ) {}

  /** Add a problem at the line of the key path (or its nearest written parent). */
  add(path: Path, message: string): void {
    this.addAtLine(this.lineOf(path), `${formatPath(path)}: ${message}`);
  }

  /** Add a problem about the key itself: the message names it. */
  addKey(path: Path, message: string): void {
    this.addAtLine(this.lineOf(path), message);
  }

  /** Add a problem at a known line. */
  addAtLine(line: number, text: string): void {
    const rendered = `${this.file}:${line}: ${text}`;
    if (this.#seen.has(rendered)) return;
    this.#seen.add(rendered);
    this.#lines.push({ line, text: rendered });
  }

  /**
   * Add one zod issue about the mapping at `prefix`, as written in the file
   * (`written`); `key` is the first path segment as written there.
   */
  addZod(issue: z.core.$ZodIssue, prefix: Path, written: Json, key = issue.path[0]): void {
    const path = [key, ...issue.path.slice(1)].filter((p): p is string | number =>
      typeof p === "string" || typeof p === "number"
    );
    this.add([...prefix, ...path], describeIssue(issue, path, valueAt(written, path)));
  }

  /** Throw one {@linkcode ConfigError} listing every problem, in line order, if there are any. */
  throwIfAny(): void {
    if (this.#lines.length === 0) return;
    const sorted = [...this.#lines].sort((a, b) => a.line - b.line);
    throw new ConfigError(sorted.map((l) => l.text).join("\n"), {
      file: this.file,
      line: sorted[0].line,
    });
  }

  /** 1-based line of the key at `path`, or of its nearest written parent. */
  lineOf(path: Path): number {
    return lineOf(this.doc, this.lineCounter, path);
  }
}

/** The value at `path` inside `root`, or `undefined`. */
function valueAt(root: unknown, path: Path): unknown {
  let current = root;
  for (const segment of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string | number, unknown>)[segment];
  }
  return current;
}

/** Whether `value` is a mapping (not a list, not empty). */
export function isPlainObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
