/**
 * The reimaging loop's figures, in the QEMU lab of the e2e tests (TCG, 2 cores), side by side in one run:
 * 1. the installer vs its floor in the same VM: after the installer has finished, the same VM makes the
 *    root filesystem again and times `curl | zstd -d | tar -x` of the same tarball onto it (tarball mode),
 *    and `curl | zstd -d | dd` of the same ext4 image onto the root partition (image mode)
 *    (goals: ≤ 1.2 × for tarball mode, ≤ 1.1 × for image mode), with the installer's per-step breakdown
 *    (the `step` lines of the log it uploads, build/lifecycle/steps.ts) printed beside the floor; one VM
 *    at a time, so the floor and the install each have the VM's core to themselves;
 * 2. the whole loop, power-on → installed OS at `login:`, BIOS and UEFI, pxelinux/TFTP vs iPXE/HTTP,
 *    tarball vs image mode (goal: iPXE + image ≤ 0.5 × pxelinux + tarball);
 * 3. two nodes installing at once vs one after another.
 * Every figure is a ratio to a floor or to another figure of the same run.
 * Standalone: `node --import tsx bench/loop.ts` (as root; PORTACLUSTER_E2E_CACHE reuses a built cache).
 * BENCH_LOOP=floor,loop,parallel picks the parts (default: all); BENCH_FIRMWARE=bios,uefi the firmwares
 * of parts 1 and 2 (default: both; part 2 runs them at once, or one VM alone); BENCH_MODES=image,tarball
 * part 1's modes.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderAutorun, installerVars } from '../build/render/autorun.ts';
import { readScriptSources } from '../build/render/scripts.ts';
import type { Plan } from '../build/plan/plan.ts';
import { buildLabDist, startLab, type Lab } from '../test/e2e/harness/lab.ts';
import { breakdown, formatBreakdown, parseSteps } from '../build/lifecycle/steps.ts';
import { recordRatio } from './lib/ratios.ts';

const MIN = 60_000;
type Mode = 'tarball' | 'image';
type Firmware = 'bios' | 'uefi';
const list = <T extends string>(env: string | undefined, all: readonly T[]): T[] => {
  const want = (env ?? all.join(',')).split(',').filter(Boolean);
  const bad = want.filter((w) => !all.includes(w as T));
  if (bad.length) throw new Error(`unknown value(s) ${bad.join(', ')}: choose from ${all.join(', ')}`);
  return want as T[];
};
const PARTS = list(process.env.BENCH_LOOP, ['floor', 'loop', 'parallel'] as const);
const FIRMWARES = list<Firmware>(process.env.BENCH_FIRMWARE, ['bios', 'uefi']);
const MODES = list<Mode>(process.env.BENCH_MODES, ['image', 'tarball']);
const GOAL: Record<Mode, number> = { image: 1.1, tarball: 1.2 };

/** The install log the VM uploaded (the watcher's `log` event names the stored file), once it is there. */
async function uploadedLog(lab: Lab, node: string, after: number): Promise<string> {
  for (let i = 0; i < 60; i++) {
    const e = lab.watcherEvents.filter((x) => x.node === node && x.phase === 'log' && x.detail?.startsWith('/') && Date.parse(x.at) >= after).at(-1);
    if (e) return readFile(e.detail!, 'utf8');
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`no uploaded install log from ${node}`);
}

/** The installer with its power action held back, then the floor of its mode, then power-off. */
const FLOOR_HEAD = `
bench_t0="$(date +%s.%N)"
power_action() { log "bench: power action held for the floor measurement"; }
`;

/**
 * Levers tried in the bench before (or instead of) going into installer/lib (BENCH_LEVER=name): each
 * redefines library functions after they are loaded; the breakdown shows what it changed.
 */
