/** The golden image: the artifacts each image stage hands to the next (what a spec asks for is the plan's ImageSpec). */
import type { RequirementName } from '../lib/host.ts';
import type { Logger } from '../lib/log.ts';
import type { ImageSpec } from '../plan/plan.ts';

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

/** One way of laying an OS into an empty directory, for the image variant S of its distro. */
export interface BootstrapBackend<S extends ImageSpec = ImageSpec> {
  distro: S['distro'];
  /** The host tools it runs, in lib/host.ts's vocabulary. */
  tools: readonly RequirementName[];
  /** The packages always installed, before the spec's extras. */
  basePackages: readonly string[];
  /** What is wrong with the spec for this backend, found before anything is written. */
  problems?(spec: S): string[];
  /** Everything besides the spec that decides the tree: tool versions, local repo databases. */
  keyInputs(spec: S): Promise<Record<string, unknown>>;
  /** Fills `target` (absent on entry); `scratch` is a private dir removed afterwards with the rest. */
  bootstrap(spec: S, target: string, scratch: string, ctx: ImageBuildContext): Promise<void>;
}
