// The probe's socket layer: one connected UDP socket per stream (its own even port, RFC 3550 §11),
// the packets it sends and the replies it receives. The measuring logic (agent/probe.ts) sees only
// this interface, so the path that carries the packets can change without touching it.
import dgram from 'node:dgram';
import { dscpFromTos, tosFromDscp } from '../../src/dscp.js';
import { UserError } from '../../src/errors.js';
import { type NativeBinding, NativeUdp, type SenderScheduling } from '../net/native-udp.js';
import { IPV6_DSCP_REASON, openRawUdp, type RawUdp, stopReading } from '../net/raw-udp.js';

/** Which socket layer measured: the native addon (kernel stamps and marks) or Node's dgram (+ raw socket). */
export type IoPath = 'native' | 'dgram';

/**
 * A reply (or summary response) from the peer for stream `index`: a view valid only during the
 * call, its arrival time on the layer's clock, its DSCP (null: not readable).
 */
export type OnDatagram = (index: number, msg: Buffer, arrivalMs: number, dscp: number | null) => void;

export interface StreamEndpoint {
  /** The reflector's port this stream talks to. */
  remotePort: number;
  /** Largest packet the stream sends. */
  packetBytes: number;
}

/** A scheduled packet of stream `index` has left (sentMs, or -1: the kernel refused it), due at dueMs. */
export type OnSent = (index: number, tag: number, dueMs: number, sentMs: number) => void;

export interface ProbeSocketsRequest {
  family: 4 | 6;
  peerIp: string;
  endpoints: StreamEndpoint[];
  portRange: [number, number];
  onDatagram: OnDatagram;
  /** Scheduled sends only; called for each before any reply that arrives after it is handled. */
  onSent: OnSent;
}

/**
 * Sends at due times from the native addon's sender thread: the caller encodes packets ahead of
 * time (with their due time as their send time) and learns when each actually left through onSent.
 */
export interface SendScheduler {
  /** How the sender thread is scheduled. */
  scheduling: SenderScheduling;
  /** Whether `count` more packets of up to `bytes` each can be scheduled now. */
  fits(count: number, bytes: number): boolean;
  /** Scheduled and not yet reported through onSent. */
  pending(): number;
  /** The buffer to encode the next scheduled packet into (valid until `schedule`). */
  buffer(): Buffer;
  /**
   * Schedules the packet encoded in buffer() for stream i (in due order; after `fits` said so);
   * `tag` comes back in onSent.
   */
  schedule(i: number, bytes: number, dscp: number, dueMs: number, tag: number): void;
  /** Hands what was scheduled to the sender. */
  commit(): void;
  /** Calls onSent for what has left since the last call. */
  collect(): void;
}

export interface ProbeSockets {
  path: IoPath;
  /** Why the agent cannot mark its packets and read marks on arrival; undefined when it can. */
  dscpReason?: string;
  localPorts: number[];
  /** The clock arrival times are stamped with. */
  now(): number;
  /** Present when packets are sent at their due time by the socket layer (else the caller's timer sends). */
  scheduler?: SendScheduler;
  /** The buffer to encode stream i's next packet into (valid until `send` or `flush`). */
  buffer(i: number): Buffer;
  /** Sends the packet encoded in buffer(i) (`bytes` long) with the given DSCP, now or at `flush`. */
  send(i: number, bytes: number, dscp: number): void;
  /** Sends whatever `send` queued. */
  flush(): void;
  /**
   * Datagrams the kernel dropped because a socket's receive queue was full (SO_RXQ_OVFL), summed
   * over the streams' sockets, as far as arrivals after the drops told; null when it cannot say.
   */
  queueDrops(): number | null;
  /** Sends a control message (a summary request) on stream i's socket, unmarked. */
  sendControl(i: number, msg: Buffer): void;
  close(): void;
}

