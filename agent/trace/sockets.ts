// The trace's sockets: a raw IPv4 UDP socket that sends each probe with its own TTL (IP_TTL) and
// mark (IP_TOS), a raw ICMP socket that reads the errors quoting it (both need CAP_NET_RAW), and an
// ordinary UDP socket bound to the probes' source port, connected to the peer: it picks the source
// address the route uses and receives the peer's answer when something listens on the port.
import dgram from 'node:dgram';
import { createRequire } from 'node:module';
import { tosFromDscp } from '../../src/dscp.js';
import { NEEDS_CAP_NET_RAW, pseudoHeader, type RawModule, type RawSocket } from '../net/raw-udp.js';

const require = createRequire(import.meta.url);

export interface TraceSockets {
  readonly localAddress: string;
  readonly localPort: number;
  /** Sends one UDP datagram to the peer with this TTL and DSCP; returns its UDP checksum. */
  send(ttl: number, dscp: number, payload: Buffer): number;
  /** Every ICMP packet the host receives (IPv4 header included). */
  onIcmp(cb: (packet: Buffer) => void): void;
  /** A datagram the peer sent back to the probes' port. */
  onPeerReply(cb: () => void): void;
  close(): void;
}

function bindConnected(address: string, port: number): Promise<dgram.Socket | string> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
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

/** Opens the three sockets towards an IPv4 peer, or returns why it cannot (no CAP_NET_RAW first). */
export async function openTraceSockets(address: string, port: number): Promise<TraceSockets | string> {
  let raw: RawModule;
  try {
    raw = require('raw-socket') as RawModule;
  } catch (err) {
    return `the raw-socket module cannot be loaded (${(err as Error).message.split('\n')[0]})`;
  }
  const opened: RawSocket[] = [];
  const closeRaw = () => {
    for (const s of opened.splice(0)) s.close();
  };
  let sender: RawSocket;
  let icmp: RawSocket;
  try {
    sender = raw.createSocket({ protocol: raw.Protocol.UDP, addressFamily: raw.AddressFamily.IPv4 });
    opened.push(sender);
    // Sockets are created lazily; setting an option forces it and reveals EPERM now.
    sender.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_TOS, 0);
    icmp = raw.createSocket({
      protocol: raw.Protocol.ICMP,
      addressFamily: raw.AddressFamily.IPv4,
      bufferSize: 1500,
    });
    opened.push(icmp);
    icmp.setOption(raw.SocketLevel.SOL_SOCKET, raw.SocketOption.SO_RCVBUF, 1024 * 1024);
  } catch (err) {
    closeRaw();
    const msg = (err as Error).message;
    return /permit/i.test(msg) ? NEEDS_CAP_NET_RAW : `raw socket unavailable: ${msg}`;
  }
  // The raw UDP socket would get a copy of every UDP datagram of the host: it only sends.
  sender.pauseRecv();
  sender.on('error', () => {});
  icmp.on('error', () => {});
  const udp = await bindConnected(address, port);
  if (typeof udp === 'string') {
    closeRaw();
    return udp;
  }
  // The kernel reports the peer's Port Unreachable to the connected socket too: not an error here.
  udp.on('error', () => {});
  const local = udp.address();
  const pseudo = pseudoHeader(local.address, address);
  const header = Buffer.alloc(8);
  return {
    localAddress: local.address,
    localPort: local.port,
    send(ttl, dscp, payload) {
      sender.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_TTL, ttl);
      sender.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_TOS, tosFromDscp(dscp));
      const length = 8 + payload.length;
      header.writeUInt16BE(local.port, 0);
      header.writeUInt16BE(port, 2);
      header.writeUInt16BE(length, 4);
      header.writeUInt16BE(0, 6);
      pseudo.writeUInt16BE(length, 10);
      // RFC 768: checksum over pseudo-header, header and data; a computed 0 is sent as 0xffff.
      const sum = raw.createChecksum(pseudo, header, payload) || 0xffff;
      header.writeUInt16BE(sum, 6);
      const datagram = Buffer.concat([header, payload]);
      sender.wrap.send(datagram, 0, datagram.length, address, () => {});
      return sum;
    },
    onIcmp(cb) {
      icmp.on('message', (buf) => cb(buf));
    },
    onPeerReply(cb) {
      udp.on('message', () => cb());
    },
    close() {
      closeRaw();
      udp.close();
    },
  };
}
