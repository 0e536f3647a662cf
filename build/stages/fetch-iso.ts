/** Fetch stage: the plan's ISO source (URL or local path + digests) → a verified file in the download cache. */
import { download, type DownloadOptions } from '../fetch/download.ts';
import type { PlanInstallerEnv } from '../plan/plan.ts';

export type IsoSource = Pick<Extract<PlanInstallerEnv, { type: 'systemrescue' }>, 'source' | 'digests'>;

/** How the spec names the ISO: messages name it, not the cache copy. */
export function isoName(iso: IsoSource): string {
  return 'url' in iso.source ? iso.source.url : iso.source.path;
}

/** Returns the path of the verified ISO inside cacheDir (by-sha256/<hex> or by-sha512/<hex>). */
export async function fetchIso(iso: IsoSource, ctx: DownloadOptions): Promise<string> {
  return ctx.log.step(`fetch ISO ${isoName(iso)}`, async () => {
    const r = await download(iso.source, Object.fromEntries(iso.digests.map((d) => [d.algo, d.hex])), ctx);
    ctx.log.info(r.fromCache ? `ISO already cached: ${r.path} (${r.digest})` : `ISO verified and cached: ${r.path} (${r.digest})`);
    return r.path;
  });
}
