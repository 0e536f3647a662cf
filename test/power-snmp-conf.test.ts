/** snmpConfValue: a value in the temporary snmp.conf the PDU driver writes (secrets go there, never argv). */
import { describe, expect, it } from 'vitest';
import { snmpConfValue } from '../build/power/pdu.ts';

describe('snmpConfValue', () => {
  it('quotes for net-snmp conf files and refuses a line break', () => {
    expect(snmpConfValue('a "b" \\c')).toBe('"a \\"b\\" \\\\c"');
    expect(() => snmpConfValue('a\nb')).toThrow('line break');
  });
});
