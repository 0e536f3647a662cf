/**
 * Starting one of the lab's stand-in services (the Redfish emulator, the PDU's snmpd) as its own process,
 * inside the lab's network namespace when there is one, with its output in a log file: the lab stops it by
 * the PID returned here (`ip netns exec` execs the program, so the PID is the service's own).
 */
import { spawn } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import { pidAlive, terminate } from '../lib/process.ts';
import { tail } from '../lib/errors.ts';
import { nsExec } from './netns.ts';

export async function spawnDaemon(ns: string | null, argv: string[], log: string, env?: NodeJS.ProcessEnv): Promise<number> {
  const full = ns ? nsExec(ns, argv) : argv;
  const out = await open(log, 'a', 0o600);
  const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', out.fd, out.fd], detached: true, env: env ?? process.env });
  child.unref();
  await out.close();
  if (child.pid === undefined) throw new Error(`${argv[0]} did not start; see ${log}`);
  return child.pid;
}

/** Waits until `ready()` holds; fails early with the log's tail when the process has exited. */
export async function waitReady(what: string, pid: number, log: string, ready: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ready().catch(() => false)) return;
    const gone = !pidAlive(pid);
    if (gone || Date.now() > deadline) {
      const text = await readFile(log, 'utf8').catch(() => '');
      throw new Error(`${what} ${gone ? 'exited' : `was not ready within ${timeoutMs / 1000} s`}; see ${log}` + (text ? `\n${tail(text, 10)}` : ''));
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM, then SIGKILL after 3 s: the lab's stand-ins hold no state worth a longer wait. */
export async function stopDaemon(pid: number): Promise<void> {
  await terminate(pid, 3000);
}
