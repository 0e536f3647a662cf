/**
 * The watcher ends every install: it receives the installers' phone-home reports (over HTTP, proxied by
 * nginx, or from nginx's access log), keeps each node's state in the state file, and switches a node to
 * its OS profile when its installer reports `done` — before answering, so by the time the installer sees
 * 200 and reboots, the node's link already points at the OS (the answer then says `ok: switched to OS`).
 * `failed` leaves the links alone.
 *
 * A report counts only for the node's open run, with that run's nonce, and — where the node has a fixed
 * IP — from that IP (lifecycle/runs.ts says what this protects against and what not). Anything else is an
 * `ignored` event with its reason; it never changes a node's state nor switches a link. A `start` that does
 * not count is refused (409): the installer stops before it touches the disk. A `start` with the nonce of
 * a run that already ended `done` is a boot loop (the link did not switch, or the firmware ignored it):
 * the node is marked failed and the installer refused, so a node is never reinstalled twice silently.
 * Installers number their phase reports (seq=BOOT.N): a retry of one already counted (node0 restarted before
 * it answered) is answered as the first was, 200, and not counted again.
 *
 * Deadlines (overdue.ts): a node that stays in a phase past its deadline is power-cycled into the
 * installer again, then parked; in the phases the image streams through, progress that moves pushes the
 * deadline on (a stall is what is overdue, not a big image). Progress reports are kept in memory and written to the state file at most
 * every progressFlushMs (each write is an fsync'd rename: see test/lifecycle-progress.test.ts).
 *
 * Reports are handled one at a time (a promise queue): events come out in order and the state file's lock
 * is never contended by the watcher itself.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PlanNode } from '../plan/plan.ts';
import { deadlineMs, endRun, STREAMING } from './deadlines.ts';
import { readProfiles, switchNodes, type SwitchOptions, type SwitchResult } from './links.ts';
import { checkOverdue, type WatchPlan, type WatchPower } from './overdue.ts';
import { clientAddress, findNode, lastLines, parseReportUrl, readBody, type Report, type WatchEvent } from './report.ts';
import { closeRun, isRetry, matchNonce, noteCounted, readRunRecord } from './runs.ts';
import { FINISHED, readState, storeLog, transition, updateState, withSwitchLock, type NodeState, type NodeStatus } from './state.ts';
import { createStatusPage, type StatusPage } from './status-page.ts';
import { headline, parseInventory, storeInventory } from './inventory.ts';
import { parseMac } from '../spec/values.ts';
import { parseAccessLine, tailFile, type Tailer } from './tail.ts';
import type { Target } from './target.ts';

export { PHASES, parseReportUrl, findNode, type Report, type WatchEvent } from './report.ts';
export { NoPowerError, type WatchPlan, type WatchPower } from './overdue.ts';

/** Reports after which a node runs where it is, in a profile that stays: nothing to switch. */
const RUNNING: readonly string[] = ['rescue-ready', 'diskless-ready'];


export interface WatchOptions {
  plan: WatchPlan;
  root: string;
  target?: Target;
  /** The boot servers' trees (links.ts serverLinks): a node behind one is switched there too. */
  servers?: SwitchOptions['servers'];
  stateFile: string;
  /** HTTP listener; null = none (access log only). Port 0 picks a free one. */
  listen: { host: string; port: number } | null;
  accessLog?: string;
  /** Read the access log from its start instead of its end. */
  accessLogFromStart?: boolean;
  /** One deadline for every phase (watch --timeout); absent: the plan's phoneHome.deadlines. */
  timeoutMs?: number;
  /** Powers nodes for retries and parking; absent: a missed deadline ends the run (no retries). */
  power?: WatchPower;
  /** Progress reports reach the state file at most this often per node (default 10 s). */
  progressFlushMs?: number;
  onEvent: (e: WatchEvent) => void;
}

