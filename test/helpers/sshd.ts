/**
 * A throwaway sshd on 127.0.0.1 for the over-ssh tests: its own host key, one authorized key, a free port,
 * and an ssh_config that names it `node0`, so `node0:/path` works as it would from a laptop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { run } from '../../build/lib/run.ts';
import { inMountNs } from './mount-ns.ts';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const c = connect(port, '127.0.0.1', () => (c.end(), r(true)));
      c.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** waitForPort inside a network namespace: bash's /dev/tcp from in there. */
async function waitForPortIn(netns: string, port: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while ((await run(['ip', 'netns', 'exec', netns, 'bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`], { nothrow: true })).exitCode !== 0) {
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} in ${netns} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface Sshd {
  port: number;
  /** ssh -F file in which Host node0 is this server. */
  sshConfig: string;
  stop(): Promise<void>;
}

/**
 * `alias`: the Host name in the ssh_config (default node0). `bindOver`: run sshd in a mount namespace of its
 * own with `src` bind-mounted over `dst`, so several sshds on one machine each see their own disk at the same
 * path (boot servers that each serve admin.servedRoot). `netns`: listen on that namespace's 127.0.0.1.
 */
export async function startSshd(dir: string, o: { alias?: string; bindOver?: { src: string; dst: string }; netns?: string } = {}): Promise<Sshd> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // sshd started by root insists on its privilege separation dir; as a plain user it logs in only that user.
  if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(dir, 'host_ed25519');
  const userKey = join(dir, 'id_ed25519');
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', userKey]);
  await writeFile(join(dir, 'authorized_keys'), await readFile(userKey + '.pub'), { mode: 0o600 });
  const port = await freePort();
  const cfg = join(dir, 'sshd_config');
  await writeFile(
    cfg,
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      // The temp dir sits under /tmp (mode 1777), which StrictModes would refuse.
      'StrictModes no',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  const known = join(dir, 'known_hosts');
  await writeFile(known, `[127.0.0.1]:${port} ${(await readFile(hostKey + '.pub', 'utf8')).trim()}\n`);
  const sshConfig = join(dir, 'ssh_config');
  await writeFile(
    sshConfig,
    [`Host ${o.alias ?? 'node0'}`, '  HostName 127.0.0.1', `  Port ${port}`, `  User ${userInfo().username}`, `  IdentityFile ${userKey}`, '  IdentitiesOnly yes', `  UserKnownHostsFile ${known}`, '  StrictHostKeyChecking yes', '  LogLevel ERROR', ''].join('\n'),
  );
  const sshd = ['/usr/sbin/sshd', '-D', '-e', '-f', cfg];
  // The child's pid stays sshd's (mount-ns.ts), so stop() ends it.
  const inNs = o.bindOver ? inMountNs([o.bindOver], sshd) : sshd;
  // `ip netns exec` execs in place too.
  const argv = o.netns ? ['ip', 'netns', 'exec', o.netns, ...inNs] : inNs;
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b) => (stderr += b));
  try {
    if (o.netns) await waitForPortIn(o.netns, port);
    else await waitForPort(port);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`sshd did not start: ${stderr}`);
  }
  return {
    port,
    sshConfig,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
