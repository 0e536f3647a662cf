/**
 * Specs written outside this repository: a fresh temp dir with no package.json (or one saying "commonjs"),
 * loaded through the real CLI as a child process, both as `node --import tsx build/cli/main.ts` and through
 * bin/portacluster.js (which registers tsx itself), from the spec's own directory.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadSpec } from '../build/spec/load.ts';
import { typecheckSpec } from '../build/spec/typecheck.ts';
import { SpecError, UsageError } from '../build/lib/errors.ts';
import { baseSpec } from './fixtures/specs.ts';
import { workspace } from './helpers/workspace.ts';

const CLI = resolve('build/cli/main.ts');
const BIN = resolve('bin/portacluster.js');
const EXAMPLE = resolve('examples/portacluster.config.ts');
type Route = 'import' | 'bin';

function cli(route: Route, args: string[], cwd: string) {
  const argv = route === 'bin' ? [BIN, ...args] : ['--import', import.meta.resolve('tsx'), CLI, ...args];
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const child = spawn(process.execPath, argv, { cwd, env: { ...process.env, PORTACLUSTER_CONFIG: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** No Node stack frame reaches the user. */
const NO_STACK = /^\s+at .+[:(]/m;

let ws: Awaited<ReturnType<typeof workspace>>;
beforeEach(async () => {
  ws = await workspace('pc-spec-load-');
});
afterEach(() => ws.cleanup());

/** The bundled example as a user copies it: same text, their own directory, one node fewer. */
async function copiedExample(dir: string, name = 'spec.ts'): Promise<string> {
  const text = await readFile(EXAMPLE, 'utf8');
  expect(text).toContain(`import { defineConfig } from 'portacluster';`);
  const edited = text.replace(/^\s*\{ name: 'node6'.*\n/m, '');
  expect(edited).not.toBe(text);
  await writeFile(join(dir, name), edited);
  return join(dir, name);
}

describe('the bundled example copied to a temp dir', () => {
  it.each<Route>(['import', 'bin'])('validates through the CLI (%s), with the edit taking effect', async (route) => {
    await copiedExample(ws.dir);
    const r = await cli(route, ['validate', '--config', 'spec.ts'], ws.dir);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^spec\.ts: ok \(5 nodes, spec [0-9a-f]{16}\)$/m);
    expect(r.code).toBe(0);
  });

  it.each<[Route, string]>([
    ['import', 'spec.ts'],
    ['bin', 'spec.ts'],
    ['bin', 'spec.js'],
  ])('a plain `export default {...}` validates through the CLI (%s, %s)', async (route, name) => {
    await writeFile(join(ws.dir, name), `export default ${JSON.stringify(baseSpec(), null, 2)};\n`);
    // Loading is the point here; the type-check of a .ts spec is covered below and in-process.
    const r = await cli(route, ['validate', '--no-typecheck', '--config', name], ws.dir);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`${name}: ok (2 nodes`);
    expect(r.code).toBe(0);
  });

  it('validates beside a package.json that says "type": "commonjs" (absolute --config, another cwd)', async () => {
    await writeFile(join(ws.dir, 'package.json'), '{ "type": "commonjs" }\n');
    const spec = await copiedExample(ws.dir);
    const r = await cli('bin', ['validate', '--no-typecheck', '--config', spec], resolve('.'));
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`${spec}: ok (5 nodes`);
    expect(r.code).toBe(0);
  });
});

