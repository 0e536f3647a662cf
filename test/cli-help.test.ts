/**
 * Every command's options, three ways: what its parser accepts, what its --help lists, and what the
 * README's Commands section shows. They come from one table per command; this test keeps the README in
 * step and proves the parser and the help really read that table.
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { COMMANDS, main } from '../build/cli/main.ts';
import { parseCommand } from '../build/cli/command.ts';
import { UsageError } from '../build/lib/errors.ts';

let out = '';
let err = '';
const saved = { out: process.stdout.write, err: process.stderr.write };
beforeEach(() => {
  out = '';
  err = '';
  process.stdout.write = ((c: string) => ((out += c), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string) => ((err += c), true)) as typeof process.stderr.write;
});
afterEach(() => {
  process.stdout.write = saved.out;
  process.stderr.write = saved.err;
});

const readme = readFileSync('README.md', 'utf8');
const commandsSection = readme.slice(readme.indexOf('## Commands'), readme.indexOf('\n## ', readme.indexOf('## Commands') + 5));
const synopses = /```\n([\s\S]*?)```/.exec(commandsSection)![1]!.trim().split('\n');
const flags = (text: string) => [...text.matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1]!);
const uniq = (a: string[]) => [...new Set(a)].sort();

describe.each(Object.keys(COMMANDS))('portacluster %s', (name) => {
  it('parses, documents in --help and in the README exactly the same options', async () => {
    const { command } = await COMMANDS[name]!();
    const declared = Object.keys(command.spec.options).sort();
    expect(declared.length).toBeGreaterThan(0);

    // The parser: accepts each declared option (with a value when it takes one), refuses anything else.
    for (const o of declared) {
      const argv = command.spec.options[o]!.type === 'string' ? [`--${o}`, 'x'] : [`--${o}`];
      expect(() => parseCommand(command.spec, argv), o).not.toThrow();
    }
    expect(() => parseCommand(command.spec, ['--no-such-option'])).toThrow(UsageError);

    // --help: exit 0, every option on a line of its own with a description, and an example.
    expect(await main([name, '--help'])).toBe(0);
    const help = out;
    const optionLines = help.slice(help.indexOf('\noptions:\n'), help.indexOf('\nexample')).split('\n').filter((l) => /^ {2}(-\w, | {4})--/.test(l));
    expect(uniq(optionLines.map((l) => flags(l)[0]!))).toEqual(uniq([...declared, 'help']));
    for (const l of optionLines) expect(l, l).toMatch(/--[a-z-]+(?: [A-Z:<>N]+)? {2,}\S/);
    expect(help).toMatch(/\nexamples?:\n {2}portacluster /);
    expect(uniq(flags(help.split('\n')[0]!))).toEqual(uniq(declared.concat(name === 'reimage' || name === 'rescue' || name === 'diskless' || name === 'normal' ? ['all'] : [])));
    out = '';
    expect(await main([name, '-h'])).toBe(0);
    expect(out).toBe(help);

    // README: the synopsis line naming this command lists the same options, and the option table has each.
    const line = synopses.find((l) => l.replace(/\s[<[].*$/, '').split(/[\s|]+/).includes(name));
    expect(line, `README synopsis for ${name}`).toBeDefined();
    expect(uniq(flags(line!.replace(/<[^>]*>/, '')))).toEqual(declared);
    for (const o of declared) expect(commandsSection, `README option table: --${o}`).toMatch(new RegExp(`\\n\\| \`--${o}[ \`]`));
  });
});

describe('mistakes', () => {
  it('an unknown option names the closest known one and exits 2', async () => {
    expect(await main(['build', '--outt', 'x'])).toBe(2);
    expect(err).toBe('portacluster: unknown option --outt for build: did you mean --out?\n  see: portacluster build --help\n');
    err = '';
    expect(await main(['watch', '--until-dne'])).toBe(2);
    expect(err).toContain('did you mean --until-done?');
    err = '';
    expect(await main(['status', '--zzzzzzzz'])).toBe(2);
    expect(err).toBe('portacluster: unknown option --zzzzzzzz for status\n  see: portacluster status --help\n');
  });

  it('an unknown command names the closest one', async () => {
    expect(await main(['staus'])).toBe(2);
    expect(err).toMatch(/^portacluster: unknown command "staus": did you mean status\?\n/);
  });

  it('a command that takes no arguments says so', async () => {
    expect(await main(['build', 'dist'])).toBe(2);
    expect(err).toContain('build takes no arguments (got "dist")');
  });
});
