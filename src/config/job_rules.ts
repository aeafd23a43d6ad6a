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
  const ssh = job.transfer_method === "scp" || job.transfer_method === "rsync";
  const host = job.remote_host.trim();
  if (ssh && host !== "" && (host.startsWith("-") || /[\s@/\\'"`$;&|<>]/.test(host))) {
    ctx.addIssue({
      code: "custom",
      path: ["remote_host"],
      message:
        "expected a host name, address or ~/.ssh/config alias (the user goes in remote_user)",
    });
  }
  const user = job.remote_user.trim();
  if (ssh && (user.startsWith("-") || /[\s@/\\:'"`$;&|<>]/.test(user))) {
    ctx.addIssue({ code: "custom", path: ["remote_user"], message: "expected a plain login name" });
  }
  for (const [index, option] of job.rsync_options.entries()) {
    const why = refusedRsyncOption(option);
    if (why) ctx.addIssue({ code: "custom", path: ["rsync_options", index], message: why });
  }
}

/**
 * Why an rsync option is refused, or `null`: one that removes files, sends
 * nothing, or changes which files go where. The daemon sends its own list of
 * files into its own upload folder, and a source leaves only by
 * `after_transfer`, once it arrived verified.
 */
export function refusedRsyncOption(option: string): string | null {
  const name = option.split("=")[0];
  const long = /^--(?:remove-(?:source|sent)-files|del|delete(?:-.*)?)$/.test(name)
    ? "removes files"
    : /^--(?:dry-run|list-only|only-write-batch|read-batch)$/.test(name)
    ? "sends nothing"
    : /^--(?:files-from|from0|relative|no-relative|no-implied-dirs)$/.test(name)
    ? "changes which files go where"
    : null;
  // Short options together (-avz), up to one that takes a value (-B1024): -n sends nothing,
  // -R and -0 change the list.
  const flags = /^-[A-Za-z0-9]+$/.test(option) ? option.slice(1).split(/[BTMfe]/)[0] : "";
  const short = flags.includes("n")
    ? "sends nothing"
    : /[R0]/.test(flags)
    ? "changes which files go where"
    : null;
  const what = long ?? short;
  if (what === null) return null;
  return `${option} ${what}, and image-transfer decides that (it sends its own list of files ` +
    "into its own upload folder; a source leaves only by after_transfer, once it arrived " +
    "verified); remove it";
}
