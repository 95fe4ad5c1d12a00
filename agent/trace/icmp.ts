// Reading ICMP errors that quote a trace probe: Time Exceeded (RFC 792 type 11) and Destination
// Unreachable (type 3). Both carry the offending datagram's IP header plus at least its first 64
// bits (RFC 792; RFC 1812 §4.3.2.3 lets routers quote more), i.e. the IP header as that hop received
// it — its DS field is the mark on arrival (RFC 2474 §3) — and the UDP header with ports and length.
// ICMPv6 Time Exceeded (RFC 4443 §3.3, type 3) and Destination Unreachable (§3.1, type 1) quote
// "as much of invoking packet as possible": the IPv6 header, whose Traffic Class carries the DS
// field (RFC 2474 §3), and the UDP header.

export const ICMP_DEST_UNREACHABLE = 3;
export const ICMP_TIME_EXCEEDED = 11;
const ICMP_PORT_UNREACHABLE_CODE = 3;
export const ICMP6_DEST_UNREACHABLE = 1;
export const ICMP6_TIME_EXCEEDED = 3;
const ICMP6_PORT_UNREACHABLE_CODE = 4;
const IPV6_HEADER_BYTES = 40;
const UDP = 17;

/** An ICMP error about a UDP datagram, as parsed from a raw IPv4 ICMP socket's packet. */
export interface IcmpQuote {
  /** Who sent the ICMP error. */
  from: string;
  kind: 'time-exceeded' | 'port-unreachable' | 'unreachable';
  /** The quoted IP header's TOS byte (IPv6: its Traffic Class). */
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
  if (qihl < 20 || b[quote + 9] !== UDP) return undefined;
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

/** Canonical IPv6 text (RFC 5952, as the WHATWG URL parser writes it), so addresses compare as strings. */
export function canonicalIp6(text: string): string {
  return new URL(`http://[${text}]`).hostname.slice(1, -1);
}

function ip6(b: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(at + i).toString(16));
  return canonicalIp6(groups.join(':'));
}

/**
 * Parses an ICMPv6 message (as an IPv6 raw socket delivers it: no IPv6 header, the sender given
 * apart) that is an error about a UDP datagram; undefined for anything else.
 */
export function parseIcmp6Quote(b: Buffer, from: string): IcmpQuote | undefined {
  const type = b[0];
  if (type !== ICMP6_TIME_EXCEEDED && type !== ICMP6_DEST_UNREACHABLE) return undefined;
  const quote = 8;
  const udp = quote + IPV6_HEADER_BYTES;
  // The probes carry no extension headers: the quoted Next Header is UDP itself.
  if (b.length < udp + 8 || b[quote]! >> 4 !== 6 || b[quote + 6] !== UDP) return undefined;
  const kind =
    type === ICMP6_TIME_EXCEEDED
      ? 'time-exceeded'
      : b[1] === ICMP6_PORT_UNREACHABLE_CODE
        ? 'port-unreachable'
        : 'unreachable';
  return {
    from: canonicalIp6(from),
    kind,
    quotedTos: ((b[quote]! & 0x0f) << 4) | (b[quote + 1]! >> 4),
    quotedSrc: ip6(b, quote + 8),
    quotedDst: ip6(b, quote + 24),
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
