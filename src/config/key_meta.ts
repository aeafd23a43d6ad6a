/**
 * The documentation attached to each key of the configuration schema
 * (`schema.ts`): its one-line description, and an example or a written
 * default, as `init`'s template, the README and messages show them.
 *
 * @module
 */
import type { z } from "zod";

/** How a key is documented in `init`'s template, the README and messages. */
export interface KeyMeta {
  /** One line on what the key does. */
  description: string;
  /** For a key a new config must fill in: a value to show. */
  example?: unknown;
  /** For a default computed when the config loads: that default as a user writes it. */
  writtenDefault?: string;
}

/** Attach the description (and example or written default) of a key. */
export function doc<T extends z.ZodType>(
  schema: T,
  description: string,
  more: Omit<KeyMeta, "description"> = {},
): T {
  return schema.meta({ description, ...more });
}

/** The documentation of `schema` (see {@linkcode doc}). */
export function keyMeta(schema: z.ZodType): KeyMeta {
  return { description: "", ...(schema.meta() as Partial<KeyMeta> | undefined) };
}
