import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';

const GOLDEN = join(import.meta.dirname, '..', 'golden');

/** Compares text with test/golden/<name>; UPDATE_GOLDEN=1 rewrites the file instead. */
export async function expectGolden(name: string, text: string): Promise<void> {
  const file = join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN === '1') {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, text);
    return;
  }
  const expected = await readFile(file, 'utf8').catch(() => {
    throw new Error(`no golden file ${file}: run with UPDATE_GOLDEN=1 once and review it`);
  });
  expect(text).toBe(expected);
}