const LEVERS: Record<string, string> = {
  // Grow the root online once mounted (the kernel's resize ioctl) instead of resize2fs before mounting.
  'online-resize': `
finish_fs_image() {
  local i="$1" dev="\${PART_DEVS[$1]}"
  step_as tune2fs run tune2fs -U random -- "\${dev}"
  PART_UUIDS[i]="$(blkid -c /dev/null -s UUID -o value -- "\${dev}")"
}
eval "bench_mount_target() $(declare -f mount_target | tail -n +2)"
mount_target() {
  bench_mount_target
  local i
  i="$(root_part_index)"
  step_as resize2fs_online run resize2fs -- "\${PART_DEVS[\${i}]}"
}
`,
  // No progress reports while the image streams (what they cost: one curl every 5 s).
  'no-progress': `
PC_PROGRESS_SECONDS=0
`,
};
const LEVER = process.env.BENCH_LEVER ?? '';
if (LEVER && !(LEVER in LEVERS)) throw new Error(`unknown BENCH_LEVER ${LEVER}: choose from ${Object.keys(LEVERS).join(', ')}`);
const FLOOR_TAIL = `
bench_t1="$(date +%s.%N)"
root_index=0
for i in "\${!PC_PART_MOUNTS[@]}"; do [ "\${PC_PART_MOUNTS[\${i}]}" = / ] && root_index="\${i}"; done
root_dev="\${PART_DEVS[\${root_index}]}"
sync
if [ "\${PC_INSTALL_MODE}" = image ]; then
  floor_t0="$(date +%s.%N)"
  curl -fsS -- "\${PC_FSIMAGE_URL}" | zstd -d -q -c | dd of="\${root_dev}" bs=4M conv=fsync status=none
  floor_t1="$(date +%s.%N)"
  # The floor plus the digest (tee into the installer's hasher, as verified_write does): what hashing costs in this VM.
  mkfifo /run/bench.fifo
  hashed_t0="$(date +%s.%N)"
  "\${PC_SHA256[@]}" < /run/bench.fifo > /run/bench.sha &
  curl -fsS -- "\${PC_FSIMAGE_URL}" | tee /run/bench.fifo | zstd -d -q -c | dd of="\${root_dev}" bs=4M conv=fsync status=none
  wait
  hashed_t1="$(date +%s.%N)"
  bench_hashed="&hashed=$(echo "\${hashed_t1} - \${hashed_t0}" | awk '{print $1 - $3}')"
else
  mkdir -p -- "\${PC_TARGET}"
  mkfs.ext4 -q -F -- "\${root_dev}"
  mount -- "\${root_dev}" "\${PC_TARGET}"
  floor_t0="$(date +%s.%N)"
  curl -fsS -- "\${PC_IMAGE_URL}" | zstd -d -q -c | tar -x -C "\${PC_TARGET}"
  sync
  floor_t1="$(date +%s.%N)"
  umount -- "\${PC_TARGET}"
fi
curl -fsS -o /dev/null -- "\${PC_PHONE_HOME_URL}/bench-floor?host=\${NODE_NAME}&installer=$(echo "\${bench_t1} - \${bench_t0}" | awk '{print $1 - $3}')&floor=$(echo "\${floor_t1} - \${floor_t0}" | awk '{print $1 - $3}')\${bench_hashed:-}" || true
poweroff
`;

function modePlan(lab: Lab, mode: Mode): Plan {
  return { ...lab.plan, image: { ...lab.plan.image, installMode: mode } };
}

