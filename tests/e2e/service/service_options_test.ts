/**
 * `install-service` through the real CLI: `-c/--config` given twice is refused (commander kept the
 * last one, and the service would have read a config the other `-c` did not name), and a service
 * file printed for another OS (`--os … --print`) comes with the paths in it that are this
 * machine's, to be changed on the machine it is copied to.
 */
import assert from "node:assert/strict";
import { join, posix, win32 } from "node:path";
import { REPO_ROOT, runCli } from "../../helpers/cli.ts";

/** Keep deno's cache where it is when the tests move HOME. */
const DENO_DIR = Deno.env.get("DENO_DIR") ??
  join(Deno.env.get("XDG_CACHE_HOME") ?? join(Deno.env.get("HOME") ?? "/root", ".cache"), "deno");

/** A temp home with two valid configs in a folder whose name has a space, and a `--root`. */
async function withHome(
  body: (made: {
    home: string;
    config: string;
    other: string;
    root: string;
    env: Record<string, string>;
  }) => Promise<void>,
): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "it-svc-opt-" });
  const root = await Deno.makeTempDir({ prefix: "it-svc-opt-root-" });
  try {
    const dir = join(home, "my configs $(x)");
    await Deno.mkdir(join(home, "watch"), { recursive: true });
    await Deno.mkdir(dir);
    const text = [
      `watch_path: ${JSON.stringify(join(home, "watch"))}`,
      "transfer_method: local",
      `remote_base_path: ${JSON.stringify(join(home, "dest"))}`,
      `log_file: ${JSON.stringify(join(home, "logs", "image_transfer.log"))}`,
      "",
    ].join("\n");
    const config = join(dir, "config.yaml");
    const other = join(dir, "other config.yaml");
    await Deno.writeTextFile(config, text);
    await Deno.writeTextFile(other, text);
    const env = { HOME: home, USER: "observer", SUDO_USER: "", XDG_CONFIG_HOME: "", DENO_DIR };
    await body({ home, config, other, root, env });
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("install-service: -c/--config given twice is refused (exit 2), naming both, and nothing is written", () =>
  withHome(async ({ config, other, root, env }) => {
    const tail = ["--user", "--root", root, "--os", "linux"];
    const ways = [
      ["-c", config, "install-service", "-c", other, ...tail],
      ["install-service", "--config", config, "-c", other, ...tail],
      ["-c", config, "--config", other, "install-service", ...tail],
      ["install-service", `--config=${config}`, `--config=${other}`, ...tail],
    ];
    for (const args of ways) {
      const out = await runCli(args, { env });
      assert.equal(out.code, 2, `${args.join(" ")}:\n${out.stdout}${out.stderr}`);
      assert.match(out.stderr, /-c\/--config is given twice/);
      assert.ok(out.stderr.includes("other config.yaml"), out.stderr);
      assert.ok(out.stderr.includes("my configs $(x)/config.yaml"), out.stderr);
      assert.deepEqual([...Deno.readDirSync(root)], [], "nothing written");
    }
    // Once is fine.
    const once = await runCli(["-c", config, "install-service", ...tail], { env });
    assert.equal(once.code, 0, once.stderr);
  }));

/** The OS's name in the warning, and how its files write a path. */
const OSES = {
  linux: { name: "Linux", path: posix },
  darwin: { name: "macOS", path: posix },
  windows: { name: "Windows", path: win32 },
} as const;

for (const os of ["linux", "darwin", "windows"] as const) {
  Deno.test(`install-service --os ${os} --print: a file for another OS names the paths in it that are this machine's; for this OS nothing is said`, () =>
    withHome(async ({ home, config, env }) => {
      const out = await runCli(["-c", config, "install-service", "--os", os, "--print", "--user"], {
        env,
      });
      assert.equal(out.code, 0, out.stderr);
      const warning = out.stderr.split("\n").find((line) => line.includes(" made on "));
      if (os === Deno.build.os) {
        assert.equal(warning, undefined, out.stderr);
        return;
      }
      const here = OSES[Deno.build.os as keyof typeof OSES].name;
      assert.ok(warning !== undefined && warning.startsWith("warning: "), out.stderr);
      assert.ok(warning.includes(`for ${OSES[os].name}, made on ${here}`), warning);
      assert.match(warning, /change them/);
      // Each path it names, as that OS writes it, and each is in the file printed.
      const listed = new Map(
        out.stderr.split("\n").flatMap((line) => {
          const m = /^ {2}(the [^:]+): (.+)$/.exec(line);
          return m ? [[m[1], m[2]] as const] : [];
        }),
      );
      const path = OSES[os].path;
      const expected = new Map([
        ["the config file", path.normalize(config)],
        ["the home folder, and the paths below it", path.normalize(home)],
      ]);
      const program = [...listed.keys()].find((what) => what.endsWith(" program"));
      assert.ok(program !== undefined, out.stderr);
      expected.set(program, path.normalize(Deno.execPath()));
      if (program === "the deno program") {
        expected.set("the source checkout", path.normalize(REPO_ROOT));
      }
      assert.deepEqual(listed, expected, out.stderr);
      const file = out.stdout.slice(
        out.stdout.indexOf("-----BEGIN FILE-----"),
        out.stdout.indexOf("-----END FILE-----"),
      );
      for (const [what, shown] of listed) {
        assert.ok(file.includes(shown), `${what} ${shown} in the file:\n${file}`);
      }
    }));
}
