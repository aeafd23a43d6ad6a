/**
 * The version, read from the one place it is written: `deno.json`.
 *
 * @module
 */
import denoJson from "../deno.json" with { type: "json" };

/** The product version, e.g. `0.1.0`. */
export const VERSION: string = denoJson.version;
