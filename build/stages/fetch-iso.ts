/** Fetch stage: the spec's ISO source (URL or local path + digest) → a verified file in the download cache. */
import { download, type DownloadOptions } from '../fetch/download.ts';

export interface IsoSource {
  url?: string;
  path?: string;
  sha256?: string;
  sha512?: string;
}

/** Returns the path of the verified ISO inside cacheDir (by-sha256/<hex> or by-sha512/<hex>). */
export async function fetchIso(source: IsoSource, ctx: DownloadOptions): Promise<string> {
  const what = source.url ?? source.path ?? '(no source)';
  return ctx.log.step(`fetch ISO ${what}`, async () => {
    const r = await download(
      { ...(source.url !== undefined ? { url: source.url } : {}), ...(source.path !== undefined ? { path: source.path } : {}) },
      { ...(source.sha256 !== undefined ? { sha256: source.sha256 } : {}), ...(source.sha512 !== undefined ? { sha512: source.sha512 } : {}) },
      ctx,
    );
    ctx.log.info(r.fromCache ? `ISO already cached: ${r.path} (${r.digest})` : `ISO verified and cached: ${r.path} (${r.digest})`);
    return r.path;
  });
}
