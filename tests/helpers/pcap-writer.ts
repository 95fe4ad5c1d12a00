// A small pcap/pcapng writer and packet builder for tests: captures whose ground truth the test
// knows (loss, reorder, duplicates, jitter, DSCP, odd link types, fragments, SIP over TCP).
import { writeRtpHeader } from '../../src/rtp.js';

export interface Frame {
  /** Seconds since the epoch (fractional). */
  time: number;
  bytes: Uint8Array;
  /** pcapng only: interface index. */
  iface?: number;
}

export function ipv4Bytes(address: string): number[] {
  return address.split('.').map(Number);
}

export function ipv6Bytes(address: string): number[] {
  const [head = '', tail = ''] = address.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.flatMap((g) => {
    const v = Number.parseInt(g, 16);
    return [v >> 8, v & 255];
  });
}

function checksumless16(buf: Buffer, offset: number, value: number): void {
  buf.writeUInt16BE(value & 0xffff, offset);
}

export interface Endpoints {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  dscp?: number;
}

/** A UDP datagram inside IPv4 or IPv6 (by address form). Checksums are left 0 (allowed for UDP/IPv4). */
export function udpPacket(e: Endpoints, payload: Uint8Array): Uint8Array {
  const udp = Buffer.alloc(8 + payload.length);
  udp.writeUInt16BE(e.srcPort, 0);
  udp.writeUInt16BE(e.dstPort, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  udp.set(payload, 8);
  return ipPacket(e, 17, udp);
}

/** A TCP segment (ACK|PSH, or given flags) inside IPv4/IPv6. */
export function tcpPacket(e: Endpoints, seq: number, payload: Uint8Array, flags = 0x18): Uint8Array {
  const tcp = Buffer.alloc(20 + payload.length);
  tcp.writeUInt16BE(e.srcPort, 0);
  tcp.writeUInt16BE(e.dstPort, 2);
  tcp.writeUInt32BE(seq >>> 0, 4);
  tcp[12] = 5 << 4;
  tcp[13] = flags;
  tcp.writeUInt16BE(65535, 14);
  tcp.set(payload, 20);
  return ipPacket(e, 6, tcp);
}

export function ipPacket(e: Endpoints, protocol: number, transport: Uint8Array, id = 1): Uint8Array {
  const tos = (e.dscp ?? 0) << 2;
  if (e.src.includes(':')) {
    const ip = Buffer.alloc(40 + transport.length);
    ip[0] = 0x60 | (tos >> 4);
    ip[1] = (tos & 0x0f) << 4;
    ip.writeUInt16BE(transport.length, 4);
    ip[6] = protocol;
    ip[7] = 64;
    ip.set(ipv6Bytes(e.src), 8);
    ip.set(ipv6Bytes(e.dst), 24);
    ip.set(transport, 40);
    return ip;
  }
  const ip = Buffer.alloc(20 + transport.length);
  ip[0] = 0x45;
  ip[1] = tos;
  checksumless16(ip, 2, 20 + transport.length);
  ip.writeUInt16BE(id & 0xffff, 4);
  ip[8] = 64;
  ip[9] = protocol;
  ip.set(ipv4Bytes(e.src), 12);
  ip.set(ipv4Bytes(e.dst), 16);
  ip.set(transport, 20);
  return ip;
}

/** Splits an IPv4 packet into fragments of at most `size` payload bytes (a multiple of 8). */
export function fragmentIpv4(packet: Uint8Array, size: number): Uint8Array[] {
  const header = packet.subarray(0, 20);
  const payload = packet.subarray(20);
  const out: Uint8Array[] = [];
  for (let off = 0; off < payload.length; off += size) {
    const piece = payload.subarray(off, off + size);
    const frag = Buffer.alloc(20 + piece.length);
    frag.set(header);
    frag.writeUInt16BE(20 + piece.length, 2);
    const more = off + size < payload.length ? 0x2000 : 0;
    frag.writeUInt16BE(more | (off / 8), 6);
    frag.set(piece, 20);
    out.push(frag);
  }
  return out;
}

/** Splits an IPv6 packet (no extension headers) into fragments with a Fragment header. */
export function fragmentIpv6(packet: Uint8Array, size: number, id: number): Uint8Array[] {
  const header = Buffer.from(packet.subarray(0, 40));
  const next = header[6]!;
  const payload = packet.subarray(40);
  const out: Uint8Array[] = [];
  for (let off = 0; off < payload.length; off += size) {
    const piece = payload.subarray(off, off + size);
    const frag = Buffer.alloc(48 + piece.length);
    frag.set(header);
    frag[6] = 44;
    frag.writeUInt16BE(8 + piece.length, 4);
    frag[40] = next;
    frag.writeUInt16BE(off | (off + size < payload.length ? 1 : 0), 42);
    frag.writeUInt32BE(id, 44);
    frag.set(piece, 48);
    out.push(frag);
  }
  return out;
}

/** Wraps an IP packet for a link type: Ethernet (optionally VLAN-tagged), SLL, SLL2, NULL, raw. */
export function frameFor(linkType: number, ip: Uint8Array, vlans: number[] = []): Uint8Array {
  const etherType = ip[0]! >> 4 === 6 ? 0x86dd : 0x0800;
  switch (linkType) {
    case 1: {
      const head = Buffer.alloc(14 + 4 * vlans.length);
      head.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
      let o = 12;
      for (const [i, vid] of vlans.entries()) {
        head.writeUInt16BE(i === 0 && vlans.length > 1 ? 0x88a8 : 0x8100, o);
        head.writeUInt16BE(vid, o + 2);
        o += 4;
      }
      head.writeUInt16BE(etherType, o);
      return Buffer.concat([head, ip]);
    }
    case 113: {
      const head = Buffer.alloc(16);
      head.writeUInt16BE(0, 0);
      head.writeUInt16BE(1, 2);
      head.writeUInt16BE(6, 4);
      head.writeUInt16BE(etherType, 14);
      return Buffer.concat([head, ip]);
    }
    case 276: {
      const head = Buffer.alloc(20);
      head.writeUInt16BE(etherType, 0);
      head.writeUInt16BE(1, 8);
      head[11] = 6;
      return Buffer.concat([head, ip]);
    }
    case 0: {
      const head = Buffer.alloc(4);
      head.writeUInt32LE(etherType === 0x86dd ? 30 : 2, 0);
      return Buffer.concat([head, ip]);
    }
    case 101:
      return ip;
    default:
      throw new Error(`frameFor: link type ${linkType} not supported by the test writer`);
  }
}

export interface PcapOptions {
  linkType?: number;
  nanoseconds?: boolean;
  bigEndian?: boolean;
  snapLen?: number;
}

/** Classic pcap (µs or ns magic, either byte order). */
export function writePcap(frames: Frame[], o: PcapOptions = {}): Buffer {
  const le = !o.bigEndian;
  const w32 = (b: Buffer, v: number, at: number) =>
    le ? b.writeUInt32LE(v >>> 0, at) : b.writeUInt32BE(v >>> 0, at);
  const w16 = (b: Buffer, v: number, at: number) => (le ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at));
  const head = Buffer.alloc(24);
  w32(head, o.nanoseconds ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  w16(head, 2, 4);
  w16(head, 4, 6);
  w32(head, o.snapLen ?? 262144, 16);
  w32(head, o.linkType ?? 1, 20);
  const parts: Buffer[] = [head];
  for (const f of frames) {
    const rec = Buffer.alloc(16);
    const sec = Math.floor(f.time);
    const frac = Math.round((f.time - sec) * (o.nanoseconds ? 1e9 : 1e6));
    w32(rec, sec, 0);
    w32(rec, frac, 4);
    w32(rec, f.bytes.length, 8);
    w32(rec, f.bytes.length, 12);
    parts.push(rec, Buffer.from(f.bytes));
  }
  return Buffer.concat(parts);
}

export interface PcapngInterface {
  linkType: number;
  /** if_tsresol byte: 6 = µs (default), 9 = ns, 0x80|n = 2^-n. */
  tsresol?: number;
}

const w32 = (b: Buffer, v: number, at: number, be: boolean) =>
  be ? b.writeUInt32BE(v >>> 0, at) : b.writeUInt32LE(v >>> 0, at);
const w16 = (b: Buffer, v: number, at: number, be: boolean) =>
  be ? b.writeUInt16BE(v, at) : b.writeUInt16LE(v, at);

function block(type: number, body: Buffer, be: boolean): Buffer {
  const padded = Buffer.alloc((body.length + 3) & ~3);
  body.copy(padded);
  const b = Buffer.alloc(12 + padded.length);
  w32(b, type, 0, be);
  w32(b, b.length, 4, be);
  padded.copy(b, 8);
  w32(b, b.length, b.length - 4, be);
  return b;
}

export interface PcapngExtra {
  /** Write packets as Simple Packet Blocks (no timestamp, interface 0). */
  simple?: boolean;
  /** Add blocks of unknown types, which a reader must skip by their length. */
  unknownBlocks?: boolean;
  bigEndian?: boolean;
  /** if_tsoffset on every interface: seconds the packets' own timestamps leave out. */
  tsOffsetS?: number;
}

/** pcapng in either byte order: SHB, one IDB per interface, EPBs (or SPBs), optional unknown blocks. */
export function writePcapng(
  frames: Frame[],
  interfaces: PcapngInterface[] = [{ linkType: 1 }],
  extra: PcapngExtra = {},
): Buffer {
  const be = extra.bigEndian ?? false;
  const offset = extra.tsOffsetS ?? 0;
  const shbBody = Buffer.alloc(16, 0xff); // section length -1: unknown
  w32(shbBody, 0x1a2b3c4d, 0, be);
  w16(shbBody, 1, 4, be);
  w16(shbBody, 0, 6, be);
  const parts: Buffer[] = [block(0x0a0d0d0a, shbBody, be)];
  for (const i of interfaces) {
    const opts: Buffer[] = [];
    if (i.tsresol !== undefined) {
      const opt = Buffer.alloc(8);
      w16(opt, 9, 0, be);
      w16(opt, 1, 2, be);
      opt[4] = i.tsresol;
      opts.push(opt);
    }
    if (offset !== 0) {
      const opt = Buffer.alloc(12);
      w16(opt, 14, 0, be);
      w16(opt, 8, 2, be);
      if (be) opt.writeBigUInt64BE(BigInt(offset), 4);
      else opt.writeBigUInt64LE(BigInt(offset), 4);
      opts.push(opt);
    }
    if (opts.length) opts.push(Buffer.alloc(4)); // opt_endofopt
    const head = Buffer.alloc(8);
    w16(head, i.linkType, 0, be);
    w32(head, 262144, 4, be);
    parts.push(block(1, Buffer.concat([head, ...opts]), be));
  }
  if (extra.unknownBlocks) parts.push(block(0x0badcafe, Buffer.from('ignore me, I am an unknown block'), be));
  for (const f of frames) {
    if (extra.simple) {
      const head = Buffer.alloc(4);
      w32(head, f.bytes.length, 0, be);
      parts.push(block(3, Buffer.concat([head, Buffer.from(f.bytes)]), be));
      continue;
    }
    const iface = interfaces[f.iface ?? 0]!;
    const r = iface.tsresol ?? 6;
    const unitsPerSecond = r & 0x80 ? 2 ** (r & 0x7f) : 10 ** r;
    const whole = Math.floor(f.time);
    const units =
      BigInt(whole - offset) * BigInt(unitsPerSecond) + BigInt(Math.round((f.time - whole) * unitsPerSecond));
    const head = Buffer.alloc(20);
    w32(head, f.iface ?? 0, 0, be);
    w32(head, Number(units >> 32n), 4, be);
    w32(head, Number(units & 0xffffffffn), 8, be);
    w32(head, f.bytes.length, 12, be);
    w32(head, f.bytes.length, 16, be);
    parts.push(block(6, Buffer.concat([head, Buffer.from(f.bytes)]), be));
    if (extra.unknownBlocks) parts.push(block(0x80000001, Buffer.alloc(5, 0x42), be));
  }
  return Buffer.concat(parts);
}

export interface RtpSpec {
  ssrc: number;
  payloadType: number;
  /** Clock units per packet (160 for 20 ms G.711). */
  timestampStep: number;
  sequenceStart?: number;
  timestampStart?: number;
  payloadBytes?: number;
  marker?: boolean;
}

/** One RTP packet of a stream: the nth packet's sequence number and timestamp follow the spec. */
export function rtpPacket(spec: RtpSpec, n: number, marker = false): Uint8Array {
  const buf = Buffer.alloc(12 + (spec.payloadBytes ?? 160), 0xd5);
  writeRtpHeader(buf, {
    marker,
    payloadType: spec.payloadType,
    sequence: ((spec.sequenceStart ?? 1000) + n) & 0xffff,
    timestamp: ((spec.timestampStart ?? 50_000) + n * spec.timestampStep) >>> 0,
    ssrc: spec.ssrc,
  });
  return buf;
}

export function sipInvite(o: {
  callId: string;
  from: string;
  to: string;
  mediaAddress: string;
  mediaPort: number;
  payloadTypes: number[];
  rtpmap?: string[];
  media?: 'audio' | 'video';
  response?: number;
}): Buffer {
  const ipv = o.mediaAddress.includes(':') ? 'IP6' : 'IP4';
  const sdp = [
    'v=0',
    `o=- 1 1 IN ${ipv} ${o.mediaAddress}`,
    's=-',
    `c=IN ${ipv} ${o.mediaAddress}`,
    't=0 0',
    `m=${o.media ?? 'audio'} ${o.mediaPort} RTP/AVP ${o.payloadTypes.join(' ')}`,
    ...(o.rtpmap ?? []).map((r) => `a=rtpmap:${r}`),
    '',
  ].join('\r\n');
  const start = o.response ? `SIP/2.0 ${o.response} OK` : `INVITE ${o.to} SIP/2.0`;
  const head = [
    start,
    'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1',
    `f: <${o.from}>;tag=1`,
    `To: <${o.to}>${o.response ? ';tag=2' : ''}`,
    `i: ${o.callId}`,
    'CSeq: 1 INVITE',
    'Content-Type: application/sdp',
    `Content-Length: ${Buffer.byteLength(sdp)}`,
    '',
    '',
  ].join('\r\n');
  return Buffer.from(head + sdp, 'latin1');
}

export function sipRequest(method: string, callId: string): Buffer {
  return Buffer.from(
    `${method} sip:b@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK2\r\nFrom: <sip:a@example.net>;tag=1\r\nTo: <sip:b@example.net>;tag=2\r\nCall-ID: ${callId}\r\nCSeq: 2 ${method}\r\nContent-Length: 0\r\n\r\n`,
    'latin1',
  );
}
