/**
 * The e2e lab network: the product's lab namespace (build/lab/netns.ts) with a bridge holding node0's
 * address and one tap per VM; nothing is routed out of it. Every process the tests start in it is a child
 * of this one and is stopped by PID in stop().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { addTap, createLabNetwork, deleteLabNetwork, nsExec, RA_RESPONDER } from '../../../build/lab/netns.ts';
import { run } from '../../../build/lib/run.ts';

export const BRIDGE = 'pcbr0';

export interface Netns {
  name: string;
  bridge: string;
  addTap(tap: string): Promise<void>;
  /** argv run inside the namespace. */
  exec(argv: string[]): string[];
  spawn(argv: string[], o?: { stdout?: 'pipe' | 'ignore' }): ChildProcess;
  stop(): Promise<void>;
}

export async function createNetns(name: string, adminCidr: string): Promise<Netns> {
  const children: ChildProcess[] = [];
  // The product's lab network (build/lab/netns.ts): the same namespace, bridge and taps `portacluster lab` makes.
  await deleteLabNetwork(name);
  await createLabNetwork(name, BRIDGE, adminCidr);
  const self: Netns = {
    name,
    bridge: BRIDGE,
    addTap: (tap) => addTap(name, BRIDGE, tap),
    exec: (argv) => nsExec(name, argv),
    spawn(argv, o = {}) {
      const full = self.exec(argv);
      const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', o.stdout ?? 'ignore', 'pipe'] });
      children.push(child);
      return child;
    },
    async stop() {
      for (const c of children.reverse()) {
        if (c.exitCode === null && c.signalCode === null && c.pid) {
          const gone = new Promise((r) => c.once('exit', r));
          c.kill('SIGTERM');
          await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
          if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
        }
      }
      // Whatever still runs inside (a child's own children, orphaned when a test failed midway) goes too:
      // deleting a namespace does not stop its processes.
      const left = await run(['ip', 'netns', 'pids', name], { nothrow: true });
      for (const pid of left.stdout.split('\n').map(Number).filter((p) => p > 0)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      await deleteLabNetwork(name);
    },
  };
  self.spawn(['python3', '-c', RA_RESPONDER, BRIDGE]);
  return self;
}