export interface Watcher {
  address: AddressInfo | null;
  /** Nodes this run is responsible for: requested or installing at start, or reporting since. */
  watched: Set<string>;
  /** Resolves when every watched node has finished (none watched yet: keeps waiting). true = all done. */
  finished: Promise<boolean>;
  close(): Promise<void>;
}

/** `done`'s answer once the node's link points at its OS: the installer kexecs (afterInstall kexec) only on it. */
const switchedAnswer = (os: string) => `ok: switched to ${os}`;

type Verdict =
  | { ok: true; run: string; closed: boolean }
  | { ok: false; reason: string; bootLoop?: { run: string; at: string }; retry?: { answer: string } };

export async function startWatcher(o: WatchOptions): Promise<Watcher> {
  const { plan } = o;
  const watched = new Set<string>();
  const flushMs = o.progressFlushMs ?? 10_000;
  const progress = new Map<string, { value: NonNullable<NodeState['progress']>; flushed: number }>();
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = queue.then(fn);
    queue = p.catch(() => {});
    return p;
  };
  let resolveFinished!: (ok: boolean) => void;
  const finished = new Promise<boolean>((r) => (resolveFinished = r));

  async function checkFinished(): Promise<void> {
    if (!watched.size) return;
    const doc = await readState(o.stateFile);
    const states = [...watched].map((n) => doc.nodes[n]?.state);
    if (states.every((s) => s && FINISHED.has(s))) resolveFinished(states.every((s) => s === 'done'));
  }

  function emit(e: WatchEvent): WatchEvent {
    o.onEvent(e);
    return e;
  }

  /** Does this report count? The node's open run, its nonce, its address. */
  async function verdict(node: PlanNode, r: Report): Promise<Verdict> {
    if (node.ip && r.from !== node.ip) return { ok: false, reason: `sent from ${r.from ?? 'an unknown address'}, not from ${node.name}'s address ${node.ip}` };
    const rec = await readRunRecord(o.stateFile, node.name);
    const m = matchNonce(rec, r.nonce);
    // A retry of a phase report this run already counted: node0 restarted before it could answer.
    if ((m.kind === 'current' || m.kind === 'closed') && r.seq && isRetry(rec!, r.seq)) {
      const answer = m.kind === 'closed' && m.closed.result === 'done' && r.kind === 'done' ? switchedAnswer(plan.profiles.os) : 'ok';
      return { ok: false, reason: `a retry of report ${r.seq.n} of run ${m.run}, already counted`, retry: { answer } };
    }
    switch (m.kind) {
      case 'current':
        return { ok: true, run: m.run, closed: false };
      case 'closed':
        // After the end of a run its installer may still upload its log; a new start is a boot loop.
        if (r.kind === 'log') return { ok: true, run: m.run, closed: true };
        if (r.kind === 'start' && m.closed.result === 'done') return { ok: false, reason: 'boot loop', bootLoop: { run: m.run, at: m.closed.at } };
        return { ok: false, reason: `run ${m.run} already ended ${m.closed.result} at ${m.closed.at}` };
      case 'old':
        return { ok: false, reason: `the nonce of an earlier run (${m.run}; the current one is ${rec!.run}): a stale installer` };
      case 'missing':
        return { ok: false, reason: `no nonce (${node.name}'s run is ${rec!.run})` };
      case 'wrong':
        return { ok: false, reason: `a nonce of no run of ${node.name}` };
      case 'no-run':
        return { ok: false, reason: `no install was requested for ${node.name} (reimage, rescue or diskless starts one)` };
    }
  }

  async function bootLoop(node: PlanNode, loop: { run: string; at: string }, base: Omit<WatchEvent, 'phase' | 'state'>, at: Date): Promise<WatchEvent> {
    const profile = (await readProfiles([node], { root: o.root, ...(o.target ? { target: o.target } : {}) }).catch(() => new Map<string, string | null>())).get(node.name);
    const detail = `boot loop: ${node.name} started the installer again (its link points at ${profile ?? '(no link)'}) after run ${loop.run} ended done at ${loop.at}; refused before it touched the disk`;
    const { prev } = await updateState(o.stateFile, (doc) => {
      const t = transition(doc, node, 'start', 'failed', at, detail);
      delete t.next.deadline;
      return t;
    });
    watched.add(node.name);
    return emit({ ...base, phase: 'start', state: 'failed', detail, run: loop.run, ...(prev ? { prev: prev.state } : {}) });
  }

  async function onProgress(node: PlanNode, r: Report, base: Omit<WatchEvent, 'phase' | 'state'>, at: Date): Promise<WatchEvent> {
    const value = { ...r.progress!, at: at.toISOString() };
    const last = progress.get(node.name);
    const flush = !last || at.getTime() - last.flushed >= flushMs || value.bytes >= value.total;
    progress.set(node.name, { value, flushed: flush ? at.getTime() : last!.flushed });
    if (flush)
      await updateState(o.stateFile, (doc) => {
        const s = doc.nodes[node.name];
        if (!s) return;
        const moved = !s.progress || value.bytes > s.progress.bytes;
        // A stream that moves pushes its phase's deadline on (deadlines.ts STREAMING); a stalled one does not.
        if (moved && s.state === 'installing' && STREAMING.includes(s.phase)) {
          const due = at.getTime() + deadlineMs(plan.phoneHome, s.phase, o.timeoutMs);
          if (!s.deadline || Date.parse(s.deadline) < due) s.deadline = new Date(due).toISOString();
        }
        s.progress = value;
      });
    return emit({ ...base, phase: 'download', state: 'progress', progress: value });
  }

  /**
   * A machine's inventory, by its MAC, known to the spec or not (discovery is for the ones it does not know,
   * so there is no run and no nonce to check). It only feeds `discovered`, `enroll` and status: it switches no
   * link and changes no node's state, so a forged one can mislead an enrolment, which a person reviews.
   */
  async function onInventory(r: Report, source: WatchEvent['source'], at: Date): Promise<{ event: WatchEvent; status: number }> {
    const base = { at: at.toISOString(), source, node: findNode(plan.nodes, r)?.name ?? null, mac: r.mac ?? null, phase: 'inventory', ...(r.from ? { from: r.from } : {}) };
    const inv = parseInventory(r.body);
    const mac = r.mac ? parseMac(r.mac) : null;
    if (typeof inv === 'string' || !mac) return { event: emit({ ...base, state: 'ignored', detail: `ignored inventory: ${typeof inv === 'string' ? inv : 'it needs mac='}` }), status: 400 };
    const file = await storeInventory(o.stateFile, mac, inv, r.from ?? null, at);
    const h = headline(inv);
    return { event: emit({ ...base, mac, state: 'inventory', detail: `${h.model}; ${h.cpus}; ${h.memory}; disks ${h.disks}; ${h.firmware} (${file})` }), status: 200 };
  }

  async function handle(r: Report, source: WatchEvent['source']): Promise<{ event: WatchEvent; status: number; answer?: string }> {
    const at = new Date();
    if (r.kind === 'inventory') return onInventory(r, source, at);
    const node = findNode(plan.nodes, r);
    if (!node) return { event: emit({ at: at.toISOString(), source, node: null, mac: r.mac ?? null, phase: r.kind, state: 'unknown', detail: `no node ${r.host ?? ''} ${r.mac ?? ''} in the spec`.replace(/\s+/g, ' ') }), status: 404 };
    // Checked, recorded and (on done) switched as one move: a reimage/normal in between would make this
    // report count for a run that is no longer the node's, and its done switch the new run's links.
    return withSwitchLock(o.stateFile, () => count(node, r, source, at));
  }

  async function count(node: PlanNode, r: Report, source: WatchEvent['source'], at: Date): Promise<{ event: WatchEvent; status: number; answer?: string }> {
    const base = { at: at.toISOString(), source, node: node.name, mac: node.mac, ...(r.from ? { from: r.from } : {}) };
    const v = await verdict(node, r);
    if (!v.ok) {
      if (v.bootLoop) return { event: await bootLoop(node, v.bootLoop, base, at), status: 409 };
      const event = emit({ ...base, phase: r.kind, state: 'ignored', detail: `ignored ${r.kind}: ${v.reason}` });
      // A retry is answered as the first was, so the installer goes on (and after `done`, kexecs as it would have).
      if (v.retry) return { event, status: 200, answer: v.retry.answer };
      // A start that does not count is refused: the installer stops before it touches the disk.
      return { event, status: r.kind === 'start' ? 409 : 403 };
    }
    if (r.kind === 'log') {
      const file = r.body?.length ? await storeLog(o.stateFile, node.name, r.body, at) : undefined;
      if (file) await updateState(o.stateFile, (doc) => void (doc.nodes[node.name] ? (doc.nodes[node.name]!.log = file) : undefined));
      return { event: emit({ ...base, phase: 'log', state: 'log', run: v.run, ...(file ? { detail: file } : { detail: 'no log body (access log input)' }) }), status: 200 };
    }
    if (r.kind === 'progress') return { event: await onProgress(node, r, base, at), status: 200 };
    const state: NodeStatus = r.kind === 'failed' ? 'failed' : r.kind === 'done' || RUNNING.includes(r.kind) ? 'done' : 'installing';
    const phase = r.kind === 'failed' ? (r.phase ?? 'unknown') : r.kind;
    const detail = r.kind === 'failed' ? (lastLines(r.body) ?? (source === 'access-log' ? 'failed (the body is not in the access log)' : 'failed')) : undefined;
    const rec = await readRunRecord(o.stateFile, node.name);
    const { prev, next } = await updateState(o.stateFile, (doc) => {
      const t = transition(doc, node, phase, state, at, detail);
      const n = t.next;
      // A run started with reimage --ssh reaches this state file with its first report: adopt it.
      if (n.run !== v.run) (n.run = v.run), (n.tries = 1);
      // A start that was not preceded by `requested` (our own retry) is the node rebooting into the installer by itself.
      if (r.kind === 'start' && t.prev?.phase !== 'requested' && t.prev?.run === v.run) n.tries = (n.tries ?? 1) + 1;
      n.tries ??= 1;
      const p = progress.get(node.name);
      if (p) n.progress = p.value;
      if (FINISHED.has(state)) endRun(n, state, at, rec?.started);
      else if (t.prev?.phase !== phase || !n.deadline) n.deadline = new Date(at.getTime() + deadlineMs(plan.phoneHome, phase, o.timeoutMs)).toISOString();
      return t;
    });
    watched.add(node.name);
    const event: WatchEvent = { ...base, phase, state, run: v.run, tries: next.tries!, ...(prev ? { prev: prev.state } : {}), ...(detail ? { detail } : {}) };
    if (r.kind === 'done') {
      try {
        event.switched = (await switchNodes([node], plan.profiles.os, { root: o.root, ...(o.target ? { target: o.target } : {}), ...(o.servers ? { servers: o.servers } : {}) }))[0];
      } catch (e) {
        // Installed but still booting the installer: the loop we exist to prevent. Say so loudly.
        event.error = `installed, but switching to ${plan.profiles.os} failed: ${(e as Error).message}`;
        event.state = 'failed';
        await updateState(o.stateFile, (doc) => endRun(transition(doc, node, phase, 'failed', new Date(), event.error).next, 'failed', new Date(), rec?.started));
      }
    }
    if (r.seq) await noteCounted(o.stateFile, node.name, v.run, r.seq);
    if (FINISHED.has(event.state as NodeStatus)) {
      await closeRun(o.stateFile, node.name, v.run, event.state as NodeStatus, at);
      progress.delete(node.name);
    }
    emit(event);
    await checkFinished();
    return { event, status: 200 };
  }

  async function checkTimeouts(): Promise<void> {
    const doc = await readState(o.stateFile);
    for (const s of Object.values(doc.nodes)) if (s.state === 'requested' || s.state === 'installing') watched.add(s.name);
    await checkOverdue({ ...o, watched, serial, emit, forget: (name) => progress.delete(name) });
    await checkFinished();
  }

  let server: Server | null = null;
  let address: AddressInfo | null = null;
  let page: StatusPage | null = null;
  if (o.listen) {
    // The live status page (read-only) shares the listener: nginx proxies STATUS_PATH here too.
    page = createStatusPage({ nodes: plan.nodes, osProfile: plan.profiles.os, root: o.root, ...(o.target ? { target: o.target } : {}), stateFile: o.stateFile });
    server = createServer((req, res) => {
      if (page!.handle(req, res)) return;
      const parsed = parseReportUrl(req.url ?? '/', plan.phoneHome.path);
      const reply = (status: number, text: string) => {
        res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
        res.end(text + '\n');
      };
      if (typeof parsed === 'string') return void reply(parsed.startsWith('not under') ? 404 : 400, parsed);
      const from = clientAddress(req);
      if (from) parsed.from = from;
      readBody(req)
        .then(async (body) => {
          if (body.length) parsed.body = body;
          const { event, status, answer } = await serial(() => handle(parsed, 'http'));
          // `done` answered `switched to OS` only once the link points at the OS: the installer kexecs into
          // its OS (phoneHome.afterInstall kexec) only on that answer, so the next real reboot boots the OS.
          const ok = answer ?? (event.phase === 'done' && event.switched && !event.error ? switchedAnswer(event.switched.to) : 'ok');
          reply(status, status === 200 ? ok : `${status === 409 ? 'refused' : 'not counted'}: ${event.detail ?? event.state}`);
        })
        .catch((e: Error) => reply(500, e.message));
    });
    await new Promise<void>((resolve, reject) => {
      server!.once('error', (e) => {
        page!.close(); // its feed's timers would keep a failed start alive
        reject(e);
      });
      server!.listen(o.listen!.port, o.listen!.host, () => resolve());
    });
    address = server.address() as AddressInfo;
  }

  let tailer: Tailer | null = null;
  if (o.accessLog) {
    tailer = tailFile(
      o.accessLog,
      (line) => {
        const l = parseAccessLine(line);
        if (!l) return;
        // With the HTTP listener on, a line nginx proxied to us (2xx, or our own refusals) was handled: skip it.
        if (o.listen && (l.status < 300 || l.status === 403 || l.status === 409)) return;
        const r = parseReportUrl(l.url, plan.phoneHome.path);
        if (typeof r === 'string') return;
        r.from = l.remote;
        void serial(() => handle(r, 'access-log')).catch(() => {});
      },
      { fromStart: o.accessLogFromStart ?? false },
    );
    await tailer.ready;
  }

  // A quarter of the shortest deadline, between 0.1 and 5 s: a miss is seen soon enough, and rarely polled.
  const shortest = o.timeoutMs ?? Math.min(...Object.values(plan.phoneHome.deadlines).map((m) => m * 60_000));
  const tickMs = Math.max(100, Math.min(5000, shortest / 4));
  // Who we wait for is known at once; overdue nodes are reported on the first tick, after the caller's banner.
  for (const s of Object.values((await readState(o.stateFile)).nodes)) if (s.state === 'requested' || s.state === 'installing') watched.add(s.name);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const loop = () => {
    timer = setTimeout(() => {
      checkTimeouts()
        .catch(() => {})
        .finally(() => {
          if (!stopped) loop();
        });
    }, tickMs);
  };
  loop();

  return {
    address,
    watched,
    finished,
    async close() {
      stopped = true;
      clearTimeout(timer);
      await tailer?.stop();
      page?.close();
      if (server) await new Promise<void>((r) => server!.close(() => r()));
      await queue;
    },
  };
}
