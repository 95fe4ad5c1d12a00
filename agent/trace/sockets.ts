// The trace's sockets: a raw UDP socket that sends each probe with its own TTL / Hop Limit and mark
// (IP_TTL and IP_TOS; IPv6: IPV6_UNICAST_HOPS and IPV6_TCLASS), a raw ICMP (ICMPv6) socket that reads
// the errors quoting it (both need CAP_NET_RAW), and an ordinary UDP socket bound to the probes'
// source port, connected to the peer: it picks the source address the route uses and receives the
// peer's answer when something listens on the port (a voipready reflector).
import dgram from 'node:dgram';
import { createRequire } from 'node:module';
import { isIPv6 } from 'node:net';
import { tosFromDscp } from '../../src/dscp.js';
import { NEEDS_CAP_NET_RAW, pseudoHeader, type RawModule, type RawSocket } from '../net/raw-udp.js';
import {
  canonicalIp6,
  ICMP6_DEST_UNREACHABLE,
  ICMP6_TIME_EXCEEDED,
  type IcmpQuote,
  parseIcmp6Quote,
  parseIcmpQuote,
} from './icmp.js';

const require = createRequire(import.meta.url);

// Linux constants raw-socket does not export (linux/in6.h, linux/icmpv6.h).
const IPV6_TCLASS = 67;
const IPPROTO_ICMPV6 = 58;
const ICMP6_FILTER = 1;
const UDP = 17;

export interface TraceSockets {
  readonly localAddress: string;
  readonly localPort: number;
  /** Sends one UDP datagram to the peer with this TTL (Hop Limit) and DSCP; returns its UDP checksum. */
  send(ttl: number, dscp: number, payload: Buffer): number;
  /** Every ICMP error about a UDP datagram the host receives, parsed (other ICMP never gets here). */
  onQuote(cb: (quote: IcmpQuote) => void): void;
  /** A datagram the peer sent back to the probes' port. */
  onPeerReply(cb: (msg: Buffer) => void): void;
  close(): void;
}

function bindConnected(address: string, port: number): Promise<dgram.Socket | string> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(isIPv6(address) ? 'udp6' : 'udp4');
    const fail = (err: Error) => {
      sock.close();
      resolve(`cannot open a UDP socket towards ${address}:${port}: ${err.message}`);
    };
    sock.once('error', fail);
    sock.bind(0, () =>
      sock.connect(port, address, () => {
        sock.off('error', fail);
        resolve(sock);
      }),
    );
  });
}

/** RFC 8200 §8.1 pseudo-header: source, destination, upper-layer length (filled per datagram), next header. */
function pseudoHeader6(src: string, dst: string): Buffer {
  const h = Buffer.alloc(40);
  writeIp6(h, 0, src);
  writeIp6(h, 16, dst);
  h[39] = UDP;
  return h;
}

/** Writes an IPv6 address (any valid text form) as 16 bytes. */
function writeIp6(b: Buffer, at: number, text: string): void {
  const [head, tail] = canonicalIp6(text).split('::') as [string, string | undefined];
  const groups = (s: string | undefined) => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : []);
  const front = groups(head);
  const back = groups(tail);
  const all = [...front, ...Array<number>(8 - front.length - back.length).fill(0), ...back];
  for (const [i, g] of all.entries()) b.writeUInt16BE(g, at + 2 * i);
}

/** Blocks every ICMPv6 type but the two errors a trace reads (RFC 3542 §3.2: a set bit blocks). */
function icmp6Filter(): Buffer {
  const f = Buffer.alloc(32, 0xff);
  f.writeUInt32LE(~((1 << ICMP6_DEST_UNREACHABLE) | (1 << ICMP6_TIME_EXCEEDED)) >>> 0, 0);
  return f;
}

interface Family {
  v6: boolean;
  level: number;
  hops: number;
  tclass: number;
}