async function addFloorVariant(lab: Lab, mode: Mode): Promise<string> {
  const name = `bench-floor-${mode}`;
  const src = await readScriptSources('installer');
  const plan = modePlan(lab, mode);
  const text = renderAutorun({
    title: `installer (bench: ${mode} floor)`,
    specHash: plan.specHash,
    vars: installerVars(plan, lab.image, lab.fsImage),
    libraries: src.libraries,
    main: { name: 'bench', text: FLOOR_HEAD + (LEVERS[LEVER] ?? '') + src.main.text + FLOOR_TAIL },
  });
  await mkdir(join(lab.dist, name), { recursive: true });
  await writeFile(join(lab.dist, name, 'autorun'), text, { mode: 0o755 });
  const swap = (t: string) => t.replaceAll('/installer/', `/${name}/`);
  await writeFile(join(lab.dist, 'pxe/pxelinux.cfg', name), swap(await readFile(join(lab.dist, 'pxe/pxelinux.cfg/installer'), 'utf8')));
  await writeFile(join(lab.dist, 'pxe/ipxe', `${name}.ipxe`), swap(await readFile(join(lab.dist, 'pxe/ipxe/installer.ipxe'), 'utf8')));
  return name;
}

/** Power-on → installed and powered off, then power-on → `login:` from the same disk. */
async function loop(lab: Lab, node: string, profile: string, disk: string): Promise<{ install: number; login: number }> {
  await lab.switchTo(node, profile);
  const vm = await lab.startNode(node, { disk, freshDisk: true });
  await lab.waitReport(node, 'done', 15 * MIN);
  await vm.exited;
  const install = (Date.now() - vm.started) / 1000;
  await lab.switchTo(node, lab.plan.os.name);
  const os = await lab.startNode(node, { disk });
  const login = await os.waitSerial(new RegExp(`^${node} login:`, 'm'), 10 * MIN);
  await os.quit();
  return { install, login };
}

