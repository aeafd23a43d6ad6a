/**
 * Rules that tie several keys of one job together (a required key that
 * depends on another, keys that exclude each other).
 *
 * @module
 */
import type { z } from "zod";
import type { jobShape } from "./schema.ts";

/** A job's values as its keys' own schemas return them. */
type JobValues = z.output<z.ZodObject<typeof jobShape>>;

/**
 * Add an issue to `ctx` for every rule `job` breaks. Runs even when other
 * keys are wrong (see `jobSchema`), so a value is looked at only when its
 * type is right.
 */
export function checkJobRules(job: JobValues, ctx: z.RefinementCtx): void {
  if (
    job.after_transfer === "move" && typeof job.archive_path === "string" &&
    job.archive_path.trim() === ""
  ) {
    ctx.addIssue({
      code: "custom",
      path: ["archive_path"],
      message: 'required when after_transfer is "move"; give the folder sources are moved into',
    });
  }
  const removes = job.after_transfer === "delete" || job.after_transfer === "move";
  if (removes && (job.verify_transfer === false || job.verify_transfer === "none")) {
    ctx.addIssue({
      code: "custom",
      path: ["after_transfer"],
      message:
        `"${job.after_transfer}" removes sources only once they arrived verified; set verify_transfer to "checksum" or "size"`,
    });
  }
  if (
    Array.isArray(job.growing_patterns) && job.growing_patterns.length > 0 &&
    job.resume_partial_hours === 0
  ) {
    ctx.addIssue({
      code: "custom",
      path: ["growing_patterns"],
      message:
        "needs resume_partial_hours above 0: the parts sent while a file grows are kept as its resumable copy; set resume_partial_hours (e.g. 24) or remove growing_patterns",
    });
  }
  if (job.transfer_method !== "local" && job.remote_host.trim() === "") {
    ctx.addIssue({
      code: "custom",
      path: ["remote_host"],
      message:
        `required when transfer_method is "${job.transfer_method}"; give a host name or ~/.ssh/config alias, or use transfer_method: local`,
    });
  }
  if (
    job.transfer_method === "ftp" && job.ftp_password_file === null &&
    job.ftp_password_env === null && !["", "anonymous"].includes(job.remote_user)
  ) {
    ctx.addIssue({
      code: "custom",
      path: ["ftp_password_file"],
      message:
        "transfer_method ftp with a remote_user needs a password: give ftp_password_file (a file holding it) or ftp_password_env (a variable holding it)",
    });
  }
  if (job.ftp_password_file !== null && job.ftp_password_env !== null) {
    ctx.addIssue({
      code: "custom",
      path: ["ftp_password_env"],
      message: "give either ftp_password_file or ftp_password_env, not both",
    });
  }
}
