/**
 * `npm run bench [name…]`: runs each benchmark in bench/ as its own process (so one's memory and caches do
 * not colour the next) and prints their reports, then one table of every goal as a ratio to a floor measured
 * in the same run (bench/lib/ratios.ts), saying which ratio misses its goal. Never pass/fail on times:
 * the exit status says only whether every benchmark ran.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRatios, ratioTable, RATIOS_ENV } from './lib/ratios.ts';

const here = dirname(fileURLToPath(import.meta.url));
const all = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .map((f) => basename(f, '.ts'))
  .sort();
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; available: ${all.join(', ')}`);
  process.exit(2);
}
let failed = 0;
const scratch = mkdtempSync(join(tmpdir(), 'pc-bench-ratios-'));
const ratiosFile = join(scratch, 'ratios.jsonl');
try {
  for (const name of wanted.length ? wanted : all) {
    console.log(`\n## ${name}`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, `${name}.ts`)], { stdio: 'inherit', env: { ...process.env, [RATIOS_ENV]: ratiosFile } });
    if (r.status !== 0) {
      failed++;
      console.log(`${name}: exited with ${r.status ?? r.signal}`);
    }
  }
  let text = '';
  try {
    text = readFileSync(ratiosFile, 'utf8');
  } catch {
    // No benchmark recorded a ratio.
  }
  console.log('\n## the goals, each a ratio to a floor measured in the same run\n');
  for (const line of ratioTable(parseRatios(text))) console.log(line);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
