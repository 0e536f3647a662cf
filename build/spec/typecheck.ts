/**
 * Type-checks a TypeScript spec against this package's types with the TypeScript compiler API, so a wrong
 * field type is reported as `spec.ts:12:5: Type 'number' is not assignable to type 'string'` before the
 * schema check turns it into a less precise message. tsx only strips types; this is the one place that
 * reads them. TypeScript is a devDependency: where it is missing the spec is only schema-checked.
 */
import { createRequire, isBuiltin } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as TS from 'typescript';
import type { SpecIssue } from '../lib/errors.ts';

const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENTRY = fileURLToPath(new URL('../index.ts', import.meta.url));

export type TypecheckResult = { checked: true; issues: SpecIssue[] } | { checked: false; reason: string };

type LoadTypescript = () => Promise<typeof TS>;

const loadInstalledTypescript: LoadTypescript = async () => {
  const mod = (await import('typescript')) as typeof TS & { default?: typeof TS };
  return mod.default ?? mod;
};

/**
 * Module-format-agnostic settings: the loader runs a spec as an ES module wherever it is (hooks.mjs), so
 * what is checked here is types only. 'portacluster' maps to this package's entry, also for a spec in a
 * directory with no node_modules.
 */
function compilerOptions(ts: typeof TS): TS.CompilerOptions {
  return {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2023.d.ts'],
    module: ts.ModuleKind.Preserve,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    allowImportingTsExtensions: true,
    resolveJsonModule: true,
    esModuleInterop: true,
    paths: { portacluster: [ENTRY] },
    // Node's types, when a spec needs them, come from where this package finds them, not the spec's directory.
    typeRoots: [typesDir()],
  };
}

/** The node_modules/@types this package resolves (hoisted or not when it is installed as a dependency). */
function typesDir(): string {
  try {
    return dirname(dirname(createRequire(import.meta.url).resolve('@types/node/package.json')));
  } catch {
    return resolve(PACKAGE_ROOT, 'node_modules/@types');
  }
}

/** Type errors in the spec and the files it imports, located as file:line:column. */
export async function typecheckSpec(file: string, loadTypescript: LoadTypescript = loadInstalledTypescript): Promise<TypecheckResult> {
  let ts: typeof TS;
  try {
    ts = await loadTypescript();
  } catch (e) {
    return { checked: false, reason: `typescript is not installed (${(e as Error).message.split('\n')[0]})` };
  }
  const path = resolve(file);
  // Most specs use no Node API, and @types/node is a third of the work: add it only when the spec needs it.
  let diagnostics = diagnose(ts, path, []);
  if (diagnostics.some((d) => needsNodeTypes(ts, d))) diagnostics = diagnose(ts, path, ['node']);
  const issues: SpecIssue[] = [];
  for (const d of diagnostics) {
    if (d.category !== ts.DiagnosticCategory.Error) continue;
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n    ');
    if (!d.file) {
      issues.push({ path: relativeName(path), message: `TS${d.code}: ${message}` });
      continue;
    }
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
    issues.push({ path: `${relativeName(d.file.fileName)}:${line + 1}:${character + 1}`, message });
  }
  return { checked: true, issues };
}

function diagnose(ts: typeof TS, path: string, types: string[]): readonly TS.Diagnostic[] {
  const program = ts.createProgram({ rootNames: [path], options: { ...compilerOptions(ts), types } });
  const userFiles = program.getSourceFiles().filter((f) => !f.isDeclarationFile && isUserFile(f.fileName, path));
  return [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...userFiles.flatMap((f) => [...program.getSyntacticDiagnostics(f), ...program.getSemanticDiagnostics(f)]),
  ];
}

/** TS2580/2591/2592: "Cannot find name 'process'. Do you need to install type definitions for node?"; TS2307 on a node: module. */
function needsNodeTypes(ts: typeof TS, d: TS.Diagnostic): boolean {
  if (d.code === 2580 || d.code === 2591 || d.code === 2592) return true;
  const missing = d.code === 2307 && /'([^']+)'/.exec(ts.flattenDiagnosticMessageText(d.messageText, '\n'))?.[1];
  return !!missing && isBuiltin(missing);
}

/**
 * The spec and what it imports, except this package's sources (its own `tsc --noEmit` checks them) and
 * installed packages. A spec inside this repository (examples/) is a user's file too.
 */
function isUserFile(f: string, spec: string): boolean {
  if (f === spec) return true;
  return !f.includes('/node_modules/') && !(f.startsWith(PACKAGE_ROOT) && !f.startsWith(dirname(spec) + '/'));
}

function relativeName(f: string): string {
  const rel = relative(process.cwd(), f);
  return rel.startsWith('..') ? f : rel;
}
