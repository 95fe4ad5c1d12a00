// Quotes of our probe are recognised; ICMP quoting other flows, or forged without our payload, is
// not; no byte string makes the parser throw.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalIp6,
  parseIcmp6Quote,
  parseIcmpQuote,
  quotesProbe,
  type SentProbe,
} from '../../agent/trace/icmp.js';

const PROBE: SentProbe = {
  src: '198.18.20.1',
  dst: '198.18.23.2',
  srcPort: 40000,
  dstPort: 33434,
  udpLength: 8 + 17,
  udpChecksum: 0x1234,
  payload: Buffer.from('0123456789abcdefg'),
};

const ipBytes = (a: string) => a.split('.').map(Number);

/** An ICMP error from `from` quoting a UDP datagram (IP header with tos, UDP header, payload). */
function icmpError(opts: {
  from: string;
  type: number;
  code: number;
  tos: number;
  probe: SentProbe;
  quotedPayload?: Buffer;
}): Buffer {
  const p = opts.probe;
  const quotedIp = Buffer.alloc(20);
  quotedIp[0] = 0x45;
  quotedIp[1] = opts.tos;
  quotedIp[8] = 1;
  quotedIp[9] = 17;
  quotedIp.set(ipBytes(p.src), 12);
  quotedIp.set(ipBytes(p.dst), 16);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(p.srcPort, 0);
  udp.writeUInt16BE(p.dstPort, 2);
  udp.writeUInt16BE(p.udpLength, 4);
  udp.writeUInt16BE(p.udpChecksum, 6);
  const icmp = Buffer.from([opts.type, opts.code, 0, 0, 0, 0, 0, 0]);
  const outer = Buffer.alloc(20);
  outer[0] = 0x45;
  outer[8] = 64;
  outer[9] = 1;
  outer.set(ipBytes(opts.from), 12);
  outer.set(ipBytes(p.src), 16);
  return Buffer.concat([outer, icmp, quotedIp, udp, opts.quotedPayload ?? Buffer.alloc(0)]);
}

