/**
 * `status`: what the ledger knows.
 *
 * @module
 */
import { Command } from "commander";

/** The `status` command (placeholder). */
export function statusCommand(): Command {
  return new Command("status").description("show counts per state, recent transfers and failures");
}
