/**
 * One row of the fault campaign (issue 16): what was injected, how often, how many times the system came
 * through, what was lost, how long it took to converge. When PORTACLUSTER_CAMPAIGN_OUT names a file, each
 * row is appended to it as one JSON line, so rows from the fast tier and the QEMU tier merge into one table
 * (the lead's summary reads them back with readCampaignRows). Unset: nothing is written.
 */
import { appendFile, readFile } from 'node:fs/promises';

export interface CampaignRow {
  /** What was injected, in words ("foreign DHCP server on the cluster bridge"). */
  fault: string;
  /** Which tier measured it: "fast" (netns, loop devices, real processes) or "qemu". */
  tier: 'fast' | 'qemu';
  injected: number;
  survived: number;
  /** Data lost (reports dropped, bytes of a good install destroyed, links left wrong): must be 0. */
  dataLost: number;
  /** Time from the fault until the state was right again, in ms (null where nothing had to converge). */
  convergeMs: number | null;
  /** What was seen, when a number does not say it (e.g. which server the client chose). */
  note?: string;
}

export const CAMPAIGN_OUT_ENV = 'PORTACLUSTER_CAMPAIGN_OUT';

export async function recordCampaignRow(row: CampaignRow): Promise<void> {
  const out = process.env[CAMPAIGN_OUT_ENV];
  if (!out) return;
  for (const k of ['injected', 'survived', 'dataLost'] as const)
    if (!Number.isInteger(row[k]) || row[k] < 0) throw new Error(`campaign row "${row.fault}": ${k} must be a whole number ≥ 0 (got ${row[k]})`);
  // One appendFile per row: a line is written whole, so concurrent test files can share the file.
  await appendFile(out, JSON.stringify({ ...row, at: new Date().toISOString() }) + '\n');
}

export async function readCampaignRows(file: string): Promise<(CampaignRow & { at: string })[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