describe('every spec format, in-process through the same loader', () => {
  const literal = () => JSON.stringify(baseSpec(), null, 2);
  const FORMATS: Record<string, () => string> = {
    'spec.ts': () => `import type { ClusterSpecInput } from 'portacluster';\nexport default ${literal()} satisfies ClusterSpecInput;\n`,
    'spec.mts': () => `import { defineConfig } from 'portacluster';\nexport default defineConfig(${literal()});\n`,
    'spec.cts': () => `import type { ClusterSpecInput } from 'portacluster';\nconst spec: ClusterSpecInput = ${literal()};\nexport default spec;\n`,
    'spec.js': () => `export default ${literal()};\n`,
    'spec.mjs': () => `import { defineConfig } from 'portacluster';\nexport default defineConfig(${literal()});\n`,
    'spec.cjs': () => `module.exports = ${literal()};\n`,
    'spec.json': () => literal(),
  };
  const PACKAGES = { none: undefined, commonjs: '{ "type": "commonjs" }', module: '{ "type": "module" }' };
  const cases = Object.keys(FORMATS).flatMap((f) => Object.keys(PACKAGES).map((p) => [f, p] as const));

  it.each(cases)('%s with package.json %s', async (name, pkg) => {
    const json = PACKAGES[pkg as keyof typeof PACKAGES];
    if (json) await writeFile(join(ws.dir, 'package.json'), json);
    await writeFile(join(ws.dir, name), FORMATS[name]!());
    // The type-check ignores package.json (it checks types, not module format): once per file kind is enough.
    const { spec } = await loadSpec(join(ws.dir, name), { typecheck: /ts$/.test(name) && pkg === 'none' });
    expect(spec.cluster).toBe('testcluster');
    expect(spec.nodes.map((n) => n.mac)).toEqual(['c0:3f:d5:60:e5:a1', 'c0:3f:d5:60:cd:8b']);
  });

  it("the spec's own relative imports work: a .ts module and a .json file, from a subdirectory", async () => {
    const spec = baseSpec();
    await mkdir(join(ws.dir, 'site'));
    await writeFile(join(ws.dir, 'site/nodes.ts'), `import type { NodeSpec } from 'portacluster';\nexport const nodes: NodeSpec[] = ${JSON.stringify(spec.nodes)};\n`);
    await writeFile(join(ws.dir, 'site/domain.json'), JSON.stringify({ domain: 'lab.example.test' }));
    const { nodes: _n, domain: _d, ...rest } = spec;
    await writeFile(
      join(ws.dir, 'spec.ts'),
      [
        `import { defineConfig } from 'portacluster';`,
        `import { nodes } from './site/nodes.ts';`,
        `import site from './site/domain.json';`,
        `export default defineConfig({ ...${JSON.stringify(rest)}, nodes, domain: site.domain });`,
      ].join('\n'),
    );
    const { spec: loaded } = await loadSpec(join(ws.dir, 'spec.ts'), { typecheck: true });
    expect(loaded.domain).toBe('lab.example.test');
    expect(loaded.nodes).toHaveLength(2);
  });

  it('a CommonJS helper beside an ES-module spec stays CommonJS', async () => {
    await writeFile(join(ws.dir, 'helper.js'), `// export default is not used here\nmodule.exports = { cluster: 'from-cjs' };\n`);
    await writeFile(join(ws.dir, 'spec.ts'), `import helper from './helper.js';\nexport default { ...${literal()}, cluster: helper.cluster };\n`);
    expect((await loadSpec(join(ws.dir, 'spec.ts'))).spec.cluster).toBe('from-cjs');
  });

  it('a spec edited on disk loads again with the new value in the same process', async () => {
    const file = join(ws.dir, 'spec.ts');
    await writeFile(file, `export default ${JSON.stringify(baseSpec())};\n`);
    expect((await loadSpec(file)).spec.cluster).toBe('testcluster');
    await writeFile(file, `export default ${JSON.stringify({ ...baseSpec(), cluster: 'edited' })};\n`);
    expect((await loadSpec(file)).spec.cluster).toBe('edited');
  });

  it('a .cts spec that require()s portacluster is told what to do instead', async () => {
    const file = join(ws.dir, 'spec.cts');
    await writeFile(file, `import { defineConfig } from 'portacluster';\nexport default defineConfig(${literal()});\n`);
    const err = await loadSpec(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toContain(`Cannot find module 'portacluster'`);
    expect((err as Error).message).toContain('name it .ts or .mts');
    expect((err as Error).message).not.toContain('Require stack');
  });
});

describe('type errors and broken imports', () => {
  /** A valid spec with one field of the wrong type, on a known line. */
  async function typeError(dir: string): Promise<string> {
    const lines = [`import { defineConfig } from 'portacluster';`, `export default defineConfig({`, ...JSON.stringify(baseSpec(), null, 2).split('\n').slice(1)];
    const i = lines.findIndex((l) => l.includes('"leaseTime"'));
    lines[i] = lines[i]!.replace('"1h"', '3600');
    lines[lines.length - 1] = '});';
    await writeFile(join(dir, 'spec.ts'), lines.join('\n') + '\n');
    return `spec.ts:${i + 1}:${lines[i]!.indexOf('"leaseTime"') + 1}`;
  }

  it('validate reports file:line:column and exits 2', async () => {
    const where = await typeError(ws.dir);
    const r = await cli('import', ['validate', '--config', 'spec.ts'], ws.dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`  ${where}: Type 'number' is not assignable to type 'string'.`);
    expect(r.stderr).toContain('--no-typecheck');
    expect(r.stderr).not.toMatch(NO_STACK);
    expect(r.stdout).toBe('');
  });

  it('build stops at the type error before writing anything', async () => {
    await typeError(ws.dir);
    const r = await cli('bin', ['build', '--config', 'spec.ts', '--out', 'dist'], ws.dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/spec\.ts:\d+:\d+: Type 'number'/);
    expect(existsSync(join(ws.dir, 'dist'))).toBe(false);
  });

  it('--no-typecheck leaves the spec to the schema, which names the field', async () => {
    await typeError(ws.dir);
    const r = await cli('bin', ['validate', '--no-typecheck', '--config', 'spec.ts'], ws.dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ {2}dhcp\.leaseTime: /m);
    expect(r.stderr).not.toContain('not assignable');
  });

  it('a missing relative import is named with its line, and without the type-check by the loader', async () => {
    await writeFile(join(ws.dir, 'spec.ts'), `import { defineConfig } from 'portacluster';\nimport nodes from './nodes.ts';\nexport default defineConfig({ nodes });\n`);
    const checked = await cli('bin', ['validate', '--config', 'spec.ts'], ws.dir);
    expect(checked.code).toBe(2);
    expect(checked.stderr).toContain(`spec.ts:2:19: Cannot find module './nodes.ts'`);
    const unchecked = await cli('bin', ['validate', '--no-typecheck', '--config', 'spec.ts'], ws.dir);
    expect(unchecked.code).toBe(2);
    expect(unchecked.stderr).toBe(`portacluster: cannot load the spec spec.ts: Cannot find module '${join(ws.dir, 'nodes.ts')}' imported from ${join(ws.dir, 'spec.ts')}\n`);
  });

  it('a JSON spec validates through the CLI and is not type-checked', async () => {
    await writeFile(join(ws.dir, 'spec.json'), JSON.stringify(baseSpec()));
    const r = await cli('bin', ['validate', '--config', 'spec.json'], ws.dir);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^spec\.json: ok \(2 nodes/);
    expect(r.code).toBe(0);
  });
});

describe('typecheckSpec', () => {
  it.each(['examples/portacluster.config.ts', 'examples/arch.config.ts', 'test/e2e/fixtures/lab.config.ts'])('%s has no type errors', async (file) => {
    expect(await typecheckSpec(file)).toEqual({ checked: true, issues: [] });
  });

  it("a spec using Node's API type-checks against Node's types, and its own errors are still found", async () => {
    const file = join(ws.dir, 'spec.ts');
    const lines = [
      `import { defineConfig } from 'portacluster';`,
      `import { readFileSync } from 'node:fs';`,
      `const key = readFileSync(process.env.KEY_FILE ?? '/dev/null', 'utf8');`,
      `export default defineConfig({ rescue: { user: 'root', sshKeys: [key] }, domain: Buffer.from('x') });`,
    ];
    await writeFile(file, lines.join('\n') + '\n');
    const result = await typecheckSpec(file);
    expect(result).toEqual({ checked: true, issues: [{ path: `${file}:4:${lines[3]!.indexOf('domain') + 1}`, message: expect.stringMatching(/^Type 'Buffer.*' is not assignable to type 'string'/) }] });
  });

  it('without TypeScript installed, says so and checks nothing', async () => {
    const file = join(ws.dir, 'spec.ts');
    await writeFile(file, 'export default { cluster: 1 };\n');
    const missing = () => Promise.reject(Object.assign(new Error(`Cannot find package 'typescript' imported from x`), { code: 'ERR_MODULE_NOT_FOUND' }));
    expect(await typecheckSpec(file, missing)).toEqual({ checked: false, reason: `typescript is not installed (Cannot find package 'typescript' imported from x)` });
  });

  it('a type error becomes a SpecError whose issue is located by file:line:column', async () => {
    const file = join(ws.dir, 'spec.mts');
    await writeFile(file, `import { defineConfig } from 'portacluster';\nexport default defineConfig({\n  cluster: 1,\n});\n`);
    const err = await loadSpec(file, { typecheck: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpecError);
    expect((err as SpecError).issues.map((i) => i.path)).toEqual([`${file}:3:3`]);
  });
});
