// Raw IPv4 UDP socket: the only way from Node to set the DSCP of outgoing datagrams (IP_TOS) and to
// read it on incoming ones (a raw socket receives a copy of every UDP datagram, IPv4 header
// included). Needs CAP_NET_RAW. IPv6 raw sockets never deliver the IPv6 header and `raw-socket`
// does not expose IPV6_RECVTCLASS, so DSCP over IPv6 is reported unknown.
import type dgram from 'node:dgram';
import { createRequire } from 'node:module';
import { tosFromDscp } from '../../src/dscp.js';
import { wallNowMs } from './wall-clock.js';

const require = createRequire(import.meta.url);

export interface RawSocketWrap {
  send(buf: Buffer, offset: number, length: number, address: string, cb: (bytes: number) => void): void;
}

export interface RawSocket {
  wrap: RawSocketWrap;
  on(event: 'message', cb: (buf: Buffer, source: string) => void): void;
  on(event: 'error', cb: (err: Error) => void): void;
  setOption(level: number, option: number, value: number): void;
  setOption(level: number, option: number, value: Buffer, length: number): void;
  pauseRecv(): void;
  close(): void;
}

/** The part of `raw-socket` the project uses (it ships no types). */
export interface RawModule {
  createSocket(options: { protocol: number; addressFamily: number; bufferSize?: number }): RawSocket;
  createChecksum(...parts: Array<Buffer | { buffer: Buffer; offset: number; length: number }>): number;
  Protocol: { UDP: number; ICMP: number };
  AddressFamily: { IPv4: number; IPv6: number };
  SocketLevel: { IPPROTO_IP: number; IPPROTO_IPV6: number; SOL_SOCKET: number };
  SocketOption: { IP_TOS: number; IP_TTL: number; IPV6_UNICAST_HOPS: number; SO_RCVBUF: number };
}

export const NEEDS_CAP_NET_RAW =
  'needs CAP_NET_RAW: run as root or `setcap cap_net_raw+ep $(readlink -f $(which node))`';
export const IPV6_DSCP_REASON =
  'DSCP over IPv6 is not readable: IPv6 raw sockets do not deliver the IPv6 header and raw-socket does not expose IPV6_RECVTCLASS';

/** A UDP datagram seen by the raw socket, with the IPv4 header fields that matter here. */
export interface RawDatagram {
  tos: number;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  /** The UDP payload (a view into a buffer reused by the next receive: copy to keep). */
  payload: Buffer;
}

