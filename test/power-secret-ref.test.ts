/** readSecret: the first line of a private regular file, or a set environment variable; errors name where, never what. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSecret } from '../build/power/secret-ref.ts';
import { snmpConfValue } from '../build/power/pdu.ts';
import { workspace } from './helpers/workspace.ts';

let ws: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  ws = await workspace('pc-secret-');
});
afterAll(() => ws.cleanup());

describe('readSecret', () => {
  it('reads the first line of a 0600 or 0400 file', async () => {
    const f = join(ws.dir, 'pw');
    await writeFile(f, 'top secret\nsecond line\n', { mode: 0o400 });
    expect(await readSecret({ file: f })).toBe('top secret');
  });

  it('refuses a file others can read, a directory, a missing file and an empty one, naming the path only', async () => {
    const loose = join(ws.dir, 'loose');
    await writeFile(loose, 'leaky\n', { mode: 0o640 });
    await expect(readSecret({ file: loose })).rejects.toThrow(`the secret file ${loose} is readable by others (mode 0640)`);
    await expect(readSecret({ file: loose })).rejects.not.toThrow(/leaky/);
    const dir = join(ws.dir, 'd');
    await mkdir(dir, { mode: 0o700 });
    await expect(readSecret({ file: dir })).rejects.toThrow(`${dir} is not a regular file`);
    await expect(readSecret({ file: join(ws.dir, 'none') })).rejects.toThrow(/cannot open the secret file .*none: ENOENT/);
    const empty = join(ws.dir, 'empty');
    await writeFile(empty, '\n', { mode: 0o600 });
    await expect(readSecret({ file: empty })).rejects.toThrow('is empty');
  });

  it('reads a set environment variable; an unset or empty one is named', async () => {
    process.env.PC_TEST_SECRET = 'from-env';
    expect(await readSecret({ env: 'PC_TEST_SECRET' })).toBe('from-env');
    process.env.PC_TEST_SECRET = '';
    await expect(readSecret({ env: 'PC_TEST_SECRET' })).rejects.toThrow('PC_TEST_SECRET is not set or empty');
    delete process.env.PC_TEST_SECRET;
  });
});

describe('snmpConfValue', () => {
  it('quotes for net-snmp conf files and refuses a line break', () => {
    expect(snmpConfValue('a "b" \\c')).toBe('"a \\"b\\" \\\\c"');
    expect(() => snmpConfValue('a\nb')).toThrow('line break');
  });
});
