// Link layer → IP → UDP/TCP decoding straight from the capture buffer. One Decoded object is reused
// for every packet (no per-packet allocation on the common path). IPv4 (RFC 791 §3.2) and IPv6
// (RFC 8200 §4.5) fragments are reassembled in bounded tables; IP-in-IP tunnels are followed.
import type { PacketTime } from './reader.js';

/** Link types (https://www.tcpdump.org/linktypes.html). */
export const LINKTYPE = {
  NULL: 0,
  ETHERNET: 1,
  RAW_DLT12: 12,
  RAW_OPENBSD: 14,
  RAW: 101,
  LOOP: 108,
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  LINUX_SLL2: 276,
} as const;

export const SUPPORTED_LINKTYPES: ReadonlySet<number> = new Set(Object.values(LINKTYPE));

/** The fields of the packet being decoded; valid only during the handler call. */
export class Decoded {
  ipVersion = 4;
  /** Addresses as 32-bit words: IPv4 uses word 0 only. */
  readonly src = new Uint32Array(4);
  readonly dst = new Uint32Array(4);
  dscp = 0;
  srcPort = 0;
  dstPort = 0;
  data: Uint8Array = new Uint8Array(0);
  /** Transport payload (after the UDP/TCP header). */
  payloadOffset = 0;
  payloadLength = 0;
  tcpSeq = 0;
  tcpFlags = 0;
  relMs = 0;
  epochS = 0;
  /** 1-based frame number in the file. */
  frame = 0;
}

export interface TransportHandler {
  udp(p: Decoded): void;
  tcp(p: Decoded): void;
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;

const MAX_TUNNEL_DEPTH = 3;
const GTP_U_PORT = 2152;

/**
 * Offset of the user IP packet in a GTPv1-U G-PDU (3GPP TS 29.281 §5.1), or -1: version 1, PT 1,
 * message type 255; the optional sequence/N-PDU/extension fields and extension headers skipped.
 */
function gtpUserPayload(b: Uint8Array, off: number, end: number): number {
  if (end - off < 8) return -1;
  const flags = b[off]!;
  if (flags >> 5 !== 1 || (flags & 0x10) === 0 || b[off + 1] !== 0xff) return -1;
  let o = off + 8;
  if (flags & 0x07) {
    if (end - o < 4) return -1;
    let next = b[o + 3]!;
    o += 4;
    // Extension headers: a length in 4-byte units, the next type in the last byte.
    for (let i = 0; next !== 0 && i < 8; i++) {
      if (end - o < 4 || b[o] === 0) return -1;
      const units = b[o]!;
      if (end - o < units * 4) return -1;
      next = b[o + units * 4 - 1]!;
      o += units * 4;
    }
  }
  if (o >= end) return -1;
  const version = b[o]! >> 4;
  return version === 4 || version === 6 ? o : -1;
}
/** Pending fragmented datagrams kept at once, and how long one may wait for its pieces. */
export const MAX_PENDING_FRAGMENTS = 256;
const FRAGMENT_TIMEOUT_MS = 30_000;

interface PendingDatagram {
  firstMs: number;
  /** Payload bytes received so far, by fragment offset. */
  pieces: Array<{ offset: number; bytes: Uint8Array }>;
  /** Total payload length, known once the last fragment arrived; -1 until then. */
  total: number;
  protocol: number;
  dscp: number;
  ipVersion: number;
  src: Uint32Array;
  dst: Uint32Array;
}

export class PacketDecoder {
  readonly p = new Decoded();
  /** Packets of link types or network protocols this decoder does not read. */
  undecodable = 0;
  reassembled = 0;
  private readonly fragments = new Map<string, PendingDatagram>();
  private readonly unsupportedLinkTypes = new Set<number>();

  constructor(
    private readonly handler: TransportHandler,
    private readonly warn: (message: string) => void,
  ) {}