async function main(): Promise<void> {
  const dir = await mkdtemp('/var/tmp/pc-bench-');
  const lab = await startLab(await buildLabDist(dir));
  const out: Record<string, number | string> = {};
  try {
    if (!lab.fsImage) throw new Error('the lab dist has no filesystem image: its spec must install in image mode');
    await lab.addInstallerVariant('bench-tarball', modePlan(lab, 'tarball'), lab.image);
    await lab.addInstallerVariant('bench-image', modePlan(lab, 'image'), lab.image, lab.fsImage);

    // 1. Installer vs floor, one VM at a time, with the installer's own per-step breakdown.
    if (PARTS.includes('floor')) {
      for (const fw of FIRMWARES) {
        for (const mode of MODES) {
          // A node per firmware and mode: waitReport answers with a node's first report of a kind.
          const node = { bios: { image: 'labbios', tarball: 'labdrop' }, uefi: { image: 'labuefi', tarball: 'labipxeuefi' } }[fw][mode];
          await lab.switchTo(node, await addFloorVariant(lab, mode));
          const t0 = Date.now() - 1000;
          const vm = await lab.startNode(node, { disk: join(dir, `floor-${fw}-${mode}.qcow2`), freshDisk: true });
          const r = await lab.waitReport(node, 'bench-floor', 15 * MIN);
          await vm.exited;
          const installer = Number(r.query.installer);
          const floor = Number(r.query.floor);
          const hashed = r.query.hashed ? Number(r.query.hashed) : null;
          const b = breakdown(parseSteps(await uploadedLog(lab, node, t0)));
          const write = b.steps.find((x) => x.name === 'verified_write');
          const key = `${fw} ${mode}`;
          out[`${key}: installer in the VM (s)`] = installer.toFixed(1);
          out[`${key}: floor in the same VM (s)`] = floor.toFixed(1);
          out[`${key}: installer / floor`] = (installer / floor).toFixed(2);
          console.log(`\n${key}: installer ${installer.toFixed(1)} s, floor ${floor.toFixed(1)} s (curl | zstd -d | ${mode === 'image' ? 'dd' : 'tar -x'}); the stream step ${write ? `${write.seconds.toFixed(1)} s = ${(write.seconds / floor).toFixed(2)}× the floor` : 'not found'}; the rest ${write ? (installer - write.seconds).toFixed(1) : '?'} s`);
          if (hashed !== null) console.log(`  the floor with the digest (curl | tee >(hasher) | zstd -d | dd): ${hashed.toFixed(1)} s = ${(hashed / floor).toFixed(2)}× the floor`);
          if (LEVER) console.log(`  lever tried: ${LEVER}`);
          for (const line of formatBreakdown(b)) console.log(`  ${line}`);
          recordRatio({ figure: `installer vs its floor, ${mode} mode, ${fw.toUpperCase()}`, value: installer / floor, goal: { op: '<=', value: GOAL[mode] }, detail: `installer ${installer.toFixed(1)} s / floor ${floor.toFixed(1)} s in the same VM` });
        }
      }
    }

    // 2. Whole loop: BIOS and UEFI at once; pxelinux nodes and iPXE nodes; tarball and image mode.
    const loops: Record<string, number> = {};
    for (const mode of PARTS.includes('loop') ? (['tarball', 'image'] as const) : []) {
      for (const [loader, bios, uefi] of [['pxelinux', 'labbios', 'labuefi'], ['ipxe', 'labipxe', 'labipxeuefi']] as const) {
        // BENCH_FIRMWARE picks the firmwares here too: both run at once, or one alone (the issue's "one VM").
        const runs = await Promise.all([
          ...(FIRMWARES.includes('bios') ? [['BIOS', loop(lab, bios, `bench-${mode}`, join(dir, `${bios}-${mode}.qcow2`))] as const] : []),
          ...(FIRMWARES.includes('uefi') ? [['UEFI', loop(lab, uefi, `bench-${mode}`, join(dir, `${uefi}-${mode}.qcow2`))] as const] : []),
        ].map(async ([fw, p]) => [fw, await p] as const));
        for (const [fw, r] of runs) {
          loops[`${fw} ${loader} ${mode}`] = r.install + r.login;
          out[`${fw} ${loader} ${mode}: install power-on → off (s)`] = r.install.toFixed(1);
          out[`${fw} ${loader} ${mode}: OS power-on → login: (s)`] = r.login.toFixed(1);
          out[`${fw} ${loader} ${mode}: whole loop (s)`] = (r.install + r.login).toFixed(1);
        }
      }
    }
    const together = FIRMWARES.length > 1 ? 'BIOS and UEFI VMs at once' : 'one VM alone';
    for (const fw of PARTS.includes('loop') ? FIRMWARES.map((f) => f.toUpperCase()) : []) {
      const [fast, slow] = [loops[`${fw} ipxe image`]!, loops[`${fw} pxelinux tarball`]!];
      out[`${fw}: iPXE + image / pxelinux + tarball (goal ≤ 0.5)`] = (fast / slow).toFixed(2);
      recordRatio({ figure: `whole loop, iPXE + image vs pxelinux + tarball, ${fw}`, value: fast / slow, goal: { op: '<=', value: 0.5 }, detail: `${fast.toFixed(1)} s / ${slow.toFixed(1)} s, power-on → login:, ${together}` });
    }

    // 3. Two BIOS nodes (image mode, iPXE): one after another vs at once.
    if (PARTS.includes('parallel')) {
      const install = async (node: string, disk: string) => {
        await lab.switchTo(node, 'bench-image');
        const vm = await lab.startNode(node, { disk, freshDisk: true });
        await lab.waitReport(node, 'done', 15 * MIN);
        await vm.exited;
      };
      const s0 = Date.now();
      await install('labbios', join(dir, 's1.qcow2'));
      await install('labdrop', join(dir, 's2.qcow2'));
      const serial = (Date.now() - s0) / 1000;
      const p0 = Date.now();
      await Promise.all([install('labbios', join(dir, 'p1.qcow2')), install('labdrop', join(dir, 'p2.qcow2'))]);
      const parallel = (Date.now() - p0) / 1000;
      out['two BIOS installs one after another (s)'] = serial.toFixed(1);
      out['two BIOS installs at once (s)'] = parallel.toFixed(1);
      out['at once / one after another'] = (parallel / serial).toFixed(2);
    }
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
