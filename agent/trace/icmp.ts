// Reading ICMP errors that quote a trace probe: Time Exceeded (RFC 792 type 11) and Destination
// Unreachable (type 3). Both carry the offending datagram's IP header plus at least its first 64
// bits (RFC 792; RFC 1812 §4.3.2.3 lets routers quote more), i.e. the IP header as that hop received
// it — its DS field is the mark on arrival (RFC 2474 §3) — and the UDP header with ports and length.

export const ICMP_DEST_UNREACHABLE = 3;
export const ICMP_TIME_EXCEEDED = 11;
const ICMP_PORT_UNREACHABLE_CODE = 3;

/** An ICMP error about a UDP datagram, as parsed from a raw IPv4 ICMP socket's packet. */
export interface IcmpQuote {
  /** Who sent the ICMP error. */
  from: string;
  kind: 'time-exceeded' | 'port-unreachable' | 'unreachable';
  /** The quoted IP header's TOS byte. */
  quotedTos: number;
  quotedSrc: string;
  quotedDst: string;
  srcPort: number;
  dstPort: number;
  udpLength: number;
  udpChecksum: number;
  /** Whatever of the UDP payload the hop quoted (often nothing). */
  quotedPayload: Buffer;
}

const ip4 = (b: Buffer, at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;

/** Parses an IPv4 packet (header included) carrying an ICMP error about UDP; undefined for anything else. */
export function parseIcmpQuote(b: Buffer): IcmpQuote | undefined {
  if (b.length < 20 || b[0]! >> 4 !== 4) return undefined;
  const ihl = (b[0]! & 0x0f) * 4;
  if (ihl < 20 || b[9] !== 1) return undefined;
  const icmp = ihl;
  const type = b[icmp];
  if (type !== ICMP_TIME_EXCEEDED && type !== ICMP_DEST_UNREACHABLE) return undefined;
  const quote = icmp + 8;
  if (b.length < quote + 20 || b[quote]! >> 4 !== 4) return undefined;
  const qihl = (b[quote]! & 0x0f) * 4;
  if (qihl < 20 || b[quote + 9] !== 17) return undefined;
  const udp = quote + qihl;
  if (b.length < udp + 8) return undefined;
  const kind =
    type === ICMP_TIME_EXCEEDED
      ? 'time-exceeded'
      : b[icmp + 1] === ICMP_PORT_UNREACHABLE_CODE
        ? 'port-unreachable'
        : 'unreachable';
  return {
    from: ip4(b, 12),
    kind,
    quotedTos: b[quote + 1]!,
    quotedSrc: ip4(b, quote + 12),
    quotedDst: ip4(b, quote + 16),
    srcPort: b.readUInt16BE(udp),
    dstPort: b.readUInt16BE(udp + 2),
    udpLength: b.readUInt16BE(udp + 4),
    udpChecksum: b.readUInt16BE(udp + 6),
    quotedPayload: b.subarray(udp + 8),
  };
}

/** What was sent, to recognise a quote of it. */
export interface SentProbe {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  udpLength: number;
  udpChecksum: number;
  payload: Buffer;
}

/**
 * Whether a quote is of this probe: addresses, ports, UDP length (unique per probe) and checksum
 * must all agree, and so must whatever payload the hop quoted. ICMP quoting other flows — or
 * forged to look like ours without knowing the payload — is ignored.
 */
export function quotesProbe(q: IcmpQuote, p: SentProbe): boolean {
  if (q.quotedSrc !== p.src || q.quotedDst !== p.dst) return false;
  if (q.srcPort !== p.srcPort || q.dstPort !== p.dstPort) return false;
  if (q.udpLength !== p.udpLength || q.udpChecksum !== p.udpChecksum) return false;
  const n = Math.min(q.quotedPayload.length, p.payload.length);
  return q.quotedPayload.subarray(0, n).equals(p.payload.subarray(0, n));
}
