/** The Debian backend: one mmdebstrap run lays a bootable node OS into an empty directory. */
import { CommandError, StageError } from '../lib/errors.ts';
import { argvValue } from '../lib/escape.ts';
import { capture, run } from '../lib/run.ts';
import type { BootstrapBackend, ImageBuildContext } from './types.ts';
import type { DebianImage } from '../plan/plan.ts';

/**
 * What a node booted by the PXE kernel with root= on its local disk needs, and no more: the kernel and
 * an initramfs generator (the node boots the image's own pair), systemd as init with udev (devices) and
 * dbus (logind sessions for ssh), e2fsprogs (fsck of the root fs), systemd-networkd (part of systemd)
 * plus iproute2/netbase for the network, ssh and sudo for the admin, CA certificates for HTTPS.
 * zstd: initramfs-tools compresses with it by default and falls back to gzip with a warning without.
 */
export const DEBIAN_BASE_PACKAGES = [
  'linux-image-amd64',
  'initramfs-tools',
  'zstd',
  'systemd-sysv',
  'udev',
  'dbus',
  'e2fsprogs',
  'iproute2',
  'netbase',
  'openssh-server',
  'sudo',
  'ca-certificates',
] as const;

export function debianPackages(spec: DebianImage): string[] {
  return [...new Set([...DEBIAN_BASE_PACKAGES, ...spec.packages])].sort();
}

export function mmdebstrapArgv(spec: DebianImage, target: string): string[] {
  return [
    'mmdebstrap',
    // We are root (checked before): real chown/mknod, no user-namespace emulation.
    '--mode=root',
    // Essential + apt; everything else is listed explicitly so the image stays small and known.
    '--variant=minbase',
    '--format=directory',
    `--components=${spec.components.map((c) => argvValue('mmdebstrap', 'image.components', c)).join(',')}`,
    `--include=${debianPackages(spec).map((p) => argvValue('mmdebstrap', 'image.packages', p)).join(',')}`,
    // Recommends would pull firmware blobs, apparmor, man-db… into every node.
    '--aptopt=APT::Install-Recommends "false"',
    // The build-only options above must not stay in the image's apt/dpkg config.
    '--customize-hook=rm -f "$1/etc/apt/apt.conf.d/99mmdebstrap" "$1/etc/dpkg/dpkg.cfg.d/99mmdebstrap"',
    // mmdebstrap (Getopt::Long) reads options anywhere on the line unless "--" ends them: a suite or mirror
    // such as --setup-hook=… would run as root. "--" plus the refusal of a leading "-", belt and braces.
    '--',
    argvValue('mmdebstrap', 'image.release', spec.release),
    target,
    // No mirror: mmdebstrap's default, deb.debian.org plus -updates and -security for a stable suite.
    ...(spec.mirror !== null ? [argvValue('mmdebstrap', 'image.mirror', spec.mirror)] : []),
  ];
}

/** apt's own diagnosis ("E: Unable to locate package foo") is the useful part of a failure. */
function aptErrors(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^(E|W): /.test(l) || /^(E|W): /.test(l.replace(/^[^:]*: /, '')))
    .slice(0, 10);
}

/** How a log line names where the packages come from: null is mmdebstrap's own choice. */
const source = (spec: DebianImage) => (spec.mirror === null ? 'its default mirrors' : spec.mirror);

async function firstLine(argv: string[]): Promise<string> {
  return (await capture(argv)).split('\n')[0] ?? '';
}

/** The step that times the golden image's mmdebstrap alone. */
export const MMDEBSTRAP_STEP = 'mmdebstrap (golden image)';

export const debianBackend: BootstrapBackend<DebianImage> = {
  distro: 'debian',
  basePackages: DEBIAN_BASE_PACKAGES,
  tools: ['mmdebstrap', 'dpkg', 'aptGet'],
  async keyInputs() {
    return {
      mmdebstrap: await firstLine(['mmdebstrap', '--version']),
      dpkg: await firstLine(['dpkg', '--version']),
      apt: await firstLine(['apt-get', '--version']),
    };
  },
  async bootstrap(spec: DebianImage, target: string, _scratch: string, ctx: ImageBuildContext) {
    const argv = mmdebstrapArgv(spec, target);
    ctx.log.info(`mmdebstrap ${spec.release} from ${source(spec)}: ${debianPackages(spec).length} packages beyond minbase`);
    try {
      // Its own step: the first build's goal is a ratio to this time (bench/first-build.ts reads the line).
      await ctx.log.step(MMDEBSTRAP_STEP, () =>
        run(argv, {
          // mmdebstrap clamps timestamps and makes its own choices reproducible from this.
          env: { ...process.env, SOURCE_DATE_EPOCH: String(ctx.sourceDateEpoch), LC_ALL: 'C.UTF-8' },
        }),
      );
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      const diag = aptErrors(e.stderrTail);
      throw new StageError(
        'bootstrap-image',
        `mmdebstrap could not build Debian ${spec.release} from ${source(spec)}` +
          (diag.length ? ':\n  ' + diag.join('\n  ') : '') +
          `\n${e.message}`,
      );
    }
  },
};
