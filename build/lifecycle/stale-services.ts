/**
 * What a serve that died without stopping its group leaves behind (SIGKILL, OOM, a crash): its dnsmasq and
 * nginx, orphaned, still holding the DHCP, TFTP and HTTP ports, so the next serve on the same run dir
 * could not start. serve records every pid under its run dir; before it starts, it stops what an earlier,
 * dead serve of the same run dir left running — only processes whose command line names this run dir's
 * own config file, so a pid reused by something else is never touched. A serve of this run dir that is
 * still alive is refused instead.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StageError } from '../lib/errors.ts';
import { pidAlive, terminate } from '../lib/process.ts';

const STOP_GRACE_MS = 5000;

async function pidFrom(file: string): Promise<number | null> {
  const n = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
  return Number.isInteger(n) && n > 1 ? n : null;
}

async function cmdline(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' ');
}

/**
 * Stops the services a dead serve left running under `runDir`; refuses when that serve still runs.
 * Returns what it stopped ("dnsmasq 1234"), for serve's log.
 */
export async function stopStaleServices(runDir: string, servePidFile: string, services: { name: string; pidFile: string; config: string }[]): Promise<string[]> {
  const owner = await pidFrom(join(runDir, servePidFile));
  if (owner && owner !== process.pid && pidAlive(owner) && (await cmdline(owner)).includes('serve'))
    throw new StageError('serve', `another portacluster serve (pid ${owner}) runs on ${runDir}\n  hint: stop it first (kill ${owner}), or pass another --run-dir`);
  const stopped: string[] = [];
  for (const s of services) {
    const pid = await pidFrom(s.pidFile);
    if (!pid || !pidAlive(pid) || !(await cmdline(pid)).includes(s.config)) continue;
    await terminate(pid, STOP_GRACE_MS);
    stopped.push(`${s.name} ${pid}`);
  }
  return stopped;
}
