// The reflector's socket layer: the media and signalling ports, each datagram handed to the stream
// table with its arrival time and DSCP, and the table's answer sent back from the port it arrived
// on. Two paths: the native addon (kernel receive times and marks, any user, IPv4 and IPv6,
// batched) and Node's dgram with a raw IPv4 socket for marks (CAP_NET_RAW).
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { dscpFromTos, tosFromDscp } from '../../src/dscp.js';
import { UserError } from '../../src/errors.js';
import { type NativeBinding, NativeUdp } from '../net/native-udp.js';
import { IPV6_DSCP_REASON, openRawUdp, type RawUdp, stopReading } from '../net/raw-udp.js';
import type { IoPath } from '../probe/sockets.js';
import type { Answer, Arrival } from './streams.js';

export interface ReflectorSocketsRequest {
  host: string;
  port: number;
  /** Signalling port; default port + 1 (or a free one when port is 0). */
  signallingPort?: number;
  /** Accounts a datagram (valid only during the call) and says what to send back. */
  onArrival: (a: Arrival) => Answer | undefined;
}

export interface ReflectorSockets {
  path: IoPath;
  mediaPort: number;
  signallingPort: number;
  /** Why DSCP on arrival is not read and replies are not marked; undefined when they are. */
  dscpReason?: string;
  /** The clock of the arrival times (reply send instants are taken on it too). */
  now: () => number;
  close(): Promise<void>;
}

function listenError(host: string, port: number, code: string | undefined, message: string): UserError {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (code === 'EADDRINUSE') return new UserError(`cannot listen on ${where}: port already in use`);
  if (code === 'EADDRNOTAVAIL')
    return new UserError(`cannot listen on ${where}: not an address of this host`);
  if (code === 'EACCES') return new UserError(`cannot listen on ${where}: permission denied`);
  return new UserError(`cannot listen on ${where}: ${code ?? message}`);
}

function bindSocket(host: string, port: number): Promise<dgram.Socket> {
  const sock = dgram.createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4' });
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      sock.close();
      reject(listenError(host, port, err.code, err.message));
    };
    sock.once('error', onError);
    sock.bind({ address: host, port, exclusive: true }, () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

/** Node's dgram; a raw IPv4 socket, where one can be opened, reads and sets marks. */
export async function openDgramReflectorSockets(
  req: ReflectorSocketsRequest,
  o: { useRawSocket: boolean; now: () => number },
): Promise<ReflectorSockets> {
  const { host } = req;
  const media = await bindSocket(host, req.port);
  const mediaPort = media.address().port;
  let signalling: dgram.Socket;
  try {
    signalling = await bindSocket(host, req.signallingPort ?? (req.port === 0 ? 0 : mediaPort + 1));
  } catch (err) {
    media.close();
    throw err;
  }
  const signallingPort = signalling.address().port;

  let raw: RawUdp | undefined;
  let dscpReason: string | undefined;
  if (!o.useRawSocket) dscpReason = 'raw sockets disabled';
  else if (isIP(host) === 6) dscpReason = IPV6_DSCP_REASON;
  else {
    const opened = openRawUdp(
      {
        acceptPort: (p) => p === mediaPort || p === signallingPort,
        onDatagram: (d, arrivalMs) => {
          if (host !== '0.0.0.0' && d.dst !== host) return;
          handle(
            {
              msg: d.payload,
              src: d.src,
              srcPort: d.srcPort,
              localPort: d.dstPort,
              arrivalMs,
              dscp: dscpFromTos(d.tos),
              queueDrops: -1,
            },
            d.dst,
          );
        },
      },
      o.now,
    );
    if (typeof opened === 'string') dscpReason = opened;
    else raw = opened;
  }

  function handle(a: Arrival, localIp: string): void {
    const answer = req.onArrival(a);
    if (!answer) return;
    const socket = a.localPort === mediaPort ? media : signalling;
    if (answer.kind === 'summary') {
      socket.send(answer.msg, a.srcPort, a.src, () => {});
      return;
    }
    try {
      if (raw) raw.send(localIp, a.localPort, a.src, a.srcPort, answer.dscp, answer.msg);
      else socket.send(answer.msg, a.srcPort, a.src);
    } catch {
      // An unreachable sender is its own problem; never let it stop the reflector.
    }
  }

  const fromDgram = (localPort: number) => (msg: Buffer, rinfo: dgram.RemoteInfo) => {
    // With a raw socket every datagram is handled from its copy (which carries the TOS byte).
    if (raw) return;
    const arrivalMs = o.now();
    handle(
      { msg, src: rinfo.address, srcPort: rinfo.port, localPort, arrivalMs, dscp: null, queueDrops: -1 },
      host,
    );
  };
  media.on('message', fromDgram(mediaPort));
  signalling.on('message', fromDgram(signallingPort));
  if (raw) {
    stopReading(media);
    stopReading(signalling);
  }
  // ICMP errors for replies to vanished senders surface here on some systems; they are not ours.
  media.on('error', () => {});
  signalling.on('error', () => {});
  return {
    path: 'dgram',
    mediaPort,
    signallingPort,
    ...(dscpReason ? { dscpReason } : {}),
    now: o.now,
    async close() {
      raw?.close();
      await Promise.all([
        new Promise<void>((r) => media.close(() => r())),
        new Promise<void>((r) => signalling.close(() => r())),
      ]);
    },
  };
}

/**
 * The native addon's sockets: each batch of arrivals is answered with one batch of sends, every
 * reply marked as its probe asked. Only datagrams to the two ports reach JavaScript.
 */
export function openNativeReflectorSockets(
  req: ReflectorSocketsRequest,
  binding: NativeBinding,
): ReflectorSockets {
  const { host } = req;
  const family = isIP(host) as 4 | 6;
  // One arrival record, rewritten for each datagram (the stream table keeps nothing of it).
  const a: Arrival = {
    msg: Buffer.alloc(0),
    src: '',
    srcPort: 0,
    localPort: 0,
    arrivalMs: 0,
    dscp: null,
    queueDrops: -1,
  };
  const portOf: number[] = [];
  const udp = new NativeUdp(binding, (count) => {
    for (let k = 0; k < count; k++) {
      const id = udp.rxSocket(k);
      const tos = udp.rxTos(k);
      a.msg = udp.rxPayload(k);
      a.src = udp.rxAddress(k, family);
      a.srcPort = udp.rxPort(k);
      a.localPort = portOf[id]!;
      a.arrivalMs = udp.rxArrivalMs(k);
      a.dscp = tos < 0 ? null : dscpFromTos(tos);
      a.queueDrops = udp.rxDrops(k);
      const answer = req.onArrival(a);
      if (!answer) continue;
      answer.msg.copy(udp.txBuffer());
      udp.queue(id, answer.msg.length, answer.kind === 'reply' ? tosFromDscp(answer.dscp) : -1, k);
    }
  });
  const open = (port: number) => {
    try {
      const id = udp.open(family, host, port);
      portOf[id] = udp.localPort(id);
      return id;
    } catch (err) {
      throw listenError(host, port, (err as NodeJS.ErrnoException).code, (err as Error).message);
    }
  };
  const media = open(req.port);
  let signalling: number;
  try {
    signalling = open(req.signallingPort ?? (req.port === 0 ? 0 : portOf[media]! + 1));
  } catch (err) {
    udp.close(media);
    throw err;
  }
  return {
    path: 'native',
    mediaPort: portOf[media]!,
    signallingPort: portOf[signalling]!,
    now: udp.now,
    async close() {
      udp.close(media);
      udp.close(signalling);
    },
  };
}
