/**
 * Imports a spec module (.ts/.mts/.cts/.js/.mjs) from anywhere on disk and returns its default export.
 *
 * tsx's documented tsImport() loads the file in its own namespace, so the same process can load a spec again
 * after it changed, and it works whether or not this process was started through tsx (vitest, bin/, npm run).
 * Our hooks (hooks.mjs) sit under tsx's: they make 'portacluster' resolve to this package and keep a spec
 * written as an ES module an ES module outside a "type": "module" package.
 */
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';

let hooksRegistered = false;

function registerHooks(): void {
  if (hooksRegistered) return;
  register('./hooks.mjs', { parentURL: import.meta.url, data: { packageJsonUrl: new URL('../../package.json', import.meta.url).href } });
  hooksRegistered = true;
}

/** The module's default export; undefined when it has none. Errors from the import propagate. */
export async function importSpecModule(path: string): Promise<unknown> {
  registerHooks();
  const mod = (await tsImport(pathToFileURL(path).href, { parentURL: import.meta.url })) as { default?: unknown };
  return unwrapCommonJs(mod.default);
}

/**
 * A .cts/.cjs spec arrives as module.exports; `export default` compiled to CommonJS puts the spec one level
 * down, under an __esModule marker.
 */
function unwrapCommonJs(value: unknown): unknown {
  if (value && typeof value === 'object' && (value as { __esModule?: unknown }).__esModule === true && 'default' in value) {
    return (value as { default: unknown }).default;
  }
  return value;
}
