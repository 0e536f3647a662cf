/**
 * Parse → normalize → rules. ajv checks the shape (and fills defaults), then canonical forms are made
 * (MACs, sizes), then small rule functions report every problem at once as `path: message`.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { SpecError, type SpecIssue } from '../lib/errors.ts';
import { ClusterSpecSchema, type ClusterSpec } from './schema.ts';
import { parseMac, parseSize } from './values.ts';
import { checkRules, RULES } from './rules.ts';
import { PATTERNS } from './patterns.ts';
import type { NormalizedSpec } from './normalized.ts';

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true });
const validateShape = ajv.compile<ClusterSpec>(ClusterSpecSchema);

export type { NormalizedPartition, NormalizedSpec } from './normalized.ts';

export function pathOf(instancePath: string, extra?: string): string {
  const parts = instancePath.split('/').filter(Boolean);
  if (extra !== undefined) parts.push(extra);
  return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '') || '(root)';
}

function got(value: unknown): string {
  const s = JSON.stringify(value);
  return s === undefined ? 'nothing' : s.length > 60 ? s.slice(0, 57) + '…' : s;
}

function valueAt(root: unknown, instancePath: string): unknown {
  return instancePath
    .split('/')
    .filter(Boolean)
    .reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), root);
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}

function closest(word: string, candidates: string[]): string | undefined {
  const best = candidates.map((c) => [c, editDistance(word.toLowerCase(), c.toLowerCase())] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= Math.max(2, Math.floor(word.length / 3)) ? best[0] : undefined;
}

/**
 * A failed anyOf makes ajv report every branch's errors. Keep the errors of the branch the value was
 * evidently meant to be (its discriminator matched, fewest errors); if none, keep the anyOf error alone.
 */
function pruneAnyOf(errors: ErrorObject[]): ErrorObject[] {
  let kept = errors;
  for (const a of errors.filter((e) => e.keyword === 'anyOf')) {
    const base = a.schemaPath.replace(/anyOf$/, 'anyOf/');
    const inside = kept.filter((e) => e !== a && e.schemaPath.startsWith(base));
    const byBranch = new Map<string, ErrorObject[]>();
    for (const e of inside) {
      const branch = e.schemaPath.slice(base.length).split('/')[0]!;
      byBranch.set(branch, [...(byBranch.get(branch) ?? []), e]);
    }
    const mismatch = (e: ErrorObject) =>
      (['const', 'enum', 'type'].includes(e.keyword) && (e.instancePath === a.instancePath || e.instancePath === `${a.instancePath}/type`)) ||
      (e.keyword === 'required' && e.instancePath === a.instancePath);
    const candidates = [...byBranch.values()].filter((b) => !b.some(mismatch)).sort((x, y) => x.length - y.length);
    // No branch fits, but one only lacks fields (an object where the other branches want a literal or a
    // discriminator they do not see): that is the one meant, and its missing fields are the message.
    const wrongKind = (e: ErrorObject) => mismatch(e) && e.keyword !== 'required';
    const onlyMissing = [...byBranch.values()].filter((b) => !b.some(wrongKind));
    const best = candidates[0] ?? (onlyMissing.length === 1 && !isDiscriminated(a) ? onlyMissing[0] : undefined);
    const drop = new Set(inside.filter((e) => !best?.includes(e)));
    if (best) drop.add(a);
    kept = kept.filter((e) => !drop.has(e));
  }
  return kept;
}

type BranchSchema = { const?: unknown; type?: string; required?: string[]; anyOf?: BranchSchema[]; properties?: { type?: { const?: unknown } } };

/** The union's branches, a union of one union (the cluster-wide power) seen through. */
function branches(e: ErrorObject): BranchSchema[] {
  const list = (e.schema as BranchSchema[] | undefined) ?? [];
  return list.flatMap((b) => (b.anyOf ? b.anyOf : [b]));
}

