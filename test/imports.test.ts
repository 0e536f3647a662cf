/**
 * Imports point one way: down the layer table below, never sideways into a sibling group, and never in a
 * cycle. A simple regex over every build/**\/*.ts is enough: the code base uses only static
 * `import … from '…'`, `export … from '…'` and `import('…')` with literal relative paths.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The layer order, top first. A layer is a list of groups (path prefixes under build/ that belong
 * together). A file may import from its own group or from any lower layer; `isolated` groups' files may
 * not import each other either (each CLI command stands alone).
 */
const LAYERS: { groups: { name: string; prefixes: string[]; isolated?: boolean }[] }[] = [
  // The package's own entry (defineConfig and the spec's types for users' specs) sits on top beside the CLI's.
  { groups: [{ name: 'cli entry', prefixes: ['cli/main.ts'] }, { name: 'package entry', prefixes: ['index.ts'] }] },
  { groups: [{ name: 'cli commands', prefixes: ['cli/commands/'], isolated: true }] },
  { groups: [{ name: 'cli helpers', prefixes: ['cli/'] }] },
  { groups: [{ name: 'lifecycle', prefixes: ['lifecycle/'] }, { name: 'pipeline', prefixes: ['pipeline.ts'] }, { name: 'lab', prefixes: ['lab/'] }] },
  // Power drivers (BMCs, PDUs, the lab's QEMU monitor): used by the lifecycle (reboot, parking) and the lab's BMC stand-ins.
  { groups: [{ name: 'power', prefixes: ['power/'] }] },
  {
    groups: [
      { name: 'render', prefixes: ['render/'] },
      // the stages and the tools only they use (image backends, ISO reading, downloads, the built-in environment)
      { name: 'stages', prefixes: ['stages/', 'image/', 'iso/', 'fetch/', 'installer-env/'] },
    ],
  },
  { groups: [{ name: 'plan', prefixes: ['plan/'] }] },
  { groups: [{ name: 'spec', prefixes: ['spec/'] }] },
  { groups: [{ name: 'lib', prefixes: ['lib/'] }, { name: 'layout', prefixes: ['layout.ts'] }] },
];

interface Place {
  layer: number;
  group: string;
  isolated: boolean;
}

function placeOf(file: string): Place | null {
  // The longest matching prefix wins: cli/commands/x.ts is a command, not a cli helper.
  let best: (Place & { len: number }) | null = null;
  LAYERS.forEach((l, layer) => {
    for (const g of l.groups) {
      for (const p of g.prefixes) {
        if ((file === p || file.startsWith(p)) && (!best || p.length > best.len)) best = { layer, group: g.name, isolated: !!g.isolated, len: p.length };
      }
    }
  });
  return best;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g;

/** Relative imports of one file, as paths under build/ (node: and package imports are not ours). */
export function importsOf(file: string, text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    if (spec.startsWith('.')) out.push(join(dirname(file), spec));
  }
  return out;
}

/** Every problem in a graph of build/-relative files: unplaced files, upward or sideways imports, cycles. */
export function checkImports(sources: Map<string, string>): string[] {
  const problems: string[] = [];
  const graph = new Map<string, string[]>();
  for (const [file, text] of sources) {
    const from = placeOf(file);
    if (!from) {
      problems.push(`${file}: not in the layer table (add its directory to LAYERS in test/imports.test.ts)`);
      continue;
    }
    const deps = importsOf(file, text);
    graph.set(file, deps);
    for (const dep of deps) {
      if (dep.startsWith('..')) {
        problems.push(`${file} imports ${dep}, outside build/`);
        continue;
      }
      const to = placeOf(dep);
      if (!to) continue; // reported for the file itself
      const upward = to.layer < from.layer;
      const sideways = to.layer === from.layer && (to.group !== from.group || (from.isolated && dep !== file));
      if (upward) problems.push(`${file} (${from.group}) imports ${dep} (${to.group}): points up the layer order`);
      else if (sideways) problems.push(`${file} (${from.group}) imports ${dep} (${to.group}): ${to.group === from.group ? 'files of this group stand alone' : 'a sibling group of the same layer'}; move the shared part down`);
    }
  }
  // Cycles, file by file (type-only imports count: they tie the files' meanings together all the same).
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const seen = new Set<string>();
  const visit = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const d of graph.get(f) ?? []) {
      if (state.get(d) === 'open') {
        const cycle = [...stack.slice(stack.indexOf(d)), d].join(' → ');
        if (!seen.has(cycle)) problems.push(`cycle: ${cycle}`);
        seen.add(cycle);
      } else if (!state.has(d) && graph.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of [...graph.keys()].sort()) if (!state.has(f)) visit(f);
  return problems;
}

const BUILD = fileURLToPath(new URL('../build/', import.meta.url));

function readBuild(dir = BUILD, out = new Map<string, string>()): Map<string, string> {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) readBuild(full, out);
    else if (name.endsWith('.ts')) out.set(relative(BUILD, full), readFileSync(full, 'utf8'));
  }
  return out;
}

describe('imports point one way', () => {
  it('build/: no import points up the layer order or sideways, and none closes a cycle', () => {
    const sources = readBuild();
    expect(sources.size).toBeGreaterThan(50);
    expect(checkImports(sources)).toEqual([]);
  });

  it('finds an upward import, a sideways one, a command importing a command, and a cycle', () => {
    const problems = checkImports(
      new Map([
        ['plan/plan.ts', "import type { Plan } from '../cli/main.ts';\n"],
        ['render/x.ts', "import { a } from '../stages/y.ts';\n"],
        ['stages/y.ts', "export const a = 1;\n"],
        ['cli/main.ts', "const m = () => import('./commands/a.ts');\n"],
        ['cli/commands/a.ts', "import { b } from './b.ts';\n"],
        ['cli/commands/b.ts', "export { c } from '../../spec/p.ts';\n"],
        ['spec/p.ts', "import type { Q } from './q.ts';\nexport const c = 1;\n"],
        ['spec/q.ts', "import { c } from './p.ts';\nexport type Q = 1;\n"],
        ['lib/z.ts', "import { x } from 'node:fs';\nimport type { L } from '../layout.ts';\n"],
        ['layout.ts', 'export type L = 1;\n'],
      ]),
    );
    expect(problems).toEqual([
      'plan/plan.ts (plan) imports cli/main.ts (cli entry): points up the layer order',
      'render/x.ts (render) imports stages/y.ts (stages): a sibling group of the same layer; move the shared part down',
      'cli/commands/a.ts (cli commands) imports cli/commands/b.ts (cli commands): files of this group stand alone; move the shared part down',
      'lib/z.ts (lib) imports layout.ts (layout): a sibling group of the same layer; move the shared part down',
      'cycle: spec/p.ts → spec/q.ts → spec/p.ts',
    ]);
  });

  it('names a file whose directory is not in the table', () => {
    expect(checkImports(new Map([['newdir/a.ts', '']]))).toEqual(['newdir/a.ts: not in the layer table (add its directory to LAYERS in test/imports.test.ts)']);
  });
});