/** Opens the raw sender and ICMP reader, or returns why it cannot (no CAP_NET_RAW first). */
function openRaw(raw: RawModule, f: Family): { sender: RawSocket; icmp: RawSocket } | string {
  const opened: RawSocket[] = [];
  try {
    const addressFamily = f.v6 ? raw.AddressFamily.IPv6 : raw.AddressFamily.IPv4;
    const sender = raw.createSocket({ protocol: raw.Protocol.UDP, addressFamily });
    opened.push(sender);
    // Sockets are created lazily; setting an option forces it and reveals EPERM now.
    sender.setOption(f.level, f.tclass, 0);
    const icmp = raw.createSocket({
      protocol: f.v6 ? IPPROTO_ICMPV6 : raw.Protocol.ICMP,
      addressFamily,
      bufferSize: 1500,
    });
    opened.push(icmp);
    icmp.setOption(raw.SocketLevel.SOL_SOCKET, raw.SocketOption.SO_RCVBUF, 1024 * 1024);
    // An ICMPv6 flood of other types (echo, neighbour discovery) never reaches JavaScript.
    if (f.v6) icmp.setOption(IPPROTO_ICMPV6, ICMP6_FILTER, icmp6Filter(), 32);
    return { sender, icmp };
  } catch (err) {
    for (const s of opened) s.close();
    const msg = (err as Error).message;
    return /permit/i.test(msg) ? NEEDS_CAP_NET_RAW : `raw socket unavailable: ${msg}`;
  }
}

/** Opens the three sockets towards the peer (IPv4 or IPv6), or returns why it cannot. */
export async function openTraceSockets(address: string, port: number): Promise<TraceSockets | string> {
  let raw: RawModule;
  try {
    raw = require('raw-socket') as RawModule;
  } catch (err) {
    return `the raw-socket module cannot be loaded (${(err as Error).message.split('\n')[0]})`;
  }
  const v6 = isIPv6(address);
  const f: Family = v6
    ? {
        v6,
        level: raw.SocketLevel.IPPROTO_IPV6,
        hops: raw.SocketOption.IPV6_UNICAST_HOPS,
        tclass: IPV6_TCLASS,
      }
    : {
        v6,
        level: raw.SocketLevel.IPPROTO_IP,
        hops: raw.SocketOption.IP_TTL,
        tclass: raw.SocketOption.IP_TOS,
      };
  const opened = openRaw(raw, f);
  if (typeof opened === 'string') return opened;
  const { sender, icmp } = opened;
  // The raw UDP socket would get a copy of every UDP datagram of the host: it only sends.
  sender.pauseRecv();
  sender.on('error', () => {});
  icmp.on('error', () => {});
  const udp = await bindConnected(address, port);
  if (typeof udp === 'string') {
    sender.close();
    icmp.close();
    return udp;
  }
  // The kernel reports the peer's Port Unreachable to the connected socket too: not an error here.
  udp.on('error', () => {});
  const local = udp.address();
  const pseudo = v6 ? pseudoHeader6(local.address, address) : pseudoHeader(local.address, address);
  const header = Buffer.alloc(8);
  return {
    localAddress: v6 ? canonicalIp6(local.address) : local.address,
    localPort: local.port,
    send(ttl, dscp, payload) {
      sender.setOption(f.level, f.hops, ttl);
      sender.setOption(f.level, f.tclass, tosFromDscp(dscp));
      const length = 8 + payload.length;
      header.writeUInt16BE(local.port, 0);
      header.writeUInt16BE(port, 2);
      header.writeUInt16BE(length, 4);
      header.writeUInt16BE(0, 6);
      if (v6) pseudo.writeUInt32BE(length, 32);
      else pseudo.writeUInt16BE(length, 10);
      // RFC 768 (RFC 8200 §8.1 for IPv6): checksum over pseudo-header, header and data; a computed 0 is sent as 0xffff.
      const sum = raw.createChecksum(pseudo, header, payload) || 0xffff;
      header.writeUInt16BE(sum, 6);
      const datagram = Buffer.concat([header, payload]);
      sender.wrap.send(datagram, 0, datagram.length, address, () => {});
      return sum;
    },
    onQuote(cb) {
      icmp.on('message', (buf, source) => {
        const quote = v6 ? parseIcmp6Quote(buf, source) : parseIcmpQuote(buf);
        if (quote) cb(quote);
      });
    },
    onPeerReply(cb) {
      udp.on('message', (msg) => cb(msg));
    },
    close() {
      sender.close();
      icmp.close();
      udp.close();
    },
  };
}
