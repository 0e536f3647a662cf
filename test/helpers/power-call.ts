/**
 * Runs power-driver calls in the process it is started as, so a test can run them inside its network
 * namespace (`ip netns exec NS node --import tsx test/helpers/power-call.ts JOB`): JOB is JSON
 * {node, power (a PlanPower), policy, steps: ["status", "off", …]}; prints one JSON line per step
 * {step, ok, result | error, ms}. Steps run in order; a failed step does not stop the next.
 */
import { pduDriver } from '../../build/power/pdu.ts';
import { redfishDriver } from '../../build/power/redfish.ts';
import type { PlanPower } from '../../build/plan/plan.ts';
import type { CallPolicy, PowerDriver } from '../../build/power/types.ts';

export interface PowerJob {
  node: string;
  power: Extract<PlanPower, { type: 'redfish' | 'pdu' }>;
  policy: CallPolicy;
  steps: ('status' | 'on' | 'off' | 'cycle' | 'bootOnceFromNetwork')[];
}

export interface StepResult {
  step: string;
  ok: boolean;
  result?: unknown;
  error?: string;
  ms: number;
}

const job = JSON.parse(process.argv[2]!) as PowerJob;
const node = { name: job.node };
const driver: PowerDriver = job.power.type === 'redfish' ? redfishDriver(node, job.power, job.policy) : pduDriver(node, job.power, job.policy);
for (const step of job.steps) {
  const t = performance.now();
  const line: StepResult = await driver[step]!().then(
    (result) => ({ step, ok: true, result: result ?? null, ms: 0 }),
    (e: Error) => ({ step, ok: false, error: `${e.name}: ${e.message}`, ms: 0 }),
  );
  line.ms = Math.round(performance.now() - t);
  process.stdout.write(JSON.stringify(line) + '\n');
}
