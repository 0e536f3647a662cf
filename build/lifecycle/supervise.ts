/**
 * A supervised group of services, run in the foreground: each is started in order and must say it is up
 * before the next starts; when any of them ends the whole group stops (no silent restart loop: on node0,
 * systemd or the person at the terminal decides what happens next, knowing the exit code and stderr tail).
 *
 * Child processes get a process group of their own, so stopping one stops everything it forked (nginx's
 * workers), and Ctrl-C at the terminal reaches only us: we stop the children in reverse order.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { pidAlive } from '../lib/process.ts';
import { commandLine } from '../lib/run.ts';

export interface ServiceExit {
  code: number | null;
  signal: string | null;
  /** The last lines the service wrote to stderr (or stdout), for the report. */
  tail: string[];
}

/** What a started service gives the group. */
export interface RunningService {
  pid: number | null;
  /** Shown on the "up" line: where it listens, which config it runs. */
  detail: string;
  /** Settles when the service ends by itself. */
  exited: Promise<ServiceExit>;
  stop(): Promise<void>;
}

export interface ServiceDef {
  name: string;
  start(emit: (line: string, stream: 'stdout' | 'stderr') => void): Promise<RunningService>;
}

export type GroupEvent =
  | { event: 'line'; service: string; stream: 'stdout' | 'stderr'; line: string }
  | { event: 'up'; service: string; pid: number | null; detail: string }
  | { event: 'exit'; service: string; pid: number | null; code: number | null; signal: string | null; tail: string[] }
  | { event: 'stopping'; reason: string }
  | { event: 'stopped'; code: number };

export interface Group {
  /** Settles with the group's exit code: 0 after stop(), 1 when a service ended by itself. */
  done: Promise<number>;
  pids(): number[];
  /** The pid of a running service by name (nginx's master, for a reload by SIGHUP). */
  pidOf(name: string): number | null;
  /**
   * Stops one service and starts it again (from `def` when given: a new config), without stopping the
   * group; if it does not come back up, the group stops as when a service ends.
   */
  restart(name: string, def?: ServiceDef): Promise<void>;
  stop(reason: string): Promise<void>;
}

const TAIL_LINES = 15;
const STOP_GRACE_MS = 5000;


/** Sends a signal to a whole process group; a group that is gone already is not an error. */
function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: nothing left in that group.
  }
}

export interface ChildServiceOptions {
  /** Up when a line of its output matches (dnsmasq says "started"). */
  readyLine?: RegExp;
  /** Up when this resolves true (nginx answers HTTP); polled every 100 ms. */
  probe?: () => Promise<boolean>;
  readyTimeoutMs?: number;
  detail: string;
  /** SIGTERM by default; nginx finishes requests on SIGQUIT. */
  stopSignal?: NodeJS.Signals;
}

/** A service that is an external program run in the foreground. */
export function childService(name: string, argv: string[], o: ChildServiceOptions): ServiceDef {
  return {
    name,
    start(emit) {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      const tail: string[] = [];
      let readyResolve: (() => void) | undefined;
      const ready = new Promise<void>((r) => (readyResolve = r));
      for (const stream of ['stdout', 'stderr'] as const) {
        createInterface({ input: child[stream]! }).on('line', (line) => {
          tail.push(line);
          if (tail.length > TAIL_LINES) tail.shift();
          emit(line, stream);
          if (o.readyLine?.test(line)) readyResolve!();
        });
      }
      const exited = new Promise<ServiceExit>((resolve) => {
        child.once('error', (e) => resolve({ code: 127, signal: null, tail: [...tail, `cannot start ${argv[0]}: ${e.message}`] }));
        // The leader's end is the service's end. Its output closes only when every process holding it is
        // gone, and nginx's workers outlive a killed master (still serving, unsupervised): so the rest of its
        // group is killed at once, then 'close' (after the streams are drained: the tail is complete).
        child.once('exit', (code, signal) => {
          if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
          child.once('close', () => resolve({ code, signal, tail: [...tail] }));
        });
      });
      const pid = child.pid ?? null;
      const stop = async () => {
        if (pid === null) return;
        killGroup(pid, o.stopSignal ?? 'SIGTERM');
        const gone = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), STOP_GRACE_MS))]);
        if (!gone) killGroup(pid, 'SIGKILL');
        // Whatever the leader left in its group (a worker that outlived it) goes too.
        killGroup(pid, 'SIGKILL');
        await exited;
      };
      if (o.probe) {
        const probe = o.probe;
        void (async () => {
          while (child.exitCode === null && child.signalCode === null) {
            if (await probe().catch(() => false)) return readyResolve!();
            await new Promise((r) => setTimeout(r, 100));
          }
        })();
      }
      const timeoutMs = o.readyTimeoutMs ?? 20_000;
      let timer: NodeJS.Timeout | undefined;
      const outcome = Promise.race([
        ready.then((): RunningService => ({ pid, detail: o.detail, exited, stop })),
        exited.then((e): never => {
          throw Object.assign(new Error(`${name} exited before it was up`), { exit: e, pid });
        }),
        new Promise<never>((_r, reject) => {
          timer = setTimeout(() => {
            void stop();
            reject(Object.assign(new Error(`${name} did not come up within ${timeoutMs / 1000} s: ${commandLine(argv)}`), { exit: { code: null, signal: null, tail: [...tail] }, pid }));
          }, timeoutMs);
        }),
      ]);
      // The deadline is for coming up only: once up (or gone), it must never fire.
      return outcome.finally(() => clearTimeout(timer));
    },
  };
}

