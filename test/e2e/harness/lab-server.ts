/**
 * Runs inside the lab's network namespace (`ip netns exec NS node --import tsx lab-server.ts …`): the flaky
 * image server on <adminIp>:<flakyPort> that breaks its first downloads midway (the "dropped download"
 * fault). node0's own services are `portacluster serve`'s. Each event is one JSON line on stdout.
 */
import { flakyServer } from './flaky-server.ts';

const [adminIp, flakyPort, root, drops] = process.argv.slice(2);
const emit = (e: Record<string, unknown>) => process.stdout.write(JSON.stringify({ ...e, at: Date.now() }) + '\n');

flakyServer({ root: root!, drops: Number(drops), dropAt: 0.3, onEvent: (e) => emit({ kind: 'flaky', ...e }) }).listen(Number(flakyPort), adminIp, () =>
  emit({ kind: 'listening', what: 'flaky' }),
);
