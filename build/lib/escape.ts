/**
 * Per-target refusals for values written into generated files and command lines. The spec's schema
 * already limits every string (build/spec/patterns.ts); these are the second line: each renderer passes
 * every interpolated value through the function for its target, which returns it unchanged or throws a
 * RenderError naming the target, the field and the character. Nothing is rewritten or quoted here: a
 * config line that needed quoting would already mean something else to a human reading it.
 *
 * Bash is not here: generated bash quotes every value with shq() (build/render/shell.ts).
 */
import { RenderError } from './errors.ts';

// Control characters end a line or a C string in every target below.
const CONTROL = /[\u0000-\u001f\u007f]/;

function named(ch: string): string {
  const names: Record<string, string> = { '\n': 'a newline', '\r': 'a carriage return', '\0': 'a NUL byte', '\t': 'a tab', ' ': 'a space' };
  return names[ch] ?? (CONTROL.test(ch) ? `the control character U+${ch.charCodeAt(0).toString(16).padStart(4, '0')}` : JSON.stringify(ch));
}

function refuse(target: string, what: string, value: unknown, bad: RegExp | null, expect: string): string {
  if (typeof value !== 'string') throw new RenderError(target, what, String(value), 'must be a string');
  const hit = CONTROL.exec(value) ?? (bad ? bad.exec(value) : null);
  if (hit) throw new RenderError(target, what, value, `${expect}: it contains ${named(hit[0])}`);
  return value;
}

/**
 * The rest of a comment line: a line break would end it, and a very long one is refused by the tools
 * themselves (dnsmasq: "bad option", nginx: "too long parameter"), found by test/spec-fuzz.test.ts.
 */
export function commentText(target: string, what: string, v: string): string {
  refuse(target, what, v, null, 'must stay on its comment line');
  if (v.length > 255) throw new RenderError(target, what, v, `is too long for a comment line (${v.length} characters, at most 255)`);
  return v;
}

/** dnsmasq `key=value[,value]`: `,` separates values, `#` starts a comment, quotes and escapes are parsed. */
export const dnsmasqValue = (what: string, v: string) => refuse('dnsmasq.conf', what, v, /[\s,#"'\\]/, 'must be one dnsmasq value');

/** nginx directive arguments: whitespace splits, `;` `{` `}` end, `#` comments, `$` expands, quotes group. */
export const nginxValue = (what: string, v: string) => refuse('nginx.conf', what, v, /[\s;{}#$"'\\]/, 'must be one nginx word');

/** pxelinux LINUX/INITRD/LABEL arguments. */
export const pxelinuxWord = (what: string, v: string) => refuse('pxelinux', what, v, /[\s"'\\]/, 'must be one word without quotes');

/** iPXE: `${…}` expands settings, `||` `&&` chain commands, `#` comments, quotes group. */
export const ipxeWord = (what: string, v: string) => refuse('iPXE', what, v, /[\s"'\\$|&;#]/, 'must be one word without quotes, $ or command separators');
export const ipxeLine = (what: string, v: string) => refuse('iPXE', what, v, /["'\\$|&;#]/, 'must be one line of plain words');

/** A kernel command line (pxelinux APPEND, iPXE kernel): the kernel and init split words themselves. */
export const cmdlineLine = (what: string, v: string) => refuse('kernel command line', what, v, /["'\\`$;]/, 'must be one line without quotes, backslashes, $ or ;');
export const cmdlineWord = (what: string, v: string) =>
  refuse('kernel command line', what, v, /[\s"'\\`$;]/, 'must be one word without spaces, quotes or newlines');

/** pacman.conf: `[name]` opens a section, `#` comments the rest of a line. */
export const pacmanSection = (what: string, v: string) => refuse('pacman.conf', what, v, /[\s[\]#=]/, 'must be a bare repository name');
export const pacmanValue = (what: string, v: string) => refuse('pacman.conf', what, v, /[\s#]/, 'must be one pacman.conf value');

/** A YAML scalar: the yaml library quotes what it must; only a line break would survive as structure. */
export const yamlScalar = (what: string, v: string) => refuse('YAML', what, v, null, 'must be one line');

/**
 * An argv element from the spec where the tool also reads options: a leading "-" would be taken as one
 * (mmdebstrap's --setup-hook runs a command as root). Commas split the lists of --include=a,b.
 */
export function argvValue(tool: string, what: string, v: string): string {
  refuse(tool, what, v, /[\s,]/, 'must be one argument without spaces or commas');
  if (v === '' || v.startsWith('-')) throw new RenderError(tool, what, v, 'must not be empty or start with "-" (it would be read as an option)');
  return v;
}
