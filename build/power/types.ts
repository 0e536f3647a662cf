/**
 * The power vocabulary every driver speaks (ipmi, redfish, pdu, ssh, command, and the lab's QEMU monitor).
 * A driver is made for one node from its resolved power spec; it reads a referenced secret only inside a
 * call, and every error it throws is a PowerError naming the node, the driver and the BMC/PDU in the
 * tool's own words — never the secret.
 */
export type PowerState = 'on' | 'off' | 'unknown';
export type PowerAction = 'on' | 'off' | 'cycle' | 'status';
export type PowerKind = 'ipmi' | 'redfish' | 'pdu' | 'ssh' | 'command' | 'lab';

export interface PowerDriver {
  kind: PowerKind;
  /** Where the driver talks to, for tables and errors: "ipmi 10.0.0.21:623", "pdu 10.0.0.5 outlet 3". */
  describe: string;
  /** Which actions this driver can do at all (ssh: cycle only, from a running OS; status unknown). */
  can: ReadonlySet<PowerAction>;
  status(): Promise<PowerState>;
  on(): Promise<void>;
  off(): Promise<void>;
  /** Off then on, or a reset; a node that is off is powered on. */
  cycle(): Promise<void>;
  /**
   * Make the next boot (only) a network boot, where the BMC can. Resolves to null when set, or to the
   * reason it could not be (best effort: the per-MAC link still decides what a network-first node boots).
   */
  bootOnceFromNetwork?(): Promise<string | null>;
}

/** Per call: a BMC that does not answer within timeoutMs is retried `retries` times, then an error. */
export interface CallPolicy {
  timeoutMs: number;
  retries: number;
}

export const DEFAULT_CALL_POLICY: CallPolicy = { timeoutMs: 15_000, retries: 2 };
