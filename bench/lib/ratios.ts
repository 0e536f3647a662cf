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

/** The table run.ts prints: every ratio with its goal, the misses named. */
export function ratioTable(ratios: readonly Ratio[]): string[] {
  const lines = ['| figure | ratio | goal | | what |', '|---|---|---|---|---|'];
  for (const r of ratios) {
    lines.push(`| ${r.figure} | ${r.value.toFixed(2)}× | ${r.goal.op === '<=' ? '≤' : '≥'} ${r.goal.value.toFixed(2)}× | ${meets(r) ? 'met' : '**missed**'} | ${r.detail} |`);
  }
  const missed = ratios.filter((r) => !meets(r));
  lines.push('', missed.length ? `${missed.length} of ${ratios.length} ratios miss their goal: ${missed.map((r) => r.figure).join('; ')}` : `all ${ratios.length} ratios meet their goals`);
  return lines;
}
