/**
 * The benchmark report: one table row per target, details per benchmark, and
 * the markdown file that holds them.
 *
 * @module
 */

/** One row of the results table. */
export interface ResultRow {
  benchmark: string;
  daemon: string;
  baseline: string;
  ratio: string;
  target: string;
  /** Whether the target is met; `null` when it could not be judged. */
  met: boolean | null;
}

/** What one benchmark contributes to the report. */
export interface Section {
  title: string;
  rows: ResultRow[];
  /** What exactly is measured (one paragraph of markdown). */
  measured: string;
  /** Per-run values and side observations (markdown lines). */
  details: string[];
}

/** Machine and tool versions shown in the header. */
export interface MachineInfo {
  date: string;
  cpu: string;
  cores: number;
  memory: string;
  kernel: string;
  deno: string;
  ssh: string;
  rsync: string;
  /** Negotiated key exchange and cipher by default, and the big-file cipher. */
  cipher: string;
  loadAtStart: string;
  /** The code measured: commit, and uncommitted changes if any. */
  code: string;
}

/** The results table as markdown. */
export function renderTable(sections: Section[]): string {
  const lines = [
    "| benchmark | daemon median (min–max) | baseline median (min–max) | ratio | target | met? |",
    "|---|---|---|---|---|---|",
  ];
  for (const section of sections) {
    for (const row of section.rows) {
      const met = row.target === "—" ? "—" : row.met === null ? "?" : row.met ? "yes" : "**no**";
      lines.push(
        `| ${row.benchmark} | ${row.daemon} | ${row.baseline} | ${row.ratio} | ${row.target} | ${met} |`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

/** The whole report as markdown. */
export function renderReport(
  machine: MachineInfo,
  sections: Section[],
  totals: { elapsedS: number; loadAtEnd: string; notes: string[] },
): string {
  const out = [
    "# Benchmark: the daemon against the raw tools",
    "",
    "Produced by `deno task bench` (bench/bench.ts). Every daemon figure is measured in the same",
    "run as its baseline, against a private sshd on 127.0.0.1 (login user `itx-test`), so the",
    "ratios hold on a noisy machine even when absolute times move.",
    "",
    `- Date: ${machine.date}; total run time ${totals.elapsedS.toFixed(0)} s`,
    `- Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memory}, Linux ${machine.kernel}`,
    `- Load average at start / end: ${machine.loadAtStart} / ${totals.loadAtEnd}`,
    `- Deno ${machine.deno}; ${machine.ssh}; ${machine.rsync}`,
    `- SSH: ${machine.cipher}`,
    `- Code: ${machine.code}`,
    "",
    renderTable(sections),
  ];
  for (const note of totals.notes) out.push(`- ${note}`);
  if (totals.notes.length > 0) out.push("");
  out.push("## What is measured", "");
  for (const section of sections) {
    out.push(`### ${section.title}`, "", section.measured, "");
    if (section.details.length > 0) out.push(...section.details.map((d) => `- ${d}`), "");
  }
  return out.join("\n");
}
