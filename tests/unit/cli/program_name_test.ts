/**
 * Started as the old tool's service program (`image-transfer-service`), the
 * binary takes that program's `--install`, `--uninstall` and `--status`.
 * The compiled binary under that name is run by `scripts/smoke.ts` in the
 * release workflow.
 */
import assert from "node:assert/strict";
import { argsForProgramName } from "../../../src/cli/program.ts";
import { UsageError } from "../../../src/errors.ts";

Deno.test("argsForProgramName: the old service program's flags become commands; other names change nothing", () => {
  const cases: Array<[string, string[], string[]]> = [
    ["/usr/local/bin/image-transfer-service", ["--install"], ["install-service"]],
    ["C:\\Tools\\image-transfer-service.exe", ["--uninstall"], ["uninstall-service"]],
    ["./image-transfer-service", ["-c", "a.yaml", "--status"], ["status", "-c", "a.yaml"]],
    ["./image-transfer-service", ["--install", "--print", "--user"], [
      "install-service",
      "--print",
      "--user",
    ]],
    ["./image-transfer-service", ["--help"], ["--help"]],
    ["/usr/local/bin/image-transfer", ["--install"], ["--install"]],
    ["/usr/bin/deno", ["run", "--once"], ["run", "--once"]],
    ["", ["status"], ["status"]],
  ];
  for (const [path, args, expected] of cases) {
    assert.deepEqual(argsForProgramName(path, args), expected, `${path} ${args.join(" ")}`);
  }
  assert.throws(
    () => argsForProgramName("/opt/image-transfer-service", ["run"]),
    (error: unknown) =>
      error instanceof UsageError && /takes --install, --uninstall or --status/.test(error.message),
  );
});
