/** The supervisor with real processes: readiness, the ready deadline, a dying member, stop by process group. */
import { describe, expect, it } from 'vitest';
import { childService, startGroup, type GroupEvent } from '../build/lifecycle/supervise.ts';
import { pidAlive } from '../build/lib/process.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('startGroup', () => {
  it('keeps a service that came up past its ready deadline, and stops it with everything it forked', async () => {
    const events: GroupEvent[] = [];
    // The service forks a grandchild that ignores nothing: stopping the group must take it too.
    const svc = childService('svc', ['sh', '-c', 'sleep 60 & echo "started, version 1"; echo $! >&2; wait'], { readyLine: /started, version/, readyTimeoutMs: 300, detail: 'test' });
    const group = await startGroup([svc], (e) => events.push(e));
    await sleep(800);
    expect(events.filter((e) => e.event === 'exit')).toEqual([]);
    const grandchild = Number((events.find((e) => e.event === 'line' && e.stream === 'stderr') as { line: string }).line);
    expect(pidAlive(grandchild)).toBe(true);
    await group.stop('test over');
    expect(await group.done).toBe(0);
    await sleep(100);
    expect(pidAlive(grandchild)).toBe(false);
  });

  it('a member that ends stops the others and reports its exit code and last output', async () => {
    const events: GroupEvent[] = [];
    const a = childService('a', ['sh', '-c', 'echo ready; exec sleep 60'], { readyLine: /ready/, detail: 'a' });
    const b = childService('b', ['sh', '-c', 'echo ready; echo "out of cheese" >&2; sleep 0.3; exit 3'], { readyLine: /ready/, detail: 'b' });
    const group = await startGroup([a, b], (e) => events.push(e));
    const pids = events.filter((e) => e.event === 'up').map((e) => (e as { pid: number }).pid);
    expect(await group.done).toBe(1);
    expect(events.find((e) => e.event === 'exit')).toMatchObject({ service: 'b', code: 3, tail: ['ready', 'out of cheese'] });
    expect(pids.filter(pidAlive)).toEqual([]);
  });

  it('a member that never comes up is stopped at its deadline, and the ones already up are stopped too', async () => {
    const events: GroupEvent[] = [];
    const a = childService('a', ['sh', '-c', 'echo ready; exec sleep 60'], { readyLine: /ready/, detail: 'a' });
    const mute = childService('mute', ['sleep', '60'], { readyLine: /never/, readyTimeoutMs: 300, detail: 'mute' });
    await expect(startGroup([a, mute], (e) => events.push(e))).rejects.toThrow(/mute did not start: mute did not come up within 0.3 s: sleep 60/);
    const pid = (events.find((e) => e.event === 'up') as { pid: number }).pid;
    expect(pidAlive(pid)).toBe(false);
    expect(events.at(-1)).toMatchObject({ event: 'stopped', code: 1 });
  });

  it('a leader killed outright while its forked worker holds the pipes (nginx master SIGKILLed): the worker goes, the group stops', async () => {
    const events: GroupEvent[] = [];
    const a = childService('a', ['sh', '-c', 'echo ready; exec sleep 60'], { readyLine: /ready/, detail: 'a' });
    // The worker inherits stdout and stderr, as nginx's workers do.
    const master = childService('master', ['sh', '-c', 'sleep 60 & echo "ready $!"; wait'], { readyLine: /ready/, detail: 'master' });
    const group = await startGroup([a, master], (e) => events.push(e));
    const worker = Number((events.find((e) => e.event === 'line' && e.service === 'master') as { line: string }).line.split(' ')[1]);
    process.kill(group.pidOf('master')!, 'SIGKILL');
    const code = await Promise.race([group.done, sleep(8000).then(() => 'still running')]);
    expect(code).toBe(1);
    expect(events.find((e) => e.event === 'exit')).toMatchObject({ service: 'master', signal: 'SIGKILL' });
    await sleep(100);
    expect(pidAlive(worker)).toBe(false);
  });
});
