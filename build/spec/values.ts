/** Parsers for the spec's scalar forms: MAC addresses, IPv4 addresses, sizes. Pure; return null when invalid. */

/** Accepts aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff, aabb.ccdd.eeff and aabbccddeeff; returns lowercase colon form. */
export function parseMac(text: string): string | null {
  const t = text.trim().toLowerCase();
  let hex: string | null = null;
  if (/^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/.test(t) && new Set(t.replace(/[0-9a-f]/g, '')).size === 1) hex = t.replace(/[:-]/g, '');
  else if (/^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/.test(t)) hex = t.replace(/\./g, '');
  else if (/^[0-9a-f]{12}$/.test(t)) hex = t;
  if (!hex) return null;
  return hex.match(/../g)!.join(':');
}

export function parseIpv4(text: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p, i) => p > 255 || (m[i + 1]!.length > 1 && m[i + 1]!.startsWith('0')))) return null;
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

export function formatIpv4(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

export function subnetOf(ip: number, prefix: number): { network: number; broadcast: number; netmask: number } {
  const netmask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const network = (ip & netmask) >>> 0;
  return { network, broadcast: (network | (~netmask >>> 0)) >>> 0, netmask };
}

const UNITS: Record<string, number> = { '': 1, B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** "512M" → 536870912; integers are bytes. Units are binary (KiB, MiB…), "MiB"/"GB" spellings accepted. */
export function parseSize(value: string | number): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? value : null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(value);
  if (!m) return null;
  const bytes = Math.round(Number(m[1]) * UNITS[m[2]!.toUpperCase()]!);
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : null;
}

export function formatSize(bytes: number): string {
  for (const [unit, n] of [['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) {
    if (bytes >= n) return `${+(bytes / n).toFixed(2)}${unit}`;
  }
  return `${bytes}B`;
}
