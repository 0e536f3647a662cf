/**
 * The fault campaign's tally: one row per fault — how often it was injected, how many injections the
 * cluster survived (the node ended in a known, truthful state and a plain retry converged), reports or
 * bytes lost, and the slowest time from the injection to a converged install. Any e2e case may add rows;
 * the suite prints the table and writes it where docs/figures.md can take it from.
 */
import { writeFile } from 'node:fs/promises';

export interface FaultRow {
  fault: string;
  injected: number;
  survived: number;
  lost: number;
  /** Seconds from each injection to the converged install (the slowest is shown). */
  converge: number[];
}

export class Campaign {
  readonly rows = new Map<string, FaultRow>();

  /** One injection of `fault`: survived or not, what was lost, seconds to converge (null: did not). */
  record(fault: string, o: { survived: boolean; lost?: number; convergeSeconds?: number | null }): void {
    const row = this.rows.get(fault) ?? { fault, injected: 0, survived: 0, lost: 0, converge: [] };
    row.injected++;
    if (o.survived) row.survived++;
    row.lost += o.lost ?? 0;
    if (o.convergeSeconds != null) row.converge.push(o.convergeSeconds);
    this.rows.set(fault, row);
  }

  /** A markdown table, one line per fault in the order first recorded. */
  table(): string {
    const lines = ['| fault | times injected | survived | data lost | time to converge |', '| --- | --- | --- | --- | --- |'];
    for (const r of this.rows.values()) {
      const t = r.converge.length ? `${Math.max(...r.converge).toFixed(0)} s${r.converge.length > 1 ? ` (slowest of ${r.converge.length})` : ''}` : '—';
      lines.push(`| ${r.fault} | ${r.injected} | ${r.survived} | ${r.lost} | ${t} |`);
    }
    return lines.join('\n');
  }

  /** Writes the table to `file` (with a line saying when and how long the campaign took); returns the text. */
  async write(file: string, note: string): Promise<string> {
    const text = `${note}\n\n${this.table()}\n`;
    await writeFile(file, text);
    return text;
  }
}
