// Node module hooks for loading a user's spec, registered by build/spec/import-spec.ts with
// module.register(). Plain JavaScript on purpose: Node loads hook modules in its loader thread before any
// TypeScript loader may be active there.
//
// Two jobs, both about specs that live outside this repository (in /tmp, in ~/lab, with or without a
// package.json beside them):
// 1. `import … from 'portacluster'` resolves to the package running this CLI, without the user installing
//    anything: the specifier is resolved as if this package imported itself, so package.json "exports"
//    stays the one place that says what 'portacluster' is.
// 2. A .ts/.js file written as an ES module is loaded as one even where the nearest package.json says
//    "commonjs" or there is none. tsx picks CommonJS there, and Node 20 then refuses the file
//    ("Cannot require() ES Module … in a cycle"). We decide by syntax, as Node's own module detection does
//    for .js; .mts/.cts/.mjs/.cjs keep the format their extension names.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SELF = 'portacluster';
/** file: URL of this package's package.json, sent by the registering thread. */
let selfParent;

export function initialize(data) {
  selfParent = data.packageJsonUrl;
}

export async function resolve(specifier, context, nextResolve) {
  if (selfParent && (specifier === SELF || specifier.startsWith(`${SELF}/`))) {
    return nextResolve(specifier, { ...context, parentURL: selfParent });
  }
  const resolved = await nextResolve(specifier, context);
  if (resolved.format && resolved.format !== 'commonjs') return resolved;
  if (!resolved.url.startsWith('file:')) return resolved;
  const path = fileURLToPath(resolved.url.replace(/[?#].*$/, ''));
  if (!/\.(ts|js)$/.test(path) || path.includes('/node_modules/')) return resolved;
  return writtenAsModule(path) ? { ...resolved, format: 'module' } : resolved;
}

/** import/export statements (not `import x = require()`, `export =`, `import()` or `import.meta`). */
const MODULE_SYNTAX = /^[ \t]*(?:export\s*[{*]|export\s+(?!=)|import\s*[{*'"]|import\s+(?:type\s+)?[\w$]+\s*(?:,|from\b))/m;

function writtenAsModule(path) {
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return false;
  }
  return MODULE_SYNTAX.test(text.replace(/\/\*[\s\S]*?\*\//g, ''));
}