  packet(linkType: number, b: Uint8Array, off: number, len: number, time: PacketTime): void {
    const p = this.p;
    p.frame++;
    p.relMs = time.relMs;
    p.epochS = time.epochS;
    p.data = b;
    const end = off + len;
    switch (linkType) {
      case LINKTYPE.ETHERNET:
        this.ethernet(b, off, end);
        return;
      case LINKTYPE.LINUX_SLL:
        if (len >= 16) this.etherType((b[off + 14]! << 8) | b[off + 15]!, b, off + 16, end);
        return;
      case LINKTYPE.LINUX_SLL2:
        if (len >= 20) this.etherType((b[off]! << 8) | b[off + 1]!, b, off + 20, end);
        return;
      case LINKTYPE.RAW:
      case LINKTYPE.RAW_DLT12:
      case LINKTYPE.RAW_OPENBSD:
      case LINKTYPE.IPV4:
      case LINKTYPE.IPV6:
        this.ip(b, off, end, 0);
        return;
      case LINKTYPE.NULL:
      case LINKTYPE.LOOP: {
        if (len < 4) return;
        // BSD loopback: address family in host byte order (NULL) or network order (LOOP).
        // Families: 2 = AF_INET; 24, 28, 30 = AF_INET6 on the BSDs and macOS.
        const be = (b[off + 2]! << 8) | b[off + 3]!;
        const family = linkType === LINKTYPE.LOOP || b[off]! === 0 ? be : b[off]! | (b[off + 1]! << 8);
        if (family === 2 || family === 24 || family === 28 || family === 30) this.ip(b, off + 4, end, 0);
        else this.undecodable++;
        return;
      }
      default:
        this.undecodable++;
        if (!this.unsupportedLinkTypes.has(linkType)) {
          this.unsupportedLinkTypes.add(linkType);
          this.warn(`link type ${linkType} is not supported; its packets were skipped`);
        }
    }
  }

  private ethernet(b: Uint8Array, off: number, end: number): void {
    if (end - off < 14) return;
    this.etherType((b[off + 12]! << 8) | b[off + 13]!, b, off + 14, end);
  }

  private etherType(type: number, b: Uint8Array, off: number, end: number): void {
    // 802.1Q / 802.1ad (QinQ) / legacy 0x9100 tags: 4 bytes each, the real type follows.
    let tags = 0;
    while ((type === 0x8100 || type === 0x88a8 || type === 0x9100) && tags < 4) {
      if (end - off < 4) return;
      type = (b[off + 2]! << 8) | b[off + 3]!;
      off += 4;
      tags++;
    }
    if (type === 0x0800 || type === 0x86dd) this.ip(b, off, end, 0);
    else if (type === 0x8847) {
      // MPLS unicast (RFC 3032): pop labels to the bottom of the stack, then IP by version nibble.
      for (let i = 0; i < 8 && end - off >= 4; i++) {
        const bottom = (b[off + 2]! & 1) === 1;
        off += 4;
        if (bottom) {
          this.ip(b, off, end, 0);
          return;
        }
      }
    } else this.undecodable++;
  }

  private ip(b: Uint8Array, off: number, end: number, depth: number): void {
    if (end - off < 1) return;
    const version = b[off]! >> 4;
    if (version === 4) this.ipv4(b, off, end, depth);
    else if (version === 6) this.ipv6(b, off, end, depth);
    else this.undecodable++;
  }

