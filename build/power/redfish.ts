/**
 * A node's power through its BMC's Redfish service (DMTF DSP0266) over HTTPS, with undici.
 *
 * Authentication is HTTP Basic on every request, not a session: a power action is one to three requests,
 * Redfish services must accept Basic, and a session (POST SessionService/Sessions … DELETE) that a killed
 * portacluster never deletes holds one of the few session slots a BMC has until it times out — the
 * lock-out BMC users know well. Over verified TLS, Basic sends nothing a session login would not.
 *
 * TLS is verified against the system's CAs, or p.caFile when given; p.insecure accepts any certificate
 * (self-signed BMCs). The password is read at call time and lives only in the Authorization header.
 */
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { PowerError } from '../lib/errors.ts';
import type { PlanPower } from '../plan/plan.ts';
import { readSecret } from './secrets.ts';
import type { CallPolicy, PowerDriver, PowerState } from './types.ts';

type RedfishPower = Extract<PlanPower, { type: 'redfish' }>;

interface Reply {
  status: number;
  etag?: string;
  body: any;
}

/** The TLS refusals Node reports by code: say which certificate problem it was and what to do. */
const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS/;

export function redfishDriver(node: { name: string }, p: RedfishPower, policy: CallPolicy): PowerDriver {
  const base = p.url.replace(/\/+$/, '');
  const fail = (message: string) => new PowerError(`${node.name}: redfish ${message}`);
  let systemUri: string | undefined;

  /** One undici Agent per action, with this BMC's TLS settings; the password read once per action. */
  async function withBmc<T>(fn: (call: (method: string, path: string, body?: unknown, etag?: string) => Promise<Reply>) => Promise<T>): Promise<T> {
    if (base.startsWith('http://') && !p.insecure) {
      throw fail(`${base}: plain http would send the BMC password in clear\n  hint: use https://, or set insecure: true if this BMC cannot do TLS`);
    }
    const ca = p.caFile ? await readFile(p.caFile, 'utf8').catch((e: NodeJS.ErrnoException) => { throw fail(`cannot read caFile ${p.caFile}: ${e.code ?? e.message}`); }) : undefined;
    const password = await readSecret(p.password, 'the BMC password').catch((e: Error) => { throw fail(e.message); });
    const auth = 'Basic ' + Buffer.from(`${p.user}:${password}`).toString('base64');
    const agent = new Agent({ connect: { ca, rejectUnauthorized: !p.insecure, timeout: policy.timeoutMs }, headersTimeout: policy.timeoutMs, bodyTimeout: policy.timeoutMs });
    const call = async (method: string, path: string, body?: unknown, etag?: string): Promise<Reply> => {
      const resolved = new URL(path, base + '/');
      // Links come from the BMC's answers (@odata.id, an action's target): never send the password elsewhere.
      if (resolved.origin !== new URL(base).origin) throw fail(`${base}: the BMC linked to ${resolved.origin}, another server; refused`);
      const url = resolved.toString();
      for (let attempt = 0; ; attempt++) {
        try {
          const r = await request(url, {
            method: method as 'GET',
            dispatcher: agent,
            signal: AbortSignal.timeout(policy.timeoutMs),
            headers: {
              authorization: auth,
              accept: 'application/json',
              'odata-version': '4.0',
              ...(body === undefined ? {} : { 'content-type': 'application/json' }),
              // Services that version resources (HPE iLO) refuse a PATCH without the ETag they sent (428).
              ...(etag ? { 'if-match': etag } : {}),
            },
            body: body === undefined ? undefined : JSON.stringify(body),
          });
          const text = await r.body.text();
          let json: any = null;
          try {
            json = text ? JSON.parse(text) : null;
          } catch {
            json = { text };
          }
          // A BMC that is busy (503) or restarting its web server (502/504) is asked again.
          if ([502, 503, 504].includes(r.statusCode) && attempt < policy.retries) {
            await pause(500 * (attempt + 1));
            continue;
          }
          const reply: Reply = { status: r.statusCode, body: json, ...(typeof r.headers.etag === 'string' ? { etag: r.headers.etag } : {}) };
          if (r.statusCode >= 400) throw fail(`${method} ${url}: HTTP ${r.statusCode}${redfishMessage(json)}` + hintFor(r.statusCode));
          return reply;
        } catch (e) {
          if (e instanceof PowerError) throw e;
          const code = errCode(e);
          if (TLS_CODES.test(code)) {
            throw fail(`${url}: the BMC's TLS certificate was refused: ${errMessage(e)} (${code})\n  hint: give caFile (the CA that signed the BMC's certificate), or insecure: true for a self-signed BMC`);
          }
          // A reset that timed out may have been done: only a request that never reached the BMC is sent again.
          const unsent = /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|UND_ERR_CONNECT_TIMEOUT/.test(code);
          if (attempt < policy.retries && (method !== 'POST' || unsent)) {
            await pause(500 * (attempt + 1));
            continue;
          }
          const what = /Timeout|TIMEOUT/.test(code) ? `did not answer within ${policy.timeoutMs / 1000} s` : `${errMessage(e)}${code ? ` (${code})` : ''}`;
          throw fail(`${method} ${url}: ${what} (after ${attempt + 1} tries)\n  hint: check the url (host, port) and that node0 reaches the BMC's network`);
        }
      }
    };
    try {
      return await fn(call);
    } finally {
      await agent.close().catch(() => undefined);
    }
  }

  type Call = Parameters<Parameters<typeof withBmc>[0]>[0];

  /** p.systemId, else the only member of the service root's Systems collection. */
  async function system(call: Call): Promise<{ uri: string; reply: Reply }> {
    if (!systemUri) {
      if (p.systemId) systemUri = `/redfish/v1/Systems/${encodeURIComponent(p.systemId)}`;
      else {
        const root = await call('GET', '/redfish/v1');
        const systems: string = root.body?.Systems?.['@odata.id'] ?? '/redfish/v1/Systems';
        const members: { '@odata.id': string }[] = (await call('GET', systems)).body?.Members ?? [];
        if (members.length !== 1) {
          const ids = members.map((m) => m['@odata.id'].split('/').filter(Boolean).pop()).join(', ');
          throw fail(`${base}${systems} lists ${members.length === 0 ? 'no systems' : `${members.length} systems (${ids})`}\n  hint: set power.systemId to the one this node is`);
        }
        systemUri = members[0]!['@odata.id'];
      }
    }
    return { uri: systemUri, reply: await call('GET', systemUri) };
  }

  const stateOf = (sys: any): PowerState => {
    // Transitional states count as where they are going: a PoweringOn node needs no second "on".
    const s = sys?.PowerState;
    return s === 'On' || s === 'PoweringOn' ? 'on' : s === 'Off' || s === 'PoweringOff' ? 'off' : 'unknown';
  };

  async function reset(call: Call, uri: string, sys: any, type: string): Promise<void> {
    const action = sys?.Actions?.['#ComputerSystem.Reset'];
    const allowed: string[] | undefined = action?.['ResetType@Redfish.AllowableValues'];
    if (allowed && !allowed.includes(type)) throw fail(`${base}${uri} does not offer ResetType ${type} (it offers ${allowed.join(', ')})`);
    await call('POST', action?.target ?? `${uri}/Actions/ComputerSystem.Reset`, { ResetType: type });
  }

  const allows = (sys: any, type: string): boolean => !!sys?.Actions?.['#ComputerSystem.Reset']?.['ResetType@Redfish.AllowableValues']?.includes(type);

  return {
    kind: 'redfish',
    describe: `redfish ${base}${p.systemId ? ` system ${p.systemId}` : ''}`,
    can: new Set(['on', 'off', 'cycle', 'status']),
    status: () => withBmc(async (call) => stateOf((await system(call)).reply.body)),
    on: () =>
      withBmc(async (call) => {
        const { uri, reply } = await system(call);
        // Many BMCs answer "On" for a running system with an error (409/400): only ask when it is off.
        if (stateOf(reply.body) !== 'on') await reset(call, uri, reply.body, 'On');
      }),
    off: () =>
      withBmc(async (call) => {
        const { uri, reply } = await system(call);
        if (stateOf(reply.body) !== 'off') await reset(call, uri, reply.body, 'ForceOff');
      }),
    cycle: () =>
      withBmc(async (call) => {
        const { uri, reply } = await system(call);
        if (stateOf(reply.body) === 'off') return reset(call, uri, reply.body, 'On');
        // A real power cycle where the BMC offers one; else a hard reset, which every BMC has.
        await reset(call, uri, reply.body, allows(reply.body, 'PowerCycle') ? 'PowerCycle' : 'ForceRestart');
      }),
    bootOnceFromNetwork: () =>
      withBmc(async (call) => {
        const { uri, reply } = await system(call);
        const targets: string[] | undefined = reply.body?.Boot?.['BootSourceOverrideTarget@Redfish.AllowableValues'];
        if (targets && !targets.includes('Pxe')) return `${base}${uri} offers no Pxe boot override (it offers ${targets.join(', ')})`;
        try {
          await call('PATCH', uri, { Boot: { BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: 'Pxe' } }, reply.etag);
          return null;
        } catch (e) {
          // Refused by the BMC (not a transport or auth failure): best effort, the per-MAC link still decides.
          if (e instanceof PowerError && / HTTP (400|405|409|412|428|501)\b/.test(e.message)) return e.message.replace(/^power: [^:]*: redfish /, '');
          throw e;
        }
      }),
  };
}

/** The Redfish error body's words: error.@Message.ExtendedInfo[].Message, else error.message. */
function redfishMessage(json: any): string {
  const err = json?.error;
  const infos: string[] = (err?.['@Message.ExtendedInfo'] ?? []).map((i: any) => i?.Message).filter((m: unknown) => typeof m === 'string');
  const words = infos.length ? infos.join('; ') : typeof err?.message === 'string' ? err.message : typeof json?.text === 'string' ? json.text.slice(0, 200) : '';
  return words ? `: ${words}` : '';
}

function hintFor(status: number): string {
  if (status === 401) return '\n  hint: check the BMC user and the password file/variable the spec names';
  if (status === 403) return "\n  hint: the BMC user lacks the privilege (Redfish ConfigureComponents) to do this";
  if (status === 404) return '\n  hint: check the url and systemId (GET /redfish/v1/Systems lists the ids)';
  return '';
}

function errCode(e: unknown): string {
  const err = e as { code?: string; name?: string; cause?: { code?: string } };
  return err?.cause?.code ?? err?.code ?? err?.name ?? '';
}

function errMessage(e: unknown): string {
  const err = e as { message?: string; cause?: { message?: string } };
  return err?.cause?.message ?? err?.message ?? String(e);
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
