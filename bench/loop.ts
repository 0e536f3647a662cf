/**
 * The reimaging loop's figures, in the QEMU lab of the e2e tests (TCG, 2 cores):
 * 1. installer time vs its floor, measured in the same VM and run: after the installer has finished, the
 *    same VM makes the root filesystem again and times `curl | zstd -d | tar -x` of the same tarball onto
 *    it (goal: installer ≤ 1.2 × floor);
 * 2. the whole loop, power-on → installed OS at `login:`, BIOS and UEFI;
 * 3. two nodes installing at once vs one after another.
 * Standalone: `node --import tsx bench/loop.ts` (as root; PORTACLUSTER_E2E_CACHE reuses a built cache).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderAutorun, installerVars } from '../build/render/autorun.ts';
import { readScriptSources } from '../build/render/scripts.ts';
import { buildLabDist, startLab, type Lab } from '../test/e2e/harness/lab.ts';
import type { Vm } from '../test/e2e/harness/vm.ts';

const MIN = 60_000;

/** The installer with its power action held back, then the floor, then power-off. */
const FLOOR = `
bench_t0="$(date +%s.%N)"
power_action() { log "bench: power action held for the floor measurement"; }
`;
const FLOOR_TAIL = `
bench_t1="$(date +%s.%N)"
root_index=0
for i in "\${!PC_PART_MOUNTS[@]}"; do [ "\${PC_PART_MOUNTS[\${i}]}" = / ] && root_index="\${i}"; done
mkdir -p -- "\${PC_TARGET}"
mkfs.ext4 -q -F -- "\${PART_DEVS[\${root_index}]}"
mount -- "\${PART_DEVS[\${root_index}]}" "\${PC_TARGET}"
sync
floor_t0="$(date +%s.%N)"
curl -fsS -- "\${PC_IMAGE_URL}" | zstd -d -q -c | tar -x -C "\${PC_TARGET}"
sync
floor_t1="$(date +%s.%N)"
umount -- "\${PC_TARGET}"
curl -fsS -o /dev/null -- "\${PC_PHONE_HOME_URL}/bench-floor?host=\${NODE_NAME}&installer=$(echo "\${bench_t1} - \${bench_t0}" | awk '{print $1 - $3}')&floor=$(echo "\${floor_t1} - \${floor_t0}" | awk '{print $1 - $3}')" || true
poweroff
`;

async function addFloorVariant(lab: Lab): Promise<void> {
  const src = await readScriptSources('installer');
  const text = renderAutorun({
    title: 'installer (bench: floor)',
    specHash: lab.plan.specHash,
    vars: installerVars(lab.plan, lab.image),
    libraries: src.libraries,
    main: { name: 'bench', text: FLOOR + src.main.text + FLOOR_TAIL },
  });
  await mkdir(join(lab.dist, 'bench-floor'), { recursive: true });
  await writeFile(join(lab.dist, 'bench-floor/autorun'), text, { mode: 0o755 });
  const profile = await readFile(join(lab.dist, 'pxe/pxelinux.cfg/installer'), 'utf8');
  await writeFile(join(lab.dist, 'pxe/pxelinux.cfg/bench-floor'), profile.replaceAll('/installer/', '/bench-floor/'));
}

async function installed(lab: Lab, name: string, disk: string): Promise<{ vm: Vm; seconds: number }> {
  const vm = await lab.startNode(name, { disk, freshDisk: true });
  await lab.waitReport(name, 'done', 15 * MIN);
  await vm.exited;
  return { vm, seconds: (Date.now() - vm.started) / 1000 };
}

async function loginSeconds(lab: Lab, name: string, disk: string): Promise<number> {
  const vm = await lab.startNode(name, { disk });
  const s = await vm.waitSerial(new RegExp(`^${name} login:`, 'm'), 10 * MIN);
  await vm.quit();
  return s;
}

async function main(): Promise<void> {
  const dir = await mkdtemp('/var/tmp/pc-bench-');
  const lab = await startLab(await buildLabDist(dir));
  const out: Record<string, number> = {};
  try {
    // 1. Installer vs floor, in the same VM and run.
    await addFloorVariant(lab);
    await lab.switchTo('labbios', 'bench-floor');
    const vm = await lab.startNode('labbios', { disk: join(dir, 'floor.qcow2'), freshDisk: true });
    const floor = await lab.waitReport('labbios', 'bench-floor', 15 * MIN);
    await vm.exited;
    out['installer, in the VM (s)'] = Number(floor.query.installer);
    out['floor: curl | zstd -d | tar -x, same VM (s)'] = Number(floor.query.floor);
    out['installer / floor'] = Number(floor.query.installer) / Number(floor.query.floor);
    const at = (p: string) => lab.reports.find((r) => r.host === 'labbios' && r.phase === p)!.at - vm.started;
    for (const p of ['start', 'disk', 'partition', 'download', 'configure', 'done']) out[`bios installer ${p} at (s)`] = at(p) / 1000;

    // 2. Whole loop, BIOS and UEFI at once (each with -smp 1 on the 2 cores).
    await lab.switchTo('labbios', 'installer');
    const disks = { labbios: join(dir, 'labbios.qcow2'), labuefi: join(dir, 'labuefi.qcow2') };
    const [b, u] = await Promise.all([installed(lab, 'labbios', disks.labbios), installed(lab, 'labuefi', disks.labuefi)]);
    await lab.switchTo('labbios', lab.plan.os.name);
    await lab.switchTo('labuefi', lab.plan.os.name);
    const [bl, ul] = await Promise.all([loginSeconds(lab, 'labbios', disks.labbios), loginSeconds(lab, 'labuefi', disks.labuefi)]);
    out['BIOS install power-on → off (s)'] = b.seconds;
    out['UEFI install power-on → off (s)'] = u.seconds;
    out['BIOS installed OS power-on → login: (s)'] = bl;
    out['UEFI installed OS power-on → login: (s)'] = ul;
    out['BIOS whole loop (s)'] = b.seconds + bl;
    out['UEFI whole loop (s)'] = u.seconds + ul;

    // 3. Two BIOS nodes: one after another vs at once.
    for (const n of ['labbios', 'labdrop']) await lab.switchTo(n, 'installer');
    const t0 = Date.now();
    await installed(lab, 'labbios', join(dir, 's1.qcow2'));
    await installed(lab, 'labdrop', join(dir, 's2.qcow2'));
    out['two BIOS installs one after another (s)'] = (Date.now() - t0) / 1000;
    const t1 = Date.now();
    await Promise.all([installed(lab, 'labbios', join(dir, 'p1.qcow2')), installed(lab, 'labdrop', join(dir, 'p2.qcow2'))]);
    out['two BIOS installs at once (s)'] = (Date.now() - t1) / 1000;
  } catch (e) {
    console.error(await lab.diagnose([]));
    throw e;
  } finally {
    await lab.stop();
    console.log(JSON.stringify(out, null, 2));
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