  private ipv4(b: Uint8Array, off: number, end: number, depth: number): void {
    if (end - off < 20) return;
    const ihl = (b[off]! & 0x0f) * 4;
    const total = (b[off + 2]! << 8) | b[off + 3]!;
    // A total length of 0 comes from segmentation offload on the capturing host: use what was captured.
    if (ihl < 20 || (total < ihl && total !== 0)) return;
    // Ethernet pads short frames; the IP total length says where the datagram ends.
    const ipEnd = total === 0 ? end : Math.min(end, off + total);
    if (ipEnd - off < ihl) return;
    const p = this.p;
    p.ipVersion = 4;
    p.dscp = b[off + 1]! >> 2;
    p.src[0] = ((b[off + 12]! << 24) | (b[off + 13]! << 16) | (b[off + 14]! << 8) | b[off + 15]!) >>> 0;
    p.dst[0] = ((b[off + 16]! << 24) | (b[off + 17]! << 16) | (b[off + 18]! << 8) | b[off + 19]!) >>> 0;
    p.src[1] = p.src[2] = p.src[3] = 0;
    p.dst[1] = p.dst[2] = p.dst[3] = 0;
    const protocol = b[off + 9]!;
    const flagsFrag = (b[off + 6]! << 8) | b[off + 7]!;
    const more = (flagsFrag & 0x2000) !== 0;
    const fragOffset = (flagsFrag & 0x1fff) * 8;
    if (more || fragOffset > 0) {
      const id = (b[off + 4]! << 8) | b[off + 5]!;
      this.fragment(
        `4:${p.src[0]}:${p.dst[0]}:${id}:${protocol}`,
        b,
        off + ihl,
        ipEnd,
        fragOffset,
        more,
        protocol,
      );
      return;
    }
    this.transport(protocol, b, off + ihl, ipEnd, depth);
  }

