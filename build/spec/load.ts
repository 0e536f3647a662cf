/** Loads a spec from portacluster.config.ts (default export, usually via defineConfig) or a .json file. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { SpecError, UsageError } from '../lib/errors.ts';
import { importSpecModule } from './import-spec.ts';
import { typecheckSpec } from './typecheck.ts';
import { validateSpec, type NormalizedSpec } from './validate.ts';

// Specs written before build/index.ts existed import defineConfig from here.
export { defineConfig } from './define.ts';

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
  if (/\.(ts|mts|cts|js|mjs|cjs)$/.test(path)) {
    if (!existsSync(path)) throw new UsageError(`no spec at ${file}`);
    let spec: unknown;
    try {
      spec = await importSpecModule(path);
    } catch (e) {
      const message = (e as Error).message.replace(/\nRequire stack:[\s\S]*$/, '');
      // CommonJS require() is not under module hooks in Node 20, so only ES-module specs see 'portacluster'.
      const hint = /\.c[jt]s$/.test(path) && message.includes(`'portacluster'`)
        ? `\n  hint: a .cts/.cjs spec is CommonJS and cannot require('portacluster'); name it .ts or .mts, or use only \`import type\` from 'portacluster'`
        : '';
      throw new UsageError(`cannot load the spec ${file}: ${message}${hint}`);
    }
    if (spec === undefined) throw new UsageError(`${file} has no default export (export default defineConfig({...}))`);
    return spec;
  }
  throw new UsageError(`${file}: a spec is a .ts/.mts/.cts/.js/.mjs/.cjs module or a .json file`);
}

export interface LoadOptions {
  /** Type-check a .ts/.mts/.cts spec against this package's types first (validate and build do). */
  typecheck?: boolean;
}

export async function loadSpec(file: string, o: LoadOptions = {}): Promise<LoadedSpec> {
  if (o.typecheck && /\.[cm]?ts$/.test(file) && existsSync(file)) await checkTypes(file);
  const raw = await readSpecFile(file);
  return { path: resolve(file), raw, spec: validateSpec(raw, file) };
}

async function checkTypes(file: string): Promise<void> {
  const result = await typecheckSpec(file);
  if (!result.checked) {
    process.stderr.write(`portacluster: note: ${result.reason}, so ${file} is checked against the schema only\n`);
    return;
  }
  if (result.issues.length === 0) return;
  result.issues[result.issues.length - 1]!.hint = 'the spec is type-checked against portacluster\'s types; --no-typecheck skips this step';
  throw new SpecError(result.issues, file);
}
