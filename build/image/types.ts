/** The golden image: what a spec asks for, and the artifacts each image stage hands to the next. */
import type { Logger } from '../lib/log.ts';

export interface ImageSpec {
  /** Used in file names, e.g. "debian". */
  name: string;
  distro: 'debian' | 'arch';
  /** Debian suite e.g. "bookworm"; arch: free text e.g. "rolling". */
  release: string;
  /** Extra packages beyond the backend's base set. */
  packages: string[];
  /** Debian: archive URL; arch: a pacman Server= URL with $repo/$arch, or file:///path for a local repo. */
  mirror: string;
  /** Debian only, default ["main"]. */
  components?: string[];
  /** Arch only: repo names for pacman.conf, default ["core","extra"]. */
  repos?: string[];
  /** A prepared root tree: skip bootstrapping, use it as is (tests, bring-your-own). */
  rootfs?: string;
}

export interface ImageBuildContext {
  cacheDir: string;
  workDir: string;
  force: boolean;
  sourceDateEpoch: number;
  log: Logger;
}

export interface BootstrappedImage {
  rootDir: string;
  cacheKey: string;
  fromCache: boolean;
}

/** fileName = `${name}-${first 16 hex of sha256}.tar.zst` */
export interface PackedImage {
  path: string;
  fileName: string;
  sha256: string;
  size: number;
}

/** Absolute paths of the copies written. */
export interface BootFiles {
  kernel: string;
  initramfs: string;
  kernelVersion: string;
}

/** A host tool a backend needs, and where to get it. */
export interface HostTool {
  command: string;
  debianPackage: string;
  archPackage: string;
  why: string;
}

/** One way of laying an OS into an empty directory. */
export interface BootstrapBackend {
  distro: ImageSpec['distro'];
  tools: HostTool[];
  /** The packages always installed, before the spec's extras. */
  basePackages: readonly string[];
  /** What is wrong with the spec for this backend, found before anything is written. */
  problems?(spec: ImageSpec): string[];
  /** Everything besides the spec that decides the tree: tool versions, local repo databases. */
  keyInputs(spec: ImageSpec): Promise<Record<string, unknown>>;
  /** Fills `target` (absent on entry); `scratch` is a private dir removed afterwards with the rest. */
  bootstrap(spec: ImageSpec, target: string, scratch: string, ctx: ImageBuildContext): Promise<void>;
}