  private ipv6(b: Uint8Array, off: number, end: number, depth: number): void {
    if (end - off < 40) return;
    const p = this.p;
    p.ipVersion = 6;
    // Traffic class: 4 bits in byte 0, 4 in byte 1; DSCP is its upper six bits (RFC 2474 §3).
    const tclass = ((b[off]! & 0x0f) << 4) | (b[off + 1]! >> 4);
    p.dscp = tclass >> 2;
    for (let i = 0; i < 4; i++) {
      const s = off + 8 + 4 * i;
      const d = off + 24 + 4 * i;
      p.src[i] = ((b[s]! << 24) | (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!) >>> 0;
      p.dst[i] = ((b[d]! << 24) | (b[d + 1]! << 16) | (b[d + 2]! << 8) | b[d + 3]!) >>> 0;
    }
    const payloadLen = (b[off + 4]! << 8) | b[off + 5]!;
    const ipEnd = payloadLen === 0 ? end : Math.min(end, off + 40 + payloadLen);
    let next = b[off + 6]!;
    let o = off + 40;
    // Extension headers (RFC 8200 §4): hop-by-hop, routing, destination options, fragment.
    for (let i = 0; i < 8; i++) {
      if (next === 0 || next === 43 || next === 60) {
        if (ipEnd - o < 8) return;
        next = b[o]!;
        o += (b[o + 1]! + 1) * 8;
      } else if (next === 44) {
        if (ipEnd - o < 8) return;
        const fragNext = b[o]!;
        const fragField = (b[o + 2]! << 8) | b[o + 3]!;
        const id = ((b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!) >>> 0;
        const fragOffset = fragField & 0xfff8;
        const more = (fragField & 1) === 1;
        o += 8;
        if (more || fragOffset > 0) {
          this.fragment(
            `6:${p.src.join(',')}:${p.dst.join(',')}:${id}`,
            b,
            o,
            ipEnd,
            fragOffset,
            more,
            fragNext,
          );
          return;
        }
        next = fragNext;
      } else break;
    }
    if (o > ipEnd) return;
    this.transport(next, b, o, ipEnd, depth);
  }

  private transport(protocol: number, b: Uint8Array, off: number, end: number, depth: number): void {
    const p = this.p;
    if (protocol === 17) {
      if (end - off < 8) return;
      p.srcPort = (b[off]! << 8) | b[off + 1]!;
      p.dstPort = (b[off + 2]! << 8) | b[off + 3]!;
      const udpLen = (b[off + 4]! << 8) | b[off + 5]!;
      p.data = b;
      p.payloadOffset = off + 8;
      // A UDP length of 0 (jumbograms) or beyond the captured bytes: use what was captured.
      p.payloadLength = udpLen >= 8 && off + udpLen <= end ? udpLen - 8 : end - off - 8;
      if ((p.srcPort === GTP_U_PORT || p.dstPort === GTP_U_PORT) && depth < MAX_TUNNEL_DEPTH) {
        const inner = gtpUserPayload(b, p.payloadOffset, p.payloadOffset + p.payloadLength);
        if (inner >= 0) {
          this.ip(b, inner, p.payloadOffset + p.payloadLength, depth + 1);
          return;
        }
      }
      this.handler.udp(p);
    } else if (protocol === 6) {
      if (end - off < 20) return;
      const dataOffset = (b[off + 12]! >> 4) * 4;
      if (dataOffset < 20 || off + dataOffset > end) return;
      p.srcPort = (b[off]! << 8) | b[off + 1]!;
      p.dstPort = (b[off + 2]! << 8) | b[off + 3]!;
      p.tcpSeq = ((b[off + 4]! << 24) | (b[off + 5]! << 16) | (b[off + 6]! << 8) | b[off + 7]!) >>> 0;
      p.tcpFlags = b[off + 13]!;
      p.data = b;
      p.payloadOffset = off + dataOffset;
      p.payloadLength = end - off - dataOffset;
      this.handler.tcp(p);
    } else if ((protocol === 4 || protocol === 41) && depth < MAX_TUNNEL_DEPTH) {
      // IP-in-IP (RFC 2003) and IPv6-in-IP (RFC 4213): judge the inner packet, as tshark shows it.
      this.ip(b, off, end, depth + 1);
    }
  }

  private fragment(
    key: string,
    b: Uint8Array,
    off: number,
    end: number,
    fragOffset: number,
    more: boolean,
    protocol: number,
  ): void {
    const p = this.p;
    let d = this.fragments.get(key);
    if (!d) {
      this.expireFragments();
      if (this.fragments.size >= MAX_PENDING_FRAGMENTS) {
        const oldest = this.fragments.keys().next().value;
        if (oldest !== undefined) this.fragments.delete(oldest);
        this.warn(
          `more than ${MAX_PENDING_FRAGMENTS} fragmented datagrams pending at once; the oldest were dropped`,
        );
      }
      d = {
        firstMs: p.relMs,
        pieces: [],
        total: -1,
        protocol,
        dscp: p.dscp,
        ipVersion: p.ipVersion,
        src: Uint32Array.from(p.src),
        dst: Uint32Array.from(p.dst),
      };
      this.fragments.set(key, d);
    }
    const length = Math.max(0, end - off);
    if (fragOffset + length > 65535) {
      this.fragments.delete(key);
      return;
    }
    if (fragOffset === 0) d.protocol = protocol;
    d.pieces.push({ offset: fragOffset, bytes: b.slice(off, off + length) });
    if (!more) d.total = fragOffset + length;
    if (d.total < 0) return;
    // Complete when the pieces, sorted by offset, cover 0..total without a hole.
    d.pieces.sort((x, y) => x.offset - y.offset);
    let covered = 0;
    for (const piece of d.pieces) {
      if (piece.offset > covered) return;
      covered = Math.max(covered, piece.offset + piece.bytes.length);
    }
    if (covered < d.total) return;
    this.fragments.delete(key);
    const whole = new Uint8Array(d.total);
    for (const piece of d.pieces) whole.set(piece.bytes.subarray(0, d.total - piece.offset), piece.offset);
    this.reassembled++;
    p.ipVersion = d.ipVersion;
    p.dscp = d.dscp;
    p.src.set(d.src);
    p.dst.set(d.dst);
    this.transport(d.protocol, whole, 0, whole.length, 0);
  }

  private expireFragments(): void {
    const now = this.p.relMs;
    for (const [key, d] of this.fragments) {
      if (now - d.firstMs <= FRAGMENT_TIMEOUT_MS) break; // insertion order: the rest are newer
      this.fragments.delete(key);
    }
  }
}