describe('trace ICMP quotes', () => {
  it('reads the hop, the kind and the DS field of a Time Exceeded quoting our probe', () => {
    const q = parseIcmpQuote(icmpError({ from: '198.18.21.2', type: 11, code: 0, tos: 0xb8, probe: PROBE }))!;
    expect(q).toMatchObject({ from: '198.18.21.2', kind: 'time-exceeded', quotedTos: 0xb8 });
    expect(quotesProbe(q, PROBE)).toBe(true);
    const pu = parseIcmpQuote(icmpError({ from: PROBE.dst, type: 3, code: 3, tos: 0, probe: PROBE }))!;
    expect(pu.kind).toBe('port-unreachable');
    expect(parseIcmpQuote(icmpError({ from: PROBE.dst, type: 3, code: 1, tos: 0, probe: PROBE }))!.kind).toBe(
      'unreachable',
    );
  });

  it('ignores quotes of other flows and forgeries with a wrong payload', () => {
    const others: SentProbe[] = [
      { ...PROBE, srcPort: 40001 },
      { ...PROBE, dstPort: 5060 },
      { ...PROBE, src: '198.18.20.9' },
      { ...PROBE, dst: '198.18.23.9' },
      { ...PROBE, udpLength: PROBE.udpLength + 1 },
      { ...PROBE, udpChecksum: 0x4321 },
    ];
    for (const other of others) {
      const q = parseIcmpQuote(icmpError({ from: '198.18.21.2', type: 11, code: 0, tos: 0, probe: other }))!;
      expect(quotesProbe(q, PROBE)).toBe(false);
    }
    const forged = parseIcmpQuote(
      icmpError({
        from: '198.18.21.2',
        type: 11,
        code: 0,
        tos: 0,
        probe: PROBE,
        quotedPayload: Buffer.from('x'),
      }),
    )!;
    expect(quotesProbe(forged, PROBE)).toBe(false);
    const genuine = parseIcmpQuote(
      icmpError({
        from: '198.18.21.2',
        type: 11,
        code: 0,
        tos: 0,
        probe: PROBE,
        quotedPayload: PROBE.payload,
      }),
    )!;
    expect(quotesProbe(genuine, PROBE)).toBe(true);
  });

  it('is not an error of interest: echo replies, non-UDP quotes, truncated packets', () => {
    const te = icmpError({ from: '198.18.21.2', type: 11, code: 0, tos: 0, probe: PROBE });
    const echo = Buffer.from(te);
    echo[20] = 0;
    expect(parseIcmpQuote(echo)).toBeUndefined();
    const tcp = Buffer.from(te);
    tcp[28 + 9] = 6;
    expect(parseIcmpQuote(tcp)).toBeUndefined();
    for (let n = 0; n < te.length - 8; n++) expect(parseIcmpQuote(te.subarray(0, n))).toBeUndefined();
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const q = parseIcmpQuote(Buffer.from(bytes));
        if (q) expect(quotesProbe(q, PROBE)).toBeTypeOf('boolean');
      }),
    );
  });

  it('reads ICMPv6 errors: the quoted Traffic Class, ports, and the kind', () => {
    const probe6: SentProbe = { ...PROBE, src: '2001:2:0:20::1', dst: '2001:2:0:23::2' };
    const icmp6 = (type: number, code: number, tclass: number, p: SentProbe, nextHeader = 17) => {
      const b = Buffer.alloc(8 + 40 + 8);
      b[0] = type;
      b[1] = code;
      b[8] = 0x60 | (tclass >> 4);
      b[9] = (tclass & 0x0f) << 4;
      b[8 + 6] = nextHeader;
      b[8 + 7] = 1;
      // 2001:2:0:20::1 and 2001:2:0:23::2
      b.writeUInt16BE(0x2001, 16);
      b.writeUInt16BE(2, 18);
      b.writeUInt16BE(0x20, 22);
      b.writeUInt16BE(1, 30);
      b.writeUInt16BE(0x2001, 32);
      b.writeUInt16BE(2, 34);
      b.writeUInt16BE(0x23, 38);
      b.writeUInt16BE(2, 46);
      b.writeUInt16BE(p.srcPort, 48);
      b.writeUInt16BE(p.dstPort, 50);
      b.writeUInt16BE(p.udpLength, 52);
      b.writeUInt16BE(p.udpChecksum, 54);
      return b;
    };
    const te = parseIcmp6Quote(icmp6(3, 0, 0xb8, probe6), '2001:2:0:21:0:0:0:2')!;
    expect(te).toMatchObject({ from: '2001:2:0:21::2', kind: 'time-exceeded', quotedTos: 0xb8 });
    expect(quotesProbe(te, probe6)).toBe(true);
    expect(quotesProbe(parseIcmp6Quote(icmp6(3, 0, 0, { ...probe6, srcPort: 1 }), '::1')!, probe6)).toBe(
      false,
    );
    expect(parseIcmp6Quote(icmp6(1, 4, 0, probe6), '::1')!.kind).toBe('port-unreachable');
    expect(parseIcmp6Quote(icmp6(1, 3, 0, probe6), '::1')!.kind).toBe('unreachable');
    // Echo requests, quotes of TCP (or behind extension headers), truncated messages: not ours.
    expect(parseIcmp6Quote(icmp6(128, 0, 0, probe6), '::1')).toBeUndefined();
    expect(parseIcmp6Quote(icmp6(3, 0, 0, probe6, 6), '::1')).toBeUndefined();
    const whole = icmp6(3, 0, 0, probe6);
    for (let n = 0; n < whole.length; n++)
      expect(parseIcmp6Quote(whole.subarray(0, n), '::1')).toBeUndefined();
    expect(canonicalIp6('2001:0DB8:0:0:0:0:0:0001')).toBe('2001:db8::1');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const q = parseIcmp6Quote(Buffer.from(bytes), '::1');
        if (q) expect(quotesProbe(q, probe6)).toBeTypeOf('boolean');
      }),
    );
  });
});
