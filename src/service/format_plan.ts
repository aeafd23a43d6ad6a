/**
 * Show a service plan without carrying it out (`--print`): the checks, each
 * file with its full contents, each folder and command, in the order they
 * would happen.
 *
 * @module
 */
import { displayArgv } from "./escape.ts";
import type { ServicePlan } from "./plan.ts";

/**
 * Describe every check and step of `plan`.
 *
 * @param plan the plan
 * @returns lines for standard output
 */
export function formatPlan(plan: ServicePlan): string[] {
  const lines: string[] = [];
  for (const check of plan.checks) {
    lines.push(
      check.kind === "exists"
        ? `would check: ${check.path} exists`
        : `would check: ${displayArgv(check.argv)} succeeds`,
    );
  }
  for (const step of plan.steps) {
    if (step.kind === "write") {
      const encoding = step.file.encoding === "utf-16le-bom" ? "UTF-16LE with BOM" : "UTF-8";
      lines.push(`would write ${step.file.path} (${encoding}):`);
      lines.push("-----BEGIN FILE-----");
      lines.push(...step.file.contents.replace(/\n$/, "").split("\n"));
      lines.push("-----END FILE-----");
    } else if (step.kind === "mkdir") {
      const owner = step.owner ? ` (owned by uid ${step.owner.uid}, gid ${step.owner.gid})` : "";
      lines.push(`would create ${step.path} if missing${owner}`);
    } else if (step.kind === "remove") {
      lines.push(`would remove ${step.path}`);
    } else {
      const { argv, fallback, mayFail } = step.command;
      let line = `would run: ${displayArgv(argv)}`;
      if (fallback) line += `   (if it fails: ${displayArgv(fallback)})`;
      if (mayFail) line += "   (a failure is only a warning)";
      lines.push(line);
    }
  }
  return lines;
}
