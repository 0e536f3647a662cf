import type { ClusterSpecInput } from './schema.ts';

/** Identity with a type: gives editors completion and type errors in portacluster.config.ts. */
export function defineConfig(spec: ClusterSpecInput): ClusterSpecInput {
  return spec;
}