function bindEven(family: 4 | 6, range: [number, number]): Promise<dgram.Socket> {
  const [lo, hi] = range;
  const attempt = (tries: number): Promise<dgram.Socket> =>
    new Promise((resolve, reject) => {
      const port = lo + 2 * Math.floor((Math.random() * (hi - lo)) / 2);
      const sock = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
      sock.once('error', (err: NodeJS.ErrnoException) => {
        sock.close();
        if (err.code === 'EADDRINUSE' && tries > 1) resolve(attempt(tries - 1));
        else reject(new UserError(`cannot bind a local UDP port: ${err.code ?? err.message}`));
      });
      sock.bind({ port, exclusive: true }, () => {
        sock.removeAllListeners('error');
        resolve(sock);
      });
    });
  return attempt(200);
}

function connect(sock: dgram.Socket, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    sock.connect(port, host, (err?: Error) => (err ? reject(err) : resolve()));
  });
}

/**
 * Node's dgram, with a raw IPv4 socket (CAP_NET_RAW) to mark packets and read marks when one can be
 * opened: arrival times are taken in JavaScript.
 */
export async function openDgramProbeSockets(
  req: ProbeSocketsRequest,
  o: { useRawSocket: boolean; now: () => number },
): Promise<ProbeSockets> {
  const sockets: dgram.Socket[] = [];
  let raw: RawUdp | undefined;
  const close = () => {
    raw?.close();
    for (const s of sockets) s.close();
  };
  try {
    for (const [index, e] of req.endpoints.entries()) {
      const socket = await bindEven(req.family, req.portRange);
      sockets.push(socket);
      socket.on('error', () => {
        // ICMP port/host unreachable on a connected socket: the loss shows in the counts.
      });
      try {
        await connect(socket, e.remotePort, req.peerIp);
      } catch {
        // No route: sends will fail and count as lost.
      }
      socket.on('message', (msg) => {
        if (!raw) req.onDatagram(index, msg, o.now(), null);
      });
    }
  } catch (err) {
    close();
    throw err;
  }
  const localPorts = sockets.map((s) => s.address().port);
  let dscpReason: string | undefined;
  if (!o.useRawSocket) dscpReason = 'raw sockets disabled';
  else if (req.family === 6) dscpReason = IPV6_DSCP_REASON;
  else {
    const byPort = new Map(localPorts.map((p, i) => [p, i]));
    const opened = openRawUdp(
      {
        acceptPort: (p) => byPort.has(p),
        onDatagram: (dg, arrivalMs) => {
          const i = byPort.get(dg.dstPort)!;
          if (dg.src !== req.peerIp || dg.srcPort !== req.endpoints[i]!.remotePort) return;
          req.onDatagram(i, dg.payload, arrivalMs, dscpFromTos(dg.tos));
        },
      },
      o.now,
    );
    if (typeof opened === 'string') dscpReason = opened;
    else {
      raw = opened;
      for (const s of sockets) stopReading(s);
    }
  }
  let localIp = '0.0.0.0';
  try {
    localIp = sockets[0]!.address().address;
  } catch {
    // unconnected: raw sends will use the kernel's choice and a checksum that may not match
  }
  // A raw send is a synchronous copy, so each stream's buffer is reused; dgram may queue it.
  const rawBuffers = req.endpoints.map((e) => Buffer.alloc(e.packetBytes));
  let current: Buffer[] = [];
  return {
    path: 'dgram',
    ...(dscpReason ? { dscpReason } : {}),
    localPorts,
    now: o.now,
    buffer(i) {
      const b = raw ? rawBuffers[i]! : Buffer.allocUnsafe(req.endpoints[i]!.packetBytes);
      current[i] = b;
      return b;
    },
    send(i, bytes, dscp) {
      const buf = current[i]!;
      try {
        if (raw)
          raw.send(
            localIp,
            localPorts[i]!,
            req.peerIp,
            req.endpoints[i]!.remotePort,
            dscp,
            buf.subarray(0, bytes),
          );
        else sockets[i]!.send(buf, 0, bytes, () => {});
      } catch {
        // Refused by the local stack (no route, firewall): the packet is sent and lost.
      }
    },
    flush() {
      current = [];
    },
    queueDrops: () => null,
    sendControl(i, msg) {
      try {
        sockets[i]!.send(msg, () => {});
      } catch {
        // Not connected (no route to the peer): the summary stays missing.
      }
    },
    close,
  };
}

