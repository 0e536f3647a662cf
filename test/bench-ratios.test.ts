/**
 * npm run bench's closing table (bench/lib/ratios.ts): each goal a ratio to a floor of the same run, a miss
 * said as such, a goal no benchmark measured listed as not measured. Formatting only: no timing here.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GOALS, meets, parseRatios, ratioTable, type Ratio } from '../bench/lib/ratios.ts';
import { parseStepTimes } from '../bench/first-build.ts';

const pack: Ratio = { figure: 'golden tarball pack vs tar | zstd -T0 (throughput)', value: 0.87, goal: { op: '>=', value: 0.95 }, detail: 'packImage 2.00 s / 1.74 s' };
const image: Ratio = { figure: 'installer vs its floor, image mode, BIOS', value: 1.05, goal: { op: '<=', value: 1.1 }, detail: 'installer 20.0 s / floor 19.0 s' };

describe('bench ratios', () => {
  it('a time ratio meets its goal at or under it, a throughput ratio at or over it', () => {
    expect(meets(image)).toBe(true);
    expect(meets({ ...image, value: 1.11 })).toBe(false);
    expect(meets(pack)).toBe(false);
    expect(meets({ ...pack, value: 0.95 })).toBe(true);
  });

  it('the table names the misses and lists every goal nobody measured', () => {
    const lines = ratioTable(parseRatios(`${JSON.stringify(pack)}\n${JSON.stringify(image)}\n`));
    expect(lines).toContain('| golden tarball pack vs tar \\| zstd -T0 (throughput) | 0.87× | ≥ 0.95× | **missed** | packImage 2.00 s / 1.74 s |');
    expect(lines).toContain('| installer vs its floor, image mode, BIOS | 1.05× | ≤ 1.10× | met | installer 20.0 s / floor 19.0 s |');
    const notMeasured = lines.filter((l) => l.includes('| not measured |'));
    expect(notMeasured).toHaveLength(GOALS.length - 2);
    expect(notMeasured.some((l) => l.startsWith('| download() vs curl \\| tee file \\| sha256sum (throughput) |'))).toBe(true);
    expect(notMeasured).toContain('| first build vs the golden mmdebstrap of the same build | – | | not measured | run bench/first-build.ts |');
    expect(notMeasured).toContain('| installer vs its floor, image mode, UEFI | – | | not measured | run bench/loop.ts (BENCH_FIRMWARE/BENCH_LOOP may have left it out) |');
    // Every goal names a benchmark that exists.
    for (const g of GOALS) expect(existsSync(new URL(`../bench/${g.by}.ts`, import.meta.url)), g.by).toBe(true);
    expect(lines.at(-1)).toBe('1 of 2 measured ratios miss their goal: golden tarball pack vs tar | zstd -T0 (throughput)');
  });

  it("reads a build's step times from its log: nested and beside steps, never a heartbeat", () => {
    const log = [
      '==> bootstrap image',
      '==> [installer environment] bootstrap installer environment (mmdebstrap)',
      '    mmdebstrap (golden image): still running, 1m00s',
      '    mmdebstrap (golden image): 71.4 s',
      '    bootstrap debian (debian bookworm): 74.0 s',
      '    [installer environment] pack installer initramfs (zstd -19): 9 s',
      'built /tmp/dist: 40 files, 300.0 MiB in 180.2 s (spec 0123456789abcdef)',
    ].join('\n');
    expect(parseStepTimes(log)).toEqual([
      { name: 'mmdebstrap (golden image)', seconds: 71.4 },
      { name: 'bootstrap debian (debian bookworm)', seconds: 74 },
      { name: '[installer environment] pack installer initramfs (zstd -19)', seconds: 9 },
    ]);
  });
});
