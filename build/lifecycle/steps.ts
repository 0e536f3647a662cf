/**
 * Where a node-side script's time went: the `step NAME START END (S s)` lines that common/lib/10-report.sh
 * `step`/`step_as` write into the install log (START and END in centiseconds since the node's boot, from
 * /proc/uptime), read back from the log node0 keeps (the `log` upload). bench/loop.ts prints the breakdown
 * beside the floor; anyone reading a stored log can do the same.
 */

export interface Step {
  name: string;
  /** Centiseconds since the node's kernel started. */
  start: number;
  end: number;
  seconds: number;
  /** 0 for a step main.sh runs; 1 for a step inside it, and so on. */
  depth: number;
}

// The log prefixes each line with the time and `portacluster: ` (10-report.sh log()).
const STEP_LINE = /^(?:\d\d:\d\d:\d\d )?portacluster: step ([A-Za-z0-9_:.-]{1,64}) (\d{1,12}) (\d{1,12}) \(\d+\.\d\d s\)$/;

/** The steps of a log, in the order they started, each with its nesting depth. Other lines are skipped. */
export function parseSteps(log: string): Step[] {
  const steps: Step[] = [];
  // Log order breaks ties of the centisecond clock: a step is logged when it ends, so one logged after
  // another ended after it and cannot be inside it.
  const logged = new Map<Step, number>();
  for (const line of log.split('\n')) {
    const m = STEP_LINE.exec(line.trimEnd());
    if (!m) continue;
    const start = Number(m[2]);
    const end = Number(m[3]);
    if (end < start) throw new Error(`step ${m[1]} ends before it starts (${start} > ${end}): ${JSON.stringify(line)}`);
    const step = { name: m[1]!, start, end, seconds: (end - start) / 100, depth: 0 };
    logged.set(step, steps.length);
    steps.push(step);
  }
  // An inner step is logged before its outer one: order by start, the outer (logged later) first, then
  // count the enclosing steps still open.
  steps.sort((a, b) => a.start - b.start || b.end - a.end || logged.get(b)! - logged.get(a)!);
  const open: Step[] = [];
  for (const s of steps) {
    while (open.length && !(s.end <= open.at(-1)!.end && logged.get(s)! < logged.get(open.at(-1)!)!)) open.pop();
    s.depth = open.length;
    open.push(s);
  }
  return steps;
}

export interface Breakdown {
  /** From the end of `boot` (the script starting) to the last step's end. */
  scriptSeconds: number;
  /** The kernel's start to the script's (the environment's boot), when the log has a `boot` step. */
  bootSeconds: number | null;
  steps: Step[];
  /** Script time in no top-level step: logging, variables, the gaps between steps. */
  untimedSeconds: number;
}

export function breakdown(steps: readonly Step[]): Breakdown {
  const boot = steps.find((s) => s.name === 'boot' && s.start === 0);
  const rest = steps.filter((s) => s !== boot);
  if (rest.length === 0) return { scriptSeconds: 0, bootSeconds: boot ? boot.seconds : null, steps: [], untimedSeconds: 0 };
  const t0 = boot ? boot.end : Math.min(...rest.map((s) => s.start));
  const t1 = Math.max(...rest.map((s) => s.end));
  const top = rest.filter((s) => s.depth === 0).reduce((sum, s) => sum + (s.end - s.start), 0);
  return { scriptSeconds: (t1 - t0) / 100, bootSeconds: boot ? boot.seconds : null, steps: rest, untimedSeconds: Math.max(0, t1 - t0 - top) / 100 };
}

/** The breakdown as aligned text lines: each step indented by depth, seconds and share of the script. */
export function formatBreakdown(b: Breakdown, minSeconds = 0.05): string[] {
  const pct = (s: number) => (b.scriptSeconds > 0 ? `${((100 * s) / b.scriptSeconds).toFixed(1)}%` : '-');
  const lines: string[] = [];
  if (b.bootSeconds !== null) lines.push(`${'(kernel start → script)'.padEnd(40)} ${b.bootSeconds.toFixed(2).padStart(7)} s`);
  for (const s of b.steps) {
    if (s.seconds < minSeconds && s.depth > 0) continue;
    lines.push(`${`${'  '.repeat(s.depth)}${s.name}`.padEnd(40)} ${s.seconds.toFixed(2).padStart(7)} s ${pct(s.seconds).padStart(6)}`);
  }
  lines.push(`${'(between steps)'.padEnd(40)} ${b.untimedSeconds.toFixed(2).padStart(7)} s ${pct(b.untimedSeconds).padStart(6)}`);
  lines.push(`${'script total'.padEnd(40)} ${b.scriptSeconds.toFixed(2).padStart(7)} s`);
  return lines;
}
