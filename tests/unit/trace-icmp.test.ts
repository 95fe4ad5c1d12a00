// Quotes of our probe are recognised; ICMP quoting other flows, or forged without our payload, is
// not; no byte string makes the parser throw.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseIcmpQuote, quotesProbe, type SentProbe } from '../../agent/trace/icmp.js';

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
});
