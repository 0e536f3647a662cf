/**
 * The first build on a fresh machine: `portacluster build` of the bundled example into an empty cache and
 * out dir (nothing reused: both bootstraps, every pack), against the golden image's mmdebstrap timed as its
 * own step inside that same build (goal: total ≤ 1.3× it). Prints every step's time, so a miss shows
 * what stands in the way. Downloads every package from the example's mirror: minutes, and a network.
 * The host packages (`scripts/setup.sh`, run by `npm run build:image` first) are not part of the figure:
 * they are installed here already, and apt's time on a fresh machine depends on its mirror.
 * Usage: node --import tsx bench/first-build.ts [--keep]   (--keep: leave the temp cache for a look)
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MMDEBSTRAP_STEP } from '../build/image/debian.ts';
import { recordRatio } from './lib/ratios.ts';

const GOAL = 1.3;
const REPO = fileURLToPath(new URL('../', import.meta.url));
const CONFIG = join(REPO, 'examples/portacluster.config.ts');

export interface StepTime {
  name: string;
  seconds: number;
}

/** The `    NAME: 12.3 s` lines a build's logger prints when a step ends (build/lib/log.ts), in order. */
export function parseStepTimes(log: string): StepTime[] {
  const out: StepTime[] = [];
  for (const line of log.split('\n')) {
    const m = /^ {4}(.+): (\d+(?:\.\d+)?) s$/.exec(line);
    if (m) out.push({ name: m[1]!, seconds: Number(m[2]) });
  }
  return out;
}

async function coldBuild(dir: string): Promise<{ seconds: number; log: string; code: number | null }> {
  const argv = ['--import', 'tsx', join(REPO, 'build/cli/main.ts'), 'build', '--config', CONFIG, '--out', join(dir, 'dist'), '--cache', join(dir, 'cache')];
  const started = performance.now();
  const child = spawn(process.execPath, argv, { cwd: REPO, stdio: ['ignore', 'inherit', 'pipe'] });
  let log = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    log += chunk;
    process.stderr.write(chunk);
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { seconds: (performance.now() - started) / 1000, log, code };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = await mkdtemp(join(tmpdir(), 'pc-bench-first-build-'));
  // The served tree inside must be readable by nginx later on: no 0700 ancestor.
  await chmod(dir, 0o755);
  try {
    const { seconds, log, code } = await coldBuild(dir);
    if (code !== 0) {
      console.error(`first-build: the build exited ${code}`);
      process.exitCode = 1;
    } else {
      const steps = parseStepTimes(log);
      const golden = steps.find((s) => s.name === MMDEBSTRAP_STEP);
      console.log('| step (nested and beside ones included) | s |\n|---|---:|');
      for (const s of steps) console.log(`| ${s.name} | ${s.seconds.toFixed(1)} |`);
      console.log(`| whole build (process start → exit) | ${seconds.toFixed(1)} |`);
      if (!golden) {
        console.error(`first-build: no "${MMDEBSTRAP_STEP}" step in the build's log: cannot form the ratio`);
        process.exitCode = 1;
      } else {
        recordRatio({
          figure: 'first build vs the golden mmdebstrap of the same build',
          value: seconds / golden.seconds,
          goal: { op: '<=', value: GOAL },
          detail: `build ${seconds.toFixed(1)} s / mmdebstrap ${golden.seconds.toFixed(1)} s (empty cache; host packages already installed)`,
        });
      }
    }
  } finally {
    if (!process.argv.includes('--keep')) await rm(dir, { recursive: true, force: true });
    else console.error(`first-build: kept ${dir}`);
  }
}
