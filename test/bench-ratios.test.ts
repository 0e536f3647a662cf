/**
 * npm run bench's closing table (bench/lib/ratios.ts): each goal a ratio to a floor of the same run, a miss
 * said as such, a goal no benchmark measured listed as not measured. Formatting only: no timing here.
 */
import { describe, expect, it } from 'vitest';
import { GOALS, meets, parseRatios, ratioTable, type Ratio } from '../bench/lib/ratios.ts';

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
    expect(lines.at(-1)).toBe('1 of 2 measured ratios miss their goal: golden tarball pack vs tar | zstd -T0 (throughput)');
  });
});