/** The `type` literals of a union whose every branch is an object with one; else null. */
function discriminatorValues(e: ErrorObject): unknown[] | null {
  const bs = branches(e);
  const values = bs.map((b) => b.properties?.type?.const);
  return bs.length > 1 && values.every((v) => v !== undefined) ? values : null;
}

const isDiscriminated = (e: ErrorObject) => discriminatorValues(e) !== null;

function describe(e: ErrorObject, root: unknown): SpecIssue {
  const value = valueAt(root, e.instancePath);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return { path: pathOf(e.instancePath, String(p.missingProperty)), message: 'is required' };
    case 'additionalProperties': {
      const field = String(p.additionalProperty);
      const schema = e.parentSchema as { properties?: Record<string, unknown> } | undefined;
      const known = Object.keys(schema?.properties ?? {});
      const guess = closest(field, known);
      return {
        path: pathOf(e.instancePath, field),
        message: 'unknown field',
        hint: guess ? `did you mean "${guess}"?` : known.length ? `known fields: ${known.join(', ')}` : undefined,
      };
    }
    case 'type':
      return { path: pathOf(e.instancePath), message: `must be ${String(p.type).replace(/^(array|object|integer)$/, 'an $1').replace(/^(string|number|boolean)$/, 'a $1')} (got ${got(value)})` };
    case 'const':
      return { path: pathOf(e.instancePath), message: `must be ${got(p.allowedValue)} (got ${got(value)})` };
    case 'anyOf': {
      // A union told apart by its `type` (power, installerEnv): name the types, at the type field.
      const types = discriminatorValues(e);
      if (types && value !== null && typeof value === 'object' && !Array.isArray(value)) {
        const t = (value as Record<string, unknown>).type;
        const known = types.map((x) => JSON.stringify(x)).join(', ');
        return t === undefined
          ? { path: pathOf(e.instancePath, 'type'), message: 'is required', hint: `one of ${known}` }
          : { path: pathOf(e.instancePath, 'type'), message: `unknown type ${got(t)}`, hint: `one of ${known}` };
      }
      const options = ((e.schema as { const?: unknown; type?: string; required?: string[] }[]) ?? [])
        .map((s) => (s.const !== undefined ? JSON.stringify(s.const) : s.required?.length ? `{ ${s.required.join(', ')} }` : s.type ?? '?'))
        .join(' | ');
      return { path: pathOf(e.instancePath), message: `must be one of ${options} (got ${got(value)})` };
    }
    case 'pattern':
    case 'maxLength': {
      // The schema's own words for the form (build/spec/patterns.ts), so a refused value reads like a rule's.
      const form = e.parentSchema as { errorLabel?: string; hint?: string; maxLength?: number; pattern?: string } | undefined;
      if (!form?.errorLabel) return { path: pathOf(e.instancePath), message: `${e.message ?? e.keyword} (got ${got(value)})` };
      // Too long and of the wrong form reads as one problem (the two errors are deduplicated by message).
      if (e.keyword === 'maxLength' && form.pattern !== undefined && new RegExp(form.pattern, 'u').test(String(value)))
        return { path: pathOf(e.instancePath), message: `is longer than ${form.maxLength} characters (got ${got(value)})`, hint: form.hint };
      return { path: pathOf(e.instancePath), message: `not ${form.errorLabel} (got ${got(value)})`, hint: form.hint };
    }
    default:
      return { path: pathOf(e.instancePath), message: `${e.message ?? e.keyword} (got ${got(value)})` };
  }
}

function shapeIssues(errors: ErrorObject[], root: unknown): SpecIssue[] {
  const seen = new Set<string>();
  return pruneAnyOf(errors)
    .map((e) => describe(e, root))
    .filter((i) => {
      const key = `${i.path}\0${i.message}`;
      return seen.has(key) ? false : (seen.add(key), true);
    });
}

const DEFAULT_FS = { esp: 'vfat', swap: 'swap', linux: 'ext4', bios_grub: null } as const;
const DEFAULT_LABEL = (type: string, mountpoint: string | null) =>
  type === 'esp' ? 'ESP' : type === 'swap' ? 'swap' : mountpoint === '/' ? 'root' : null;

