/**
 * The tie between the node-side bash and the watcher: every phase a script reports (phase NAME, report
 * NAME, report_post "NAME?…") must be one build/lifecycle/watch.ts accepts, and every phase the watcher
 * knows must be reported by some script. Static analysis over the libraries each profile's script is
 * composed of, so a renamed or misspelt phase fails here, not as a node stuck in `installing`.
 * Also: no function is defined twice in one composed script (a later definition silently wins in bash).
 */
import { describe, expect, it } from 'vitest';
import { PHASES } from '../build/lifecycle/watch.ts';
import type { ShellSource } from '../build/render/autorun.ts';
import { COMMON_LIBRARIES, readScriptSources } from '../build/render/scripts.ts';

const KINDS = ['installer', 'rescue', 'diskless', 'discover'] as const;
/** Report kinds beside the phases: the failure report, the log upload and the inventory (watch.ts parseReportUrl). */
const REPORT_KINDS: readonly string[] = [...PHASES, 'failed', 'log', 'inventory'];
/**
 * PC_PHASE names the phase in a `failed` report, which the watcher records as the node's phase: a phase,
 * or `rescue`, the single step of the rescue profile (it has no phases of its own to report).
 */
const FAILURE_PHASES: readonly string[] = [...PHASES, 'rescue', 'discover'];
/** The only places a phase is not a literal: phase() itself passes its argument on. */
const DYNAMIC_ALLOWED = ['common/lib/10-report.sh: PC_PHASE="$1"', 'common/lib/10-report.sh: report "${PC_PHASE}"'];

