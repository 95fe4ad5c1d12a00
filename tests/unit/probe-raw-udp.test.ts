// The IPv4/UDP header parser behind the raw socket (it sees every UDP datagram of the host, so it
// must never throw), and, as root, a real raw send/receive of an EF-marked datagram over loopback.
import { createSocket } from 'node:dgram';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { openRawUdp, parseIpv4Udp, type RawDatagram } from '../../agent/net/raw-udp.js';

/** An IPv4 header (RFC 791) + UDP header (RFC 768) + payload, checksums left zero. */
function ipv4Udp(
  o: { tos?: number; proto?: number; fragment?: number; ihlWords?: number; payload?: Buffer } = {},
) {
  const payload = o.payload ?? Buffer.from('hello');
  const ihl = (o.ihlWords ?? 5) * 4;
  const b = Buffer.alloc(ihl + 8 + payload.length);
  b[0] = 0x40 | (ihl / 4);
  b[1] = o.tos ?? 0xb8; // EF
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(o.fragment ?? 0x4000, 6); // DF, no offset
  b[8] = 64;
  b[9] = o.proto ?? 17;
  Buffer.from([10, 0, 0, 1]).copy(b, 12);
  Buffer.from([192, 0, 2, 7]).copy(b, 16);
  b.writeUInt16BE(16384, ihl);
  b.writeUInt16BE(5004, ihl + 2);
  b.writeUInt16BE(8 + payload.length, ihl + 4);
  payload.copy(b, ihl + 8);
  return b;
}

describe('IPv4/UDP parsing of raw-socket copies', () => {
  it('reads the TOS byte, addresses, ports and payload, with or without IP options', () => {
    for (const ihlWords of [5, 6]) {
      const d = parseIpv4Udp(ipv4Udp({ ihlWords }))!;
      expect(d).toMatchObject({
        tos: 0xb8,
        src: '10.0.0.1',
        dst: '192.0.2.7',
        srcPort: 16384,
        dstPort: 5004,
      });
      expect(d.payload.toString()).toBe('hello');
    }
  });

  it('drops other protocols, later fragments, bad lengths and unwanted ports', () => {
    expect(parseIpv4Udp(ipv4Udp({ proto: 6 }))).toBeUndefined();
    expect(parseIpv4Udp(ipv4Udp({ fragment: 0x2000 }))).toBeUndefined(); // more fragments
    expect(parseIpv4Udp(ipv4Udp({ fragment: 0x0010 }))).toBeUndefined(); // offset ≠ 0
    const short = ipv4Udp();
    short.writeUInt16BE(200, 24); // UDP length beyond the packet
    expect(parseIpv4Udp(short)).toBeUndefined();
    expect(parseIpv4Udp(ipv4Udp().subarray(0, 27))).toBeUndefined();
    expect(parseIpv4Udp(ipv4Udp(), (port) => port === 5005)).toBeUndefined();
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const d = parseIpv4Udp(Buffer.from(bytes));
        if (d) expect(d.payload.length).toBeLessThanOrEqual(bytes.length);
      }),
      { numRuns: 5000 },
    );
  });
});

describe.skipIf(process.getuid?.() !== 0)('raw UDP socket (root)', () => {
  it('sends with the requested DSCP and reads it on arrival, with a valid UDP checksum', async () => {
    const sink = createSocket('udp4');
    await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
    const port = sink.address().port;
    const delivered = new Promise<Buffer>((r) => sink.once('message', (m) => r(m)));
    const seen: RawDatagram[] = [];
    const rx = openRawUdp({
      acceptPort: (p) => p === port,
      onDatagram: (d) => seen.push({ ...d, payload: Buffer.from(d.payload) }),
    });
    const tx = openRawUdp();
    if (typeof rx === 'string' || typeof tx === 'string') throw new Error(`${rx} ${tx}`);
    try {
      tx.send('127.0.0.1', 40000, '127.0.0.1', port, 46, Buffer.from('marked'));
      // The kernel drops datagrams with a bad UDP checksum, so delivery proves the checksum.
      expect((await delivered).toString()).toBe('marked');
      await new Promise((r) => setTimeout(r, 50));
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({ tos: 46 << 2, srcPort: 40000, dstPort: port });
    } finally {
      rx.close();
      tx.close();
      sink.close();
    }
  });
});