// Dotted-quad strings of the few addresses a process talks to, built once each.
const ipStrings = new Map<number, string>();
function ipString(b: Buffer, at: number): string {
  const key = b.readUInt32BE(at);
  let text = ipStrings.get(key);
  if (text === undefined) {
    text = `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
    if (ipStrings.size > 4096) ipStrings.clear();
    ipStrings.set(key, text);
  }
  return text;
}

/** Parses an IPv4 packet carrying UDP (RFC 791 §3.1, RFC 768); undefined for anything else. */
export function parseIpv4Udp(
  b: Buffer,
  acceptPort: (dstPort: number) => boolean = () => true,
): RawDatagram | undefined {
  if (b.length < 28 || b[0]! >> 4 !== 4) return undefined;
  const ihl = (b[0]! & 0x0f) * 4;
  if (ihl < 20 || b[9] !== 17 || b.length < ihl + 8) return undefined;
  // A raw socket sees every UDP datagram of the host: drop other ports before any allocation.
  if (!acceptPort(b.readUInt16BE(ihl + 2))) return undefined;
  // Only first fragments carry the UDP header; probes are never fragmented.
  if ((b.readUInt16BE(6) & 0x3fff) !== 0) return undefined;
  const udpLength = b.readUInt16BE(ihl + 4);
  if (udpLength < 8 || ihl + udpLength > b.length) return undefined;
  return {
    tos: b[1]!,
    src: ipString(b, 12),
    dst: ipString(b, 16),
    srcPort: b.readUInt16BE(ihl),
    dstPort: b.readUInt16BE(ihl + 2),
    payload: b.subarray(ihl + 8, ihl + udpLength),
  };
}

/** Linux SO_RCVBUFFORCE (asm-generic/socket.h); raw-socket does not export it. */
const SO_RCVBUFFORCE = 33;
const RAW_RECEIVE_BUFFER = 8 * 1024 * 1024;

export interface RawUdp {
  /** Sends payload as a UDP datagram from src:srcPort to dst:dstPort with the given DSCP, now (synchronous). */
  send(src: string, srcPort: number, dst: string, dstPort: number, dscp: number, payload: Buffer): void;
  close(): void;
}

/** RFC 768 pseudo-header (source, destination, zero, protocol; length filled per datagram). */
export function pseudoHeader(src: string, dst: string): Buffer {
  const h = Buffer.alloc(12);
  Buffer.from(`${src}.${dst}`.split('.').map(Number)).copy(h, 0);
  h[9] = 17;
  return h;
}

export interface RawReceiver {
  /** Which destination ports are of interest (checked before anything is allocated). */
  acceptPort(dstPort: number): boolean;
  onDatagram(d: RawDatagram, arrivalMs: number): void;
}

/**
 * Opens a raw IPv4 UDP socket, or returns the reason it cannot (no CAP_NET_RAW, module missing).
 * A receiver, when given, gets a copy of every incoming UDP datagram to the ports it accepts.
 */
export function openRawUdp(receiver?: RawReceiver, now = wallNowMs): RawUdp | string {
  let raw: RawModule;
  try {
    raw = require('raw-socket') as RawModule;
  } catch (err) {
    return `the raw-socket module cannot be loaded (${(err as Error).message.split('\n')[0]})`;
  }
  let sock: RawSocket;
  try {
    sock = raw.createSocket({
      protocol: raw.Protocol.UDP,
      addressFamily: raw.AddressFamily.IPv4,
      bufferSize: 2048,
    });
    // The socket is created lazily; setting an option forces it and reveals EPERM now.
    sock.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_TOS, 0);
  } catch (err) {
    const msg = (err as Error).message;
    return /permit/i.test(msg) ? NEEDS_CAP_NET_RAW : `raw socket unavailable: ${msg}`;
  }
  sock.on('error', () => {
    // A receive error on a copy-only socket loses only marks; the dgram path keeps measuring.
  });
  if (receiver) {
    // A deep queue rides out bursts (floods of junk included): SO_RCVBUFFORCE passes rmem_max
    // with CAP_NET_ADMIN; otherwise SO_RCVBUF gets what the system allows.
    try {
      sock.setOption(raw.SocketLevel.SOL_SOCKET, SO_RCVBUFFORCE, RAW_RECEIVE_BUFFER);
    } catch {
      sock.setOption(raw.SocketLevel.SOL_SOCKET, raw.SocketOption.SO_RCVBUF, RAW_RECEIVE_BUFFER);
    }
    sock.on('message', (buf) => {
      const arrivalMs = now();
      const d = parseIpv4Udp(buf, receiver.acceptPort);
      if (d) receiver.onDatagram(d, arrivalMs);
    });
  } else sock.pauseRecv();
  let currentTos = 0;
  // Sends are synchronous, so one scratch datagram serves them all.
  const scratch = Buffer.alloc(8 + 65507);
  const pseudoHeaders = new Map<string, Buffer>();
  return {
    send(src, srcPort, dst, dstPort, dscp, payload) {
      const tos = tosFromDscp(dscp);
      if (tos !== currentTos) {
        sock.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_TOS, tos);
        currentTos = tos;
      }
      const length = 8 + payload.length;
      scratch.writeUInt16BE(srcPort, 0);
      scratch.writeUInt16BE(dstPort, 2);
      scratch.writeUInt16BE(length, 4);
      scratch.writeUInt16BE(0, 6);
      payload.copy(scratch, 8);
      // RFC 768 checksum over the pseudo-header, header and data; 0 is sent as 0xffff.
      const key = `${src}>${dst}`;
      let pseudo = pseudoHeaders.get(key);
      if (!pseudo) {
        pseudo = pseudoHeader(src, dst);
        if (pseudoHeaders.size > 4096) pseudoHeaders.clear();
        pseudoHeaders.set(key, pseudo);
      }
      pseudo.writeUInt16BE(length, 10);
      const sum = raw.createChecksum(pseudo, { buffer: scratch, offset: 0, length });
      scratch.writeUInt16BE(sum === 0 ? 0xffff : sum, 6);
      sock.wrap.send(scratch, 0, length, dst, () => {});
    },
    close() {
      sock.close();
    },
  };
}

/**
 * Stops Node from reading a dgram socket whose datagrams are all handled from raw-socket copies:
 * the socket stays bound (so the kernel sends no ICMP port unreachable) but costs no CPU; its small
 * queue simply fills. Uses the socket's internal handle; returns false where that is unavailable
 * (the caller then ignores the messages instead).
 */
export function stopReading(sock: dgram.Socket): boolean {
  const state = Object.getOwnPropertySymbols(sock)
    .filter((s) => s.description === 'state symbol')
    .map((s) => (sock as unknown as Record<symbol, { handle?: { recvStop?: () => number } }>)[s])[0];
  if (typeof state?.handle?.recvStop !== 'function') return false;
  state.handle.recvStop();
  try {
    sock.setRecvBufferSize(4096);
  } catch {
    // the queue size is an optimisation only
  }
  return true;
}
