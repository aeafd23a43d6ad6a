/**
 * `run`: the daemon.
 *
 * @module
 */
import { Command } from "commander";

/** The `run` command (placeholder). */
export function runCommand(): Command {
  return new Command("run").description("watch and transfer (the daemon; default command)")
    .option("--once", "scan, transfer what is complete, then exit")
    .option("--dry-run", "print what would be transferred where; change nothing");
}
