/**
 * The example values of the config `init` writes (`watch_path: ~/data/images`, `remote_host:
 * processing-server`, `remote_base_path: /data/incoming/images`), found where a config still holds
 * them: they stand for the user's own folder, server and destination, and name none of them.
 * `config validate`, `doctor`, `run`, `install-service`, `restart` and a reload refuse a job that holds every one its
 * method uses (the template's job as written, never edited). One that holds some is left alone: the rest may be the user's own
 * (a server named so), and the other checks say what is wrong with a folder or server that is not.
 *
 * @module
 */
import { keyPlace } from "./key_lines.ts";
import { configCommand, expandPath } from "./paths.ts";
import { describeKeys } from "./reference.ts";
import type { Config, JobConfig } from "./types.ts";
import { ConfigError } from "../errors.ts";
import { pastedWord } from "../shell_words.ts";

/** What to put in place of each example value. */
const WHAT_TO_SET: Readonly<Record<string, string>> = {
  watch_path: "the folder your instrument writes its files into",
  remote_host: "the server the files go to (its host name, address, or ~/.ssh/config alias); " +
    "for a folder on this machine or a mounted share, set transfer_method: local instead and " +
    "remove remote_host",
  remote_base_path: "the folder the night folders (YYYYMMDD/) go into: on that server, or here " +
    "with transfer_method: local",
};

/** A key of one job that still holds the template's example value. */
export interface TemplateValue {
  /** Index of the job in `config.jobs`. */
  index: number;
  job: string;
  key: string;
  /** The example as the template writes it. */
  example: string;
  /** `FILE:LINE` of the key (the file alone where the line is not known). */
  place: string;
  /** What to put there instead. */
  what: string;
}

/** The keys of a job of `method` that the template fills in with an example. */
function exampleKeys(method: JobConfig["transfer_method"]): Array<[string, string]> {
  return describeKeys()
    .filter((key) => key.scope === "job" && typeof key.example === "string")
    .filter((key) => method !== "local" || key.key !== "remote_host")
    .map((key) => [key.key, key.example as string]);
}

/**
 * The template's `~/...` example as a path here, or `null` without a home folder (no `HOME`, as a
 * service may be started), where a config's own `~` paths were refused as it loaded.
 */
function expandedExample(example: string): string | null {
  try {
    return expandPath(example);
  } catch {
    return null;
  }
}

/**
 * The example values of each job of `config` that holds every one its method uses (the template's
 * job as `init` wrote it), in the order of the jobs and the keys; none where every job was edited.
 */
export function templateValues(config: Config): TemplateValue[] {
  return config.jobs.flatMap((job, index) => {
    const keys = exampleKeys(job.transfer_method);
    const values = keys.filter(([key, example]) => {
      const value = (job as unknown as Record<string, unknown>)[key];
      return value === example || (key === "watch_path" && value === expandedExample(example));
    });
    if (values.length < keys.length) return [];
    return values.map(([key, example]): TemplateValue => ({
      index,
      job: job.name,
      key,
      example,
      place: keyPlace(config.file, index, [key]),
      what: WHAT_TO_SET[key] ?? "your own value",
    }));
  });
}

/**
 * One line of a message on `value`: where it is, that it is the template's example, and what to
 * set; the job named where `config` has several.
 */
export function templateValueLine(value: TemplateValue, jobs: number): string {
  const key = jobs > 1 ? `${value.key} of job ${value.job}` : value.key;
  return `${value.place}: ${key} is still the template's example ${value.example}: ` +
    `set ${value.what}`;
}

/**
 * Refuse `config` where a job still holds every example value of the template (see
 * {@linkcode templateValues}), naming each with its line and what to set, and the command that
 * checks it again (`configOption`: `-c` as given; without it, as the file needs one, which the
 * default file does not: a reload's).
 *
 * @throws {ConfigError} listing the example values
 */
export function assertNoTemplateValues(config: Config, configOption?: string): void {
  const examples = templateValues(config);
  if (examples.length === 0) return;
  const check = configOption === undefined
    ? configCommand(config.file, "config validate")
    : `image-transfer -c ${pastedWord(configOption)} config validate`;
  throw new ConfigError(
    `Config ${config.file} still holds the example values of the template \`init\` writes, ` +
      `which name no folder or server of yours: set them, then check it with \`${check}\`\n` +
      examples.map((value) => templateValueLine(value, config.jobs.length)).join("\n"),
    { file: config.file },
  );
}
