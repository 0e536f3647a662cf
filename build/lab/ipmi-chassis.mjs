#!/usr/bin/env node
/**
 * The lab's IPMI stand-in, part two: ipmi_sim's chassis-control program (lan.conf `chassis_control`). ipmi_sim
 * runs it through popen as `<this> MONITOR BOOTFILE get power|boot…` or `… set power 0|1 reset 1 boot pxe…`
 * and reads `power:1` lines back. It powers the lab's already-running `qemu -S -no-shutdown` through its HMP
 * monitor the way build/power/qemu-monitor.ts does (this file runs outside portacluster's TypeScript, under
 * plain node, so it repeats those few monitor calls), and keeps the boot-once flag in BOOTFILE: a BMC that
 * stores "next boot: PXE" and clears it at the next power-on or reset, as the IPMI spec says. The lab VM boots
 * the network first anyway; BOOTFILE.log records each consumed flag so a test can see it was honoured.
 */
import { connect } from 'node:net';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';

const [monitor, bootFile, op, ...params] = process.argv.slice(2);

function hmp(command, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const s = connect(monitor);
    let buf = '';
    let sent = false;
    const timer = setTimeout(() => (s.destroy(), reject(new Error(`monitor ${monitor}: no answer to ${command}`))), timeoutMs);
    s.on('error', (e) => (clearTimeout(timer), reject(e)));
    s.on('data', (d) => {
      buf += d.toString();
      if (!buf.includes('(qemu)')) return;
      if (!sent) {
        sent = true;
        buf = '';
        s.write(command + '\n');
        return;
      }
      clearTimeout(timer);
      s.destroy();
      resolve(buf);
    });
  });
}

const running = async () => /running/.test(await hmp('info status'));
const boot = () => {
  try {
    return readFileSync(bootFile, 'utf8').trim() || 'default';
  } catch {
    return 'default';
  }
};
/** Power-on or reset: the stored boot device is used once, then cleared. */
const consumeBoot = () => {
  const b = boot();
  if (b === 'default') return;
  appendFileSync(`${bootFile}.log`, `${new Date().toISOString()} boot-once ${b} used\n`);
  writeFileSync(bootFile, 'default\n');
};

async function main() {
  if (op === 'get') {
    const out = [];
    for (const p of params) {
      if (p === 'power') out.push(`power:${(await running()) ? 1 : 0}`);
      else if (p === 'boot') out.push(`boot:${boot()}`);
      else throw new Error(`cannot get ${p}`);
    }
    process.stdout.write(out.join('\n') + '\n');
    return;
  }
  if (op !== 'set') throw new Error(`unknown operation ${op ?? ''}`);
  for (let i = 0; i < params.length; i += 2) {
    const [p, v] = [params[i], params[i + 1]];
    if (p === 'power' && v === '1') {
      if (!(await running())) {
        consumeBoot();
        await hmp('system_reset');
        await hmp('cont');
      }
    } else if (p === 'power' && v === '0') {
      await hmp('stop');
      await hmp('system_reset');
    } else if (p === 'reset') {
      consumeBoot();
      await hmp('system_reset');
    } else if (p === 'boot') {
      writeFileSync(bootFile, `${v}\n`);
    } else if (p === 'identify') {
      // "interval force" arrives as one quoted value: a chassis light the lab does not have.
    } else if (p === 'shutdown') {
      // A soft power-off request: the lab VM has no ACPI agent to ask, so it is a hard off.
      await hmp('stop');
      await hmp('system_reset');
    } else throw new Error(`cannot set ${p} ${v ?? ''}`);
  }
}

main().catch((e) => {
  // ipmi_sim logs the program's stdout on failure.
  process.stdout.write(`${e.message}\n`);
  process.exit(1);
});
