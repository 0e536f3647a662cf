/**
 * The lab's PDU stand-in, outlet side: a net-snmp `pass_persist` handler (run by the lab's snmpd, see
 * pdu-agent.ts) that serves APC PowerNet-MIB sPDUOutletCtl (.1.3.6.1.4.1.318.1.1.4.4.2.1.3.<outlet>) and
 * powers the QEMU VM behind each outlet through its monitor: get → 1 (outletOn) when the VM runs, else 2
 * (outletOff); set 1 on, 2 off, 3 reboot (off now, on again after rebootSeconds, as an APC outlet's
 * immediateReboot does with its sPDUOutletRebootDuration).
 *
 * The protocol (snmpd.conf(5)): "PING" → "PONG"; "get"/"getnext" + OID → OID, type, value or "NONE";
 * "set" + OID + "type value" → "DONE" or an error word (not-writable, wrong-type, wrong-value…).
 * Usage: node --import tsx build/lab/pdu-outlets.ts CONFIG.json   (what pass_persist runs)
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { vmOff, vmPower, vmReset } from '../power/qemu-monitor.ts';

export interface PduOutletsConfig {
  base: string;
  log: string;
  rebootSeconds: number;
  outlets: Record<string, { name: string; monitor: string; pid: number }>;
}

const cfg = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as PduOutletsConfig;
const base = cfg.base.replace(/^\.?/, '.');
const numbers = Object.keys(cfg.outlets).map(Number).sort((x, y) => x - y);
const pendingOn = new Map<number, NodeJS.Timeout>();
// snmpd reads the handler's stderr through the same pipe as its stdout: a log line there would be taken
// for an answer. So the log goes to its own file.
const log = (m: string) => appendFileSync(cfg.log, `${new Date().toISOString()} pdu-outlets: ${m}\n`);

const parts = (oid: string) => oid.replace(/^\./, '').split('.').map(Number);
function compareOid(x: string, y: string): number {
  const [a, b] = [parts(x), parts(y)];
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** The outlet an OID names (base.N with N configured), or null. */
function outletOf(oid: string): number | null {
  const m = new RegExp(`^${base.replace(/\./g, '\\.')}\\.(\\d+)$`).exec(oid.startsWith('.') ? oid : `.${oid}`);
  return m && cfg.outlets[m[1]!] ? Number(m[1]) : null;
}

async function value(outlet: number): Promise<string> {
  const power = await vmPower(cfg.outlets[outlet]!);
  return `${base}.${outlet}\ninteger\n${power === 'running' ? 1 : 2}\n`;
}

async function set(outlet: number, typeValue: string): Promise<string> {
  const [type, v] = typeValue.trim().split(/\s+/);
  if (type !== 'integer') return 'wrong-type\n';
  const vm = cfg.outlets[outlet]!;
  clearTimeout(pendingOn.get(outlet));
  pendingOn.delete(outlet);
  const running = (await vmPower(vm)) === 'running';
  if (v === '1') {
    if (!running) await vmReset(vm);
  } else if (v === '2') {
    if (running) await vmOff(vm);
  } else if (v === '3') {
    await vmOff(vm);
    pendingOn.set(outlet, setTimeout(() => {
      pendingOn.delete(outlet);
      vmReset(vm).then(() => log(`outlet ${outlet} (${vm.name}): on after reboot`), (e: Error) => log(`outlet ${outlet}: ${e.message}`));
    }, cfg.rebootSeconds * 1000));
  } else return 'wrong-value\n';
  log(`outlet ${outlet} (${vm.name}): set ${v}`);
  return 'DONE\n';
}

async function answer(next: () => Promise<string | undefined>, command: string): Promise<string> {
  if (command === 'PING') return 'PONG\n';
  const oid = (await next())?.trim() ?? '';
  if (command === 'get') {
    const o = outletOf(oid);
    return o === null ? 'NONE\n' : value(o);
  }
  if (command === 'getnext') {
    const o = numbers.find((n) => compareOid(`${base}.${n}`, oid) > 0);
    return o === undefined ? 'NONE\n' : value(o);
  }
  if (command === 'set') {
    const typeValue = (await next()) ?? '';
    const o = outletOf(oid);
    return o === null ? 'not-writable\n' : set(o, typeValue);
  }
  return 'NONE\n';
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const next = async () => {
  const r = await lines.next();
  return r.done ? undefined : r.value;
};
for (;;) {
  const command = await next();
  if (command === undefined) break;
  if (!command.trim()) continue;
  const reply = await answer(next, command.trim()).catch((e: Error) => {
    log(`${command.trim()}: ${e.message}`);
    return command.trim() === 'set' ? 'inconsistent-value\n' : 'NONE\n';
  });
  process.stdout.write(reply);
}
for (const t of pendingOn.values()) clearTimeout(t);
