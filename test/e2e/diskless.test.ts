/**
 * The diskless profile, for real: a node PXE-boots the golden kernel with the built-in environment's
 * initramfs, fetches and verifies the squashfs root, runs it from RAM under an overlay and switches to
 * it. Pass/fail on deterministic signals: the `diskless-ready` report, `<name> login:` on the serial
 * console, ssh with the spec's key, and the disk's bytes (qemu-img compare and the qcow2 file's digest).
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../build/lib/run.ts';
import { buildLabDist, startLab, type Lab } from './harness/lab.ts';
import { createDisk, type Vm } from './harness/vm.ts';
import { MANIFEST_FILE, PXELINUX_DIR } from '../../build/layout.ts';

const MIN = 60_000;
const NAME = 'labdiskless';
let lab: Lab;
let dir: string;
const figures: string[] = [];

/** Progress on stderr as it happens (a hang shows where it is). */
const step = (what: string) => process.stderr.write(`diskless e2e: ${what}\n`);
const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

describe.sequential('diskless profile (QEMU)', () => {
  beforeAll(async () => {
    dir = await mkdtemp('/var/tmp/pc-e2e-');
    const built = await buildLabDist(dir);
    figures.push(`dist build: ${built.buildSeconds.toFixed(1)} s`);
    lab = await startLab(built);
  }, 60 * MIN);

  afterAll(async () => {
    await lab?.stop();
    console.log(`figures:\n  ${figures.join('\n  ')}`);
    if (dir && !process.env.PORTACLUSTER_E2E_KEEP) await rm(dir, { recursive: true, force: true });
  });

  it('a diskless node reaches login: with its hostname and key, runs on an overlay, and its disk is byte-for-byte untouched', async () => {
    const vms: Vm[] = [];
    try {
      const node = lab.node(NAME);
      expect(await readlink(join(lab.dist, PXELINUX_DIR, node.pxeFile))).toBe('diskless');
      const manifest = JSON.parse(await readFile(join(lab.dist, MANIFEST_FILE), 'utf8'));
      const root = manifest.artifacts.diskless.root as { file: string; size: number };
      figures.push(`squashfs root: ${(root.size / 1048576).toFixed(1)} MiB (${root.file})`);

      const disk = join(dir, `${NAME}.qcow2`);
      const pristine = join(dir, `${NAME}.pristine.qcow2`);
      await createDisk(disk);
      await copyFile(disk, pristine);
      const digest = await sha256(disk);

      const vm = await lab.startNode(NAME, { disk });
      vms.push(vm);
      step('node started');
      const ready = await lab.waitReport(NAME, 'diskless-ready', 10 * MIN);
      step('diskless-ready reported');
      const login = await vm.waitSerial(new RegExp(`^${NAME} login:`, 'm'), 10 * MIN);
      step(`login: on the serial console after ${login.toFixed(1)} s`);
      const at = (p: string) => ((lab.reports.find((r) => r.host === NAME && r.phase === p)?.at ?? NaN) - vm.started) / 1000;
      figures.push(`${NAME}: start ${at('start').toFixed(1)} s, download ${at('download').toFixed(1)}, configure ${at('configure').toFixed(1)}, diskless-ready ${((ready.at - vm.started) / 1000).toFixed(1)}, power-on → login: ${login.toFixed(1)} s`);

      const out = await lab.ssh(lab.keys.admin, lab.plan.users[0]!.name, node.ip!, "hostname; findmnt -no FSTYPE /; sudo -n id -u; free -m | awk '/^Mem:/ {print $2, $3, $5, $6, $7}'", 3 * MIN);
      step(`ssh: ${JSON.stringify(out)}`);
      const [hostname, fstype, uid, mem] = out.trim().split('\n');
      expect([hostname, fstype, uid]).toEqual([NAME, 'overlay', '0']);
      const [total, used, shared, cache, available] = mem!.split(' ').map(Number);
      // The squashfs and the overlay's upper layer are tmpfs: counted in shared and buff/cache, not used.
      figures.push(`${NAME}: RAM after login (free -m): total ${total}, used ${used}, shared ${shared}, buff/cache ${cache}, available ${available} MiB`);

      // Powered off from inside (qemu exits with the guest): every write the guest could have made is on
      // the qcow2 by then.
      const ssh = ['ssh', '-i', lab.keys.admin, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR'];
      await run(lab.ns.exec([...ssh, `${lab.plan.users[0]!.name}@${node.ip!}`, 'sudo -n systemctl poweroff']), { nothrow: true, timeoutMs: 60_000 });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([vm.exited, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${NAME} did not power off within 3 min`)), 3 * MIN)))]);
      clearTimeout(timer);
      step('vm powered off');
      const same = await run(['qemu-img', 'compare', '-q', pristine, disk], { nothrow: true });
      expect(same.exitCode, 'the diskless node changed its disk').toBe(0);
      expect(await sha256(disk), 'the qcow2 file itself changed').toBe(digest);
    } catch (e) {
      console.error(await lab.diagnose(vms));
      throw e;
    }
  }, 30 * MIN);
});
