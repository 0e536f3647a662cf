import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Adapts a generated nginx.conf to run unprivileged-style in a temp prefix: the listen address, the
 * served root and the pid/log paths are rewritten; everything else is tested as generated.
 */
export async function adaptNginxConf(conf: string, o: { prefix: string; listen: string; root: string }): Promise<string> {
  await mkdir(join(o.prefix, 'logs'), { recursive: true });
  const adapted = conf
    .replace(/^(\s*)listen [^;]+;/m, `$1listen ${o.listen} default_server;`)
    .replace(/^(\s*)root [^;]+;/m, `$1root ${o.root};`)
    .replace(/^pid [^;]+;/m, `pid ${join(o.prefix, 'nginx.pid')};`)
    .replace(/^error_log [^;]+;/m, `error_log ${join(o.prefix, 'logs/error.log')};`)
    .replace(/access_log \S+ /, `access_log ${join(o.prefix, 'logs/access.log')} `);
  const file = join(o.prefix, 'nginx.conf');
  await writeFile(file, adapted);
  return file;
}

/**
 * One nginx started in the foreground (daemon off) with its own prefix, optionally inside a network
 * namespace; stopped by its recorded PIDs. kill() takes the master and its workers down at once with
 * SIGKILL: an origin that dies mid-transfer, its open connections closed by the kernel.
 */
export interface RunningNginx {
  pid: number;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

const childPids = (pid: number): number[] => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
};

/** A PID that exists and is not a zombie waiting for its new parent to reap it. */
function running(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

export async function startNginx(o: { prefix: string; conf: string; pidFile: string; netns?: string }): Promise<RunningNginx> {
  await mkdir(o.prefix, { recursive: true });
  const argv = [...(o.netns ? ['ip', 'netns', 'exec', o.netns] : []), 'nginx', '-p', o.prefix, '-c', o.conf, '-g', 'daemon off;'];
  // `ip netns exec` execs nginx in place: the child's PID is nginx's master.
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 10_000;
  // nginx writes its pid file once it has bound its sockets.
  while (!existsSync(o.pidFile)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`nginx did not start (${o.conf}): ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const pid = child.pid!;
  const alive = () => child.exitCode === null && child.signalCode === null;
  const self: RunningNginx = {
    pid,
    async stop() {
      if (!alive()) return;
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (alive()) await self.kill();
    },
    async kill() {
      if (!alive()) return;
      const workers = childPids(pid);
      for (const w of [...workers, pid]) {
        try {
          process.kill(w, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await exited;
      // The workers are reparented when the master dies first; wait until they are gone too.
      for (const w of workers) while (running(w)) await new Promise((r) => setTimeout(r, 20));
    },
  };
  return self;
}