/**
 * Canonical forms. Each piece is computed on its own through `piece`: on a spec the schema refused, a
 * value of the wrong shape (a missing mac, a partition that is not an object) throws in its own piece
 * and leaves the raw value in place, so every other piece still reports its problems.
 */
function normalize(spec: ClusterSpec, issues: SpecIssue[]): NormalizedSpec {
  const piece = <V>(raw: unknown, make: () => V): V => {
    try {
      return make();
    } catch {
      return raw as V;
    }
  };
  const mac = (path: string, value: string) =>
    piece(value, () => {
      const m = parseMac(value);
      if (!m) issues.push({ path, message: `not a MAC address (got ${got(value)})`, hint: PATTERNS.mac.hint });
      return m ?? value;
    });
  const size = (path: string, value: string | number) =>
    piece(0, () => {
      const n = parseSize(value);
      if (n === null) issues.push({ path, message: `not a size (got ${got(value)})`, hint: PATTERNS.size.hint });
      return n ?? 0;
    });
  const list = <X, Y>(xs: X[], f: (x: X, i: number) => Y): Y[] => piece(xs, () => xs.map((x, i) => piece(x, () => f(x, i))));
  const disk = piece(spec.disk, () => {
    const { partitions, minSize, ...diskRest } = spec.disk;
    return {
      ...diskRest,
      minBytes: size('disk.minSize', minSize ?? '8G'),
      partitions: list(partitions, (p, i) => {
        const filesystem = p.filesystem ?? DEFAULT_FS[p.type];
        const mountpoint = p.mountpoint ?? null;
        return {
          sizeBytes: p.size === 'rest' ? null : size(`disk.partitions[${i}].size`, p.size),
          type: p.type,
          filesystem,
          mountpoint,
          label: p.label ?? DEFAULT_LABEL(p.type, mountpoint),
        };
      }),
    };
  });
  return {
    ...spec,
    appliances: list(spec.appliances, (a, i) => ({ ...a, mac: mac(`appliances[${i}].mac`, a.mac) })),
    nodes: list(spec.nodes, (n, i) => ({ ...n, mac: mac(`nodes[${i}].mac`, n.mac) })),
    disk: disk as NormalizedSpec['disk'],
  };
}

/** Validates a parsed spec; throws SpecError with every problem found. `source` names the file in messages. */
export function validateSpec(input: unknown, source = 'spec'): NormalizedSpec {
  const data = structuredClone(input);
  if (!validateShape(data)) {
    const shape = shapeIssues(validateShape.errors ?? [], data);
    throw new SpecError([...shape, ...bestEffortIssues(data, shape)], source);
  }
  const issues: SpecIssue[] = [];
  const spec = normalize(data, issues);
  issues.push(...checkRules(spec));
  if (issues.length) throw new SpecError(issues, source);
  return spec;
}

/**
 * With a shape error the spec cannot be normalized as a whole, but the user still wants every problem in
 * one go: run normalization and rules on what is there and keep what they find away from the shape errors
 * (a value under or above a path the schema already refused is left to that message).
 */
function bestEffortIssues(data: unknown, shape: SpecIssue[]): SpecIssue[] {
  const found: SpecIssue[] = [];
  let spec: NormalizedSpec;
  try {
    spec = normalize(data as ClusterSpec, found);
  } catch {
    return []; // not even an object: the shape errors say so
  }
  // Each rule on its own: one that trips over a value of the wrong shape loses only what it had yet to find.
  for (const rule of RULES) {
    const mine: SpecIssue[] = [];
    try {
      rule(spec, mine);
    } catch {
      // The shape error that made it throw is already reported.
    }
    found.push(...mine);
  }
  const related = (a: string, b: string) => a === b || a.startsWith(`${b}.`) || a.startsWith(`${b}[`) || b.startsWith(`${a}.`) || b.startsWith(`${a}[`);
  return found.filter((i) => !shape.some((s) => related(i.path, s.path)) && !shape.some((s) => s.path === '(root)'));
}
