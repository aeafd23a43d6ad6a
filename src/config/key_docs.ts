/**
 * Every config key as documented in `init`'s template and the README's
 * reference: description, default or example, scope, read from the schema.
 *
 * @module
 */
import type { z } from "zod";
import { OLD_KEY_NAMES } from "./key_forms.ts";
import { keyMeta } from "./key_meta.ts";
import { daemonShape, jobShape } from "./schema.ts";

/** One documented key, for the generated config and the README reference. */
export interface KeyDoc {
  key: string;
  description: string;
  /** For a key a new config must fill in: a value to show. */
  example?: unknown;
  /** The default as it would be written in YAML, or `undefined` when required. */
  defaultValue: unknown;
  required: boolean;
  scope: "job" | "daemon";
}

/**
 * List every key with its description and default, in schema order. A
 * renamed key's description ends with its old name.
 */
export function describeKeys(): KeyDoc[] {
  const out: KeyDoc[] = [];
  const add = (shape: Record<string, z.ZodType>, scope: "job" | "daemon") => {
    for (const [key, schema] of Object.entries(shape)) {
      const meta = keyMeta(schema);
      const parsed = meta.writtenDefault === undefined
        ? schema.safeParse(undefined)
        : { success: true, data: meta.writtenDefault };
      const formerly = [...OLD_KEY_NAMES].filter(([, current]) => current === key)
        .map(([old]) => ` The old name \`${old}\` is still accepted.`);
      out.push({
        key,
        description: meta.description + formerly.join(""),
        example: meta.example,
        defaultValue: parsed.success ? parsed.data : undefined,
        required: !parsed.success,
        scope,
      });
    }
  };
  add(jobShape, "job");
  add(daemonShape, "daemon");
  return out;
}