/** Drops comments: whole comment lines and ` # …` tails (a `#` inside `${#x[@]}` has no space before it). */
function code(text: string): string[] {
  return text.split('\n').map((l) => (/^\s*#/.test(l) ? '' : l.replace(/\s#\s.*$/, '')));
}

const unquote = (w: string) => w.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
// A command word: at the start of a line or after ; & | { ( then do else.
const CALL = /(?:^\s*|[;&|{(]\s*|\b(?:then|do|else)\s+)(phase|report|report_post)\s+("[^"]*"|'[^']*'|\S+)/g;
const ASSIGN = /\bPC_PHASE=("[^"]*"|'[^']*'|[^\s;]+)/g;

interface PhaseUse {
  file: string;
  line: number;
  /** report: the URL path (a report kind); failure: a value of PC_PHASE. */
  as: 'report' | 'failure';
  name: string;
  text: string;
}

function phaseUses(sources: readonly ShellSource[]): { uses: PhaseUse[]; dynamic: string[] } {
  const uses: PhaseUse[] = [];
  const dynamic: string[] = [];
  for (const s of sources) {
    code(s.text).forEach((l, i) => {
      const at = { file: s.name, line: i + 1 };
      for (const m of l.matchAll(CALL)) {
        const [fn, arg] = [m[1]!, unquote(m[2]!)];
        const text = `${fn} ${m[2]}`;
        if (arg.startsWith('$')) {
          dynamic.push(`${s.name}: ${text}`);
          continue;
        }
        const name = fn === 'report_post' ? arg.split('?')[0]! : arg;
        uses.push({ ...at, as: 'report', name, text });
        if (fn === 'phase') uses.push({ ...at, as: 'failure', name, text });
      }
      for (const m of l.matchAll(ASSIGN)) {
        const value = unquote(m[1]!);
        if (value.startsWith('$')) dynamic.push(`${s.name}: PC_PHASE=${m[1]}`);
        else uses.push({ ...at, as: 'failure', name: value, text: m[0] });
      }
    });
  }
  return { uses, dynamic };
}

/** Every way the scripts and the watcher disagree, one line each; empty when they agree. */
function phaseProblems(sources: readonly ShellSource[]): string[] {
  const { uses, dynamic } = phaseUses(sources);
  const problems: string[] = [];
  for (const u of uses) {
    const known = u.as === 'report' ? REPORT_KINDS : FAILURE_PHASES;
    if (!known.includes(u.name)) problems.push(`${u.file}:${u.line}: \`${u.text}\` reports "${u.name}", which the watcher does not know (${known.join(', ')})`);
  }
  for (const d of dynamic) if (!DYNAMIC_ALLOWED.includes(d)) problems.push(`${d}: a phase that is not a literal cannot be checked`);
  const reported = new Set(uses.filter((u) => u.as === 'report').map((u) => u.name));
  for (const p of PHASES) if (!reported.has(p)) problems.push(`watch.ts PHASES has "${p}", which no script reports`);
  return problems;
}

/** Functions defined more than once across one script's sources, with where. */
function duplicateFunctions(sources: readonly ShellSource[]): string[] {
  const seen = new Map<string, string>();
  const dups: string[] = [];
  for (const s of sources) {
    for (const m of s.text.matchAll(/^([A-Za-z_][A-Za-z0-9_]*)\(\)\s*\{/gm)) {
      const prev = seen.get(m[1]!);
      if (prev) dups.push(`${m[1]}() in ${prev} and ${s.name}`);
      else seen.set(m[1]!, s.name);
    }
  }
  return dups;
}

async function allSources(): Promise<ShellSource[]> {
  const byName = new Map<string, ShellSource>();
  for (const k of KINDS) {
    const src = await readScriptSources(k);
    for (const s of [...src.libraries, src.main]) byName.set(s.name, s);
  }
  return [...byName.values()];
}

describe('phases: the scripts and the watcher agree', () => {
  it('every phase reported by a script is one the watcher knows, and every known phase is reported', async () => {
    const sources = await allSources();
    expect(phaseProblems(sources)).toEqual([]);
    const { uses } = phaseUses(sources);
    // The extraction found the installer's whole sequence, the failure and log reports and the two profiles' ends.
    expect(new Set(uses.filter((u) => u.as === 'report').map((u) => u.name))).toEqual(new Set(REPORT_KINDS));
  });

  it('fails on a misspelt, an unknown or a computed phase, and on a phase no script reports any more', async () => {
    const sources = await allSources();
    const with_ = (name: string, text: string) => [...sources, { name, text }];
    expect(phaseProblems(with_('installer/lib/70-extra.sh', 'extra() {\n  phase donwload\n}\n'))).toEqual([
      expect.stringMatching(/^installer\/lib\/70-extra\.sh:2: `phase donwload` reports "donwload", which the watcher does not know/),
      expect.stringMatching(/^installer\/lib\/70-extra\.sh:2: `phase donwload` reports "donwload"/),
    ]);
    expect(phaseProblems(with_('diskless/lib/40-x.sh', 'x() { report_post "finished?$(report_query)" /dev/null; }\n'))).toEqual([
      expect.stringContaining('diskless/lib/40-x.sh:1: `report_post "finished?$(report_query)"` reports "finished"'),
    ]);
    expect(phaseProblems(with_('rescue/lib/60-y.sh', 'y() {\n  local p=ready\n  if true; then report "${p}"; fi\n  PC_PHASE=resuce\n}\n'))).toEqual([
      expect.stringContaining('rescue/lib/60-y.sh:4: `PC_PHASE=resuce` reports "resuce"'),
      'rescue/lib/60-y.sh: report "${p}": a phase that is not a literal cannot be checked',
    ]);
    // Comments and log text that mention a phase are not reports.
    expect(phaseProblems(with_('common/lib/99-z.sh', '# phase bogus\nz() { log "now in phase bogus"; }  # report bogus\n'))).toEqual([]);
    const withoutDone = sources.map((s) => ({ ...s, text: s.text.replace(/phase "done"/g, 'phase "finished"') }));
    expect(phaseProblems(withoutDone)).toContain('watch.ts PHASES has "done", which no script reports');
  });
});

describe('composition: common + own', () => {
  it('every profile starts with all of common/lib, then only its own libraries, and defines each function once', async () => {
    const common = (await readScriptSources('rescue')).libraries.filter((l) => l.name.startsWith(`${COMMON_LIBRARIES}/lib/`)).map((l) => l.name);
    expect(common.length).toBeGreaterThan(2);
    for (const k of KINDS) {
      const src = await readScriptSources(k);
      const names = src.libraries.map((l) => l.name);
      expect(names.slice(0, common.length)).toEqual(common);
      for (const n of names.slice(common.length)) expect(n.startsWith(`${k}/lib/`), n).toBe(true);
      expect(duplicateFunctions([...src.libraries, src.main]), k).toEqual([]);
    }
  });

  it('a profile library redefining a common function is caught', async () => {
    const src = await readScriptSources('diskless');
    expect(duplicateFunctions([...src.libraries, { name: 'diskless/lib/35-again.sh', text: 'fail_install() {\n  exit 1\n}\n' }])).toEqual([
      'fail_install() in common/lib/10-report.sh and diskless/lib/35-again.sh',
    ]);
  });
});
