/**
 * The goals as ratios: each benchmark records a figure as a ratio to a floor it measured in the
 * same run, with its goal; `npm run bench` (bench/run.ts) collects them from every benchmark and prints one
 * table, saying which ratio misses its goal. Standalone, a benchmark prints its own lines only.
 */
import { appendFileSync } from 'node:fs';

/** Where run.ts asks the benchmarks to append their ratios (one JSON object per line). */
export const RATIOS_ENV = 'PORTACLUSTER_BENCH_RATIOS';

export interface Ratio {
  figure: string;
  value: number;
  /** `<=`: the ratio must not exceed goal (times); `>=`: it must reach it (throughputs). */
  goal: { op: '<=' | '>='; value: number };
  /** What the ratio is of: "installer 28.1 s / floor 19.0 s". */
  detail: string;
}

export function meets(r: Ratio): boolean {
  return r.goal.op === '<=' ? r.value <= r.goal.value : r.value >= r.goal.value;
}

export function formatRatio(r: Ratio): string {
  return `${r.figure}: ${r.value.toFixed(2)}× (goal ${r.goal.op === '<=' ? '≤' : '≥'} ${r.goal.value.toFixed(2)}×) ${meets(r) ? 'met' : 'MISSED'} — ${r.detail}`;
}

/** Prints the ratio and hands it to run.ts's table. */
export function recordRatio(r: Ratio): void {
  console.log(formatRatio(r));
  const file = process.env[RATIOS_ENV];
  if (file) appendFileSync(file, `${JSON.stringify(r)}\n`);
}

export function parseRatios(text: string): Ratio[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Ratio);
}

/**
 * Every goal of the speed issue (issue 15) and of the scale-out issue (17), and where each is measured: a goal no benchmark recorded in this
 * run is listed as not measured, never silently left out.
 */
export const GOALS: ReadonlyArray<{ figure: string; by: string }> = [
  { figure: 'installer vs its floor, image mode, BIOS', by: 'loop' },
  { figure: 'installer vs its floor, tarball mode, BIOS', by: 'loop' },
  { figure: 'installer vs its floor, image mode, UEFI', by: 'loop' },
  { figure: 'installer vs its floor, tarball mode, UEFI', by: 'loop' },
  { figure: 'whole loop, iPXE + image vs pxelinux + tarball, BIOS', by: 'loop' },
  { figure: 'whole loop, iPXE + image vs pxelinux + tarball, UEFI', by: 'loop' },
  { figure: 'golden tarball pack vs tar | zstd -T0 (throughput)', by: 'pack' },
  { figure: 'download() vs curl | tee file | sha256sum (throughput)', by: 'download' },
  // Issue 17: image delivery through boot servers (bench/scale.ts).
  { figure: 'boot servers: node0 egress ÷ (servers × image)', by: 'scale' },
  { figure: "boot servers: time ÷ their rack links' line-rate floor", by: 'scale' },
  // The issue gives these two as absolute figures: each is a ratio to its goal, said so in its name.
  { figure: 'installer environment: qemu start → autorun (direct) vs the 9 s goal', by: 'installer-env' },
  { figure: 'installer environment: initramfs size vs the 25 MiB goal', by: 'installer-env' },
  { figure: 'first build vs the golden mmdebstrap of the same build', by: 'first-build' },
];

/** The table run.ts prints: every ratio with its goal, the misses named, the goals not measured listed. */
export function ratioTable(ratios: readonly Ratio[]): string[] {
  // A markdown table: a | inside a cell (tar | zstd) would start a new column.
  const cell = (t: string) => t.replace(/\|/g, '\\|');
  const lines = ['| figure | ratio | goal | | what |', '|---|---|---|---|---|'];
  for (const r of ratios) {
    lines.push(`| ${cell(r.figure)} | ${r.value.toFixed(2)}× | ${r.goal.op === '<=' ? '≤' : '≥'} ${r.goal.value.toFixed(2)}× | ${meets(r) ? 'met' : '**missed**'} | ${cell(r.detail)} |`);
  }
  const seen = new Set(ratios.map((r) => r.figure));
  for (const g of GOALS.filter((x) => !seen.has(x.figure))) {
    lines.push(`| ${cell(g.figure)} | – | | not measured | run bench/${g.by}.ts${g.by === 'loop' ? ' (BENCH_FIRMWARE/BENCH_LOOP may have left it out)' : ''} |`);
  }
  const missed = ratios.filter((r) => !meets(r));
  lines.push('', missed.length ? `${missed.length} of ${ratios.length} measured ratios miss their goal: ${missed.map((r) => r.figure).join('; ')}` : `all ${ratios.length} measured ratios meet their goals`);
  return lines;
}
