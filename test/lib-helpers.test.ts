/** The shared helpers in build/lib/: one digest, one canonical JSON, one liveness check, one temp-then-rename. */
import { spawn, spawnSync } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { atomicWrite, replaceAtomically, tempPathFor } from '../build/lib/atomic.ts';
import { canonicalJson, hashInputs, sha256Appended, sha256File } from '../build/lib/hash.ts';
import { pidAlive } from '../build/lib/process.ts';
import { run } from '../build/lib/run.ts';
import { workspace } from './helpers/workspace.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('lib/hash', () => {
  it('canonical JSON sorts keys as strings (integer-like too), drops undefined members, keeps arrays in order', () => {
    expect(canonicalJson({ b: 1, a: [3, { d: undefined, c: null }], 10: 'x', 9: 'y' })).toBe('{"10":"x","9":"y","a":[3,{"c":null}],"b":1}');
    expect(hashInputs({ a: 1, b: 2 })).toBe(hashInputs({ b: 2, a: 1 }));
  });

  it('sha256File agrees with sha256sum on a file larger than one read', async () => {
    const ws = await workspace('pc-hash-');
    cleanups.push(ws.cleanup);
    const f = join(ws.dir, 'data');
    await writeFile(f, Buffer.alloc(3 * (1 << 20) + 17, 0xab));
    expect(await sha256File(f)).toBe((await run(['sha256sum', f])).stdout.split(' ')[0]);
  });

  it('sha256Appended reads behind a writer that is still appending, and ends with its last byte', async () => {
    const ws = await workspace('pc-hash-');
    cleanups.push(ws.cleanup);
    const f = join(ws.dir, 'growing');
    await writeFile(f, '');
    // 40 appends of odd sizes (not a multiple of the 4 MiB read or a page), with pauses the reader sees.
    const writer = spawn('bash', ['-c', 'for i in $(seq 1 40); do head -c $((i * 98765)) /dev/urandom >> "$1"; sleep 0.01; done', 'w', f]);
    const finished = new Promise<number | null>((r) => writer.on('close', r));
    const seen: number[] = [];
    const got = await sha256Appended(f, finished, (n) => seen.push(n));
    expect(await finished).toBe(0);
    const { size } = await stat(f);
    expect(got).toEqual({ sha256: await sha256File(f), size });
    expect(size).toBe((98765 * 40 * 41) / 2);
    // It read while the writer ran, not only at the end.
    expect(seen.filter((n) => n > 0 && n < size).length).toBeGreaterThan(0);
  });
});

describe('lib/process', () => {
  it('pidAlive: this process yes, an exited child no', () => {
    expect(pidAlive(process.pid)).toBe(true);
    const child = spawnSync('true');
    expect(pidAlive(child.pid!)).toBe(false);
  });
});

describe('lib/atomic', () => {
  it('names temps .<name>.tmp-<pid>-<random> beside the file, unique per call', () => {
    const a = tempPathFor('/srv/public/pxe/pxelinux.cfg/01-aa-bb-cc-dd-ee-ff');
    expect(a).toMatch(new RegExp(`^/srv/public/pxe/pxelinux\\.cfg/\\.01-aa-bb-cc-dd-ee-ff\\.tmp-${process.pid}-[0-9a-f]{8}$`));
    expect(tempPathFor('/x/y')).not.toBe(tempPathFor('/x/y'));
  });

  it('replaces a file whole, and a failed fill leaves the old file and no temp behind', async () => {
    const ws = await workspace('pc-atomic-');
    cleanups.push(ws.cleanup);
    const f = join(ws.dir, 'state.json');
    await atomicWrite(f, 'one\n', { durable: true });
    await atomicWrite(f, 'two\n', { mode: 0o600 });
    expect(await readFile(f, 'utf8')).toBe('two\n');
    expect((await stat(f)).mode & 0o777).toBe(0o600);
    await expect(
      replaceAtomically(f, async (tmp) => {
        await writeFile(tmp, 'half');
        throw new Error('disk on fire');
      }),
    ).rejects.toThrow('disk on fire');
    expect(await readFile(f, 'utf8')).toBe('two\n');
    expect(await readdir(ws.dir)).toEqual(['state.json']);
  });
});

describe('pidAlive and zombies', () => {
  it('a zombie (exited, not reaped) is not alive, though kill(0) still reaches it', async () => {
    // sh starts a short sleep, prints its pid, then becomes a long sleep that never reaps it.
    const parent = spawn('sh', ['-c', 'sleep 0.1 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const pid = Number(await new Promise<string>((r) => parent.stdout!.once('data', (d: Buffer) => r(d.toString().trim()))));
    expect(pidAlive(pid)).toBe(true);
    await new Promise((r) => setTimeout(r, 600));
    expect(() => process.kill(pid, 0)).not.toThrow();
    expect(pidAlive(pid)).toBe(false);
    parent.kill('SIGKILL');
  });
});
