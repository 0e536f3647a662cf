/** Loads a spec from portacluster.config.ts (default export, usually via defineConfig) or a .json file. */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SpecError, UsageError } from '../lib/errors.ts';
import type { ClusterSpecInput } from './schema.ts';
import { validateSpec, type NormalizedSpec } from './validate.ts';

/** Identity with a type: gives editors completion and type errors in portacluster.config.ts. */
export function defineConfig(spec: ClusterSpecInput): ClusterSpecInput {
  return spec;
}

export interface LoadedSpec {
  path: string;
  raw: unknown;
  spec: NormalizedSpec;
}

export async function readSpecFile(file: string): Promise<unknown> {
  const path = resolve(file);
  if (path.endsWith('.json')) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read the spec ${file}: ${(e as Error).message}`);
    }
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new SpecError([{ path: '(root)', message: `not valid JSON: ${(e as Error).message}` }], file);
    }
  }
  if (/\.(ts|mts|js|mjs)$/.test(path)) {
    let mod: { default?: unknown };
    try {
      mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes(path)) throw new UsageError(`no spec at ${file}`);
      throw new UsageError(`cannot load the spec ${file}: ${err.message}`);
    }
    if (mod.default === undefined) throw new UsageError(`${file} has no default export (export default defineConfig({...}))`);
    return mod.default;
  }
  throw new UsageError(`${file}: a spec is a .ts/.js module or a .json file`);
}

export async function loadSpec(file: string): Promise<LoadedSpec> {
  const raw = await readSpecFile(file);
  return { path: resolve(file), raw, spec: validateSpec(raw, file) };
}