/**
 * Starts the services in order. A service that fails to come up stops the ones already up and rejects
 * with its exit; afterwards, the first service to end stops the rest and `done` settles with 1.
 */
export async function startGroup(defs: ServiceDef[], onEvent: (e: GroupEvent) => void): Promise<Group> {
  const running: { name: string; svc: RunningService; replaced?: boolean }[] = [];
  let stopping: Promise<void> | undefined;
  let finish!: (code: number) => void;
  const done = new Promise<number>((r) => (finish = r));
  let code = 0;

  const stopAll = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      onEvent({ event: 'stopping', reason });
      for (const { svc } of [...running].reverse()) await svc.stop();
      onEvent({ event: 'stopped', code });
      finish(code);
    })();
    return stopping;
  };

  /** Starts one service and watches it; a start failure is reported and rethrown. */
  const launch = async (def: ServiceDef): Promise<void> => {
    let svc: RunningService;
    try {
      svc = await def.start((line, stream) => onEvent({ event: 'line', service: def.name, stream, line }));
    } catch (e) {
      const err = e as Error & { exit?: ServiceExit; pid?: number | null };
      const exit = err.exit ?? { code: null, signal: null, tail: [err.message] };
      onEvent({ event: 'exit', service: def.name, pid: err.pid ?? null, code: exit.code, signal: exit.signal, tail: exit.tail });
      code = 1;
      await stopAll(`${def.name} did not start`);
      throw Object.assign(new Error(`${def.name} did not start: ${err.message}`), { service: def.name, exit });
    }
    // Started by a restart while the group was stopping: it would outlive the group.
    if (stopping) return void (await svc.stop());
    const entry: (typeof running)[number] = { name: def.name, svc };
    running.push(entry);
    onEvent({ event: 'up', service: def.name, pid: svc.pid, detail: svc.detail });
    void svc.exited.then((exit) => {
      // A service stopped on purpose (restart) is not a service that ended.
      if (stopping || entry.replaced) return;
      code = 1;
      onEvent({ event: 'exit', service: def.name, pid: svc.pid, code: exit.code, signal: exit.signal, tail: exit.tail });
      void stopAll(`${def.name} ended`);
    });
  };

  const defsByName = new Map(defs.map((d) => [d.name, d]));
  for (const def of defs) await launch(def);
  return {
    done,
    pids: () => running.map((r) => r.svc.pid).filter((p): p is number => p !== null && pidAlive(p)),
    pidOf: (name) => running.find((r) => r.name === name)?.svc.pid ?? null,
    async restart(name, def) {
      const i = running.findIndex((r) => r.name === name);
      const d = def ?? defsByName.get(name);
      if (i < 0 || !d || stopping) return;
      const [old] = running.splice(i, 1);
      old!.replaced = true;
      await old!.svc.stop();
      defsByName.set(name, d);
      await launch(d);
      // Back in its place, so the group still stops in reverse start order.
      running.splice(i, 0, running.pop()!);
    },
    stop: stopAll,
  };
}