/**
 * The native addon's sockets (agent/net/native-udp.ts): every packet marked with its DSCP and every
 * reply's class and kernel receive time read, as any user, IPv4 and IPv6. Media and signalling
 * packets are scheduled ahead and sent at their due time by the addon's sender thread (at most
 * `ring.packets` packets, `ring.bytes` bytes, in flight).
 */
export function openNativeProbeSockets(
  req: ProbeSocketsRequest,
  binding: NativeBinding,
  ring: { packets: number; bytes: number },
): ProbeSockets {
  const ringSlots = ring.packets;
  const scratch = Buffer.alloc(Math.max(...req.endpoints.map((e) => e.packetBytes)));
  const streamOf = new Map<number, number>();
  // Per ring slot: the stream and the caller's tag of the packet in it.
  const slotStream = new Int32Array(ringSlots);
  const slotTag = new Float64Array(ringSlots);
  const onSent = (slot: number, dueMs: number, sentMs: number) =>
    req.onSent(slotStream[slot]!, slotTag[slot]!, dueMs, sentMs);
  const collect = () => {
    udp.collectSent(onSent);
  };
  const drops = new Float64Array(req.endpoints.length).fill(-1);
  const udp = new NativeUdp(binding, (count) => {
    collect(); // a reply's send time is known before the reply is handled
    for (let k = 0; k < count; k++) {
      const i = streamOf.get(udp.rxSocket(k))!;
      drops[i] = Math.max(drops[i]!, udp.rxDrops(k));
      const tos = udp.rxTos(k);
      req.onDatagram(i, udp.rxPayload(k), udp.rxArrivalMs(k), tos < 0 ? null : dscpFromTos(tos));
    }
  });
  const ids: number[] = [];
  const close = () => {
    udp.stopSender();
    for (const id of ids) udp.close(id);
  };
  const [lo, hi] = req.portRange;
  let scheduling: SenderScheduling = 'fair';
  try {
    for (const [index, e] of req.endpoints.entries()) {
      let id: number | undefined;
      for (let tries = 200; id === undefined; tries--) {
        const port = lo + 2 * Math.floor((Math.random() * (hi - lo)) / 2);
        try {
          id = udp.open(req.family, req.family === 6 ? '::' : '0.0.0.0', port);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'EADDRINUSE' || tries <= 1) {
            throw new UserError(`cannot bind a local UDP port: ${code ?? (err as Error).message}`);
          }
        }
      }
      ids.push(id);
      streamOf.set(id, index);
      try {
        udp.connect(id, req.peerIp, e.remotePort);
      } catch {
        // No route: sends will fail and count as lost.
      }
    }
    scheduling = udp.startSender(ring.packets, ring.bytes);
  } catch (err) {
    close();
    throw err;
  }
  return {
    path: 'native',
    scheduler: {
      scheduling,
      fits: (count, bytes) => udp.scheduleFits(count, bytes),
      pending: () => udp.schedulePending(),
      buffer: () => scratch,
      schedule(i, bytes, dscp, dueMs, tag) {
        const slot = udp.schedule(ids[i]!, scratch, bytes, tosFromDscp(dscp), dueMs);
        if (slot < 0) throw new Error('scheduled past the ring (fits() first)');
        slotStream[slot] = i;
        slotTag[slot] = tag;
      },
      commit: () => udp.commitScheduled(),
      collect,
    },
    localPorts: ids.map((id) => udp.localPort(id)),
    now: udp.now,
    buffer: () => udp.txBuffer(),
    send(i, bytes, dscp) {
      udp.queue(ids[i]!, bytes, tosFromDscp(dscp));
    },
    flush() {
      udp.flush();
    },
    queueDrops() {
      let sum = 0;
      for (const d of drops) if (d > 0) sum += d;
      return drops.some((d) => d >= 0) ? sum : null;
    },
    sendControl(i, msg) {
      msg.copy(udp.txBuffer());
      udp.queue(ids[i]!, msg.length, -1);
      udp.flush();
    },
    close,
  };
}
