/**
 * The package entry (`import { defineConfig } from 'portacluster'`): what a spec file needs and nothing
 * else, so type-checking a spec does not pull in the build pipeline. Specs outside this repository reach it
 * through the loader's resolve hook (build/spec/hooks.mjs), specs inside it through package.json "exports".
 */
export { defineConfig } from './spec/define.ts';
export type {
  ClusterSpec,
  ClusterSpecInput,
  DiskTargetT as DiskTarget,
  InstallerEnvSpecT as InstallerEnvSpec,
  NodeSpecT as NodeSpec,
  PartitionSpecT as PartitionSpec,
} from './spec/schema.ts';
