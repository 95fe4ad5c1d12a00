// The reflector: answers probe packets (src/wire.ts) with same-size replies that report the arrival
// time, the sender's sequence and the DSCP on arrival, marked with the class the sender asked for;
// keeps per-stream forward statistics and hands them out as summaries. Design after STAMP (RFC 8762
// §4.3: stateful reflector; RFC 8972 §5.2: reporting the received DSCP). This module is the socket
// I/O; the per-stream state and accounting live in agent/reflector/streams.ts. Junk is rejected by
// the cheapest test that catches it, state is bounded, and no reply is ever larger than the message
// it answers.
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { dscpFromTos } from '../src/dscp.js';
import { UserError } from '../src/errors.js';
import type { ClockSync } from '../src/schemas.js';
import { detectClockSync } from './net/clock-sync.js';
import { IPV6_DSCP_REASON, openRawUdp, type RawUdp, stopReading } from './net/raw-udp.js';
import { wallNowMs } from './net/wall-clock.js';
import { type Arrival, type ReflectorStats, StreamTable } from './reflector/streams.js';

export { MAX_STREAM_SPAN, type ReflectorStats } from './reflector/streams.js';

export interface ReflectorOptions {
  /** IPv4 or IPv6 address to listen on (0.0.0.0 / :: for all). */
  host: string;
  /** Media port; 0 picks a free one. */
  port: number;
  /** Signalling port; default port + 1 (or a free one when port is 0). */
  signallingPort?: number;
  secret?: Buffer;
  /** Streams tracked at once (each a few kB); new streams beyond it are dropped and counted. */
  maxStreams?: number;
  /** A stream not heard from for this long is forgotten. */
  idleMs?: number;
  /** Set false to measure without raw sockets even when privileged (tests of the unprivileged path). */
  useRawSocket?: boolean;
  clockSync?: () => Promise<ClockSync>;
  now?: () => number;
  /** Structured events (listening, stream, summary, stopped) for --json-log. */
  log?: (event: Record<string, unknown>) => void;
}

export interface Reflector {
  address: string;
  port: number;
  signallingPort: number;
  /** Whether DSCP on arrival is read (and replies marked); reason when not. */
  dscpReadable: boolean;
  dscpUnknownReason?: string;
  stats(): ReflectorStats;
  close(): Promise<void>;
}

function bindSocket(host: string, port: number): Promise<dgram.Socket> {
  const sock = dgram.createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4' });
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      sock.close();
      const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
      if (err.code === 'EADDRINUSE') reject(new UserError(`cannot listen on ${where}: port already in use`));
      else if (err.code === 'EADDRNOTAVAIL')
        reject(new UserError(`cannot listen on ${where}: not an address of this host`));
      else if (err.code === 'EACCES') reject(new UserError(`cannot listen on ${where}: permission denied`));
      else reject(new UserError(`cannot listen on ${where}: ${err.code ?? err.message}`));
    };
    sock.once('error', onError);
    sock.bind({ address: host, port, exclusive: true }, () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

export async function startReflector(options: ReflectorOptions): Promise<Reflector> {
  const { host } = options;
  const family = isIP(host);
  if (family === 0) throw new UserError(`listen address "${host}" is not an IPv4 or IPv6 address`);
  const now = options.now ?? wallNowMs;
  const idleMs = options.idleMs ?? 120_000;
  const log = options.log ?? (() => {});

  const media = await bindSocket(host, options.port);
  const mediaPort = media.address().port;
  let signalling: dgram.Socket;
  try {
    signalling = await bindSocket(host, options.signallingPort ?? (options.port === 0 ? 0 : mediaPort + 1));
  } catch (err) {
    media.close();
    throw err;
  }
  const signallingPort = signalling.address().port;

  const table = new StreamTable({
    secret: options.secret,
    maxStreams: options.maxStreams ?? 1024,
    idleMs,
    now,
    log,
  });
  const readClock = options.clockSync ?? (() => detectClockSync());
  const refreshClock = () =>
    readClock().then(
      (c) => {
        table.clock = c;
      },
      () => {},
    );
  await refreshClock();

  let raw: RawUdp | undefined;
  let dscpUnknownReason: string | undefined;
  if (options.useRawSocket === false) dscpUnknownReason = 'raw sockets disabled';
  else if (family === 6) dscpUnknownReason = IPV6_DSCP_REASON;
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
            },
            d.dst,
          );
        },
      },
      now,
    );
    if (typeof opened === 'string') dscpUnknownReason = opened;
    else raw = opened;
  }
  table.marks = raw !== undefined;

  function handle(a: Arrival, localIp: string): void {
    const answer = table.handle(a);
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
    const arrivalMs = now();
    handle({ msg, src: rinfo.address, srcPort: rinfo.port, localPort, arrivalMs, dscp: null }, host);
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

  const expiry = setInterval(() => table.expire(now()), Math.min(idleMs, 10_000));
  expiry.unref();
  const clockTimer = setInterval(refreshClock, 60_000);
  clockTimer.unref();

  log({ event: 'listening', host, port: mediaPort, signallingPort, dscpReadable: raw !== undefined });
  let closed: Promise<void> | undefined;
  return {
    address: host,
    port: mediaPort,
    signallingPort,
    dscpReadable: raw !== undefined,
    ...(dscpUnknownReason ? { dscpUnknownReason } : {}),
    stats: () => structuredClone(table.stats),
    close() {
      closed ??= (async () => {
        clearInterval(expiry);
        clearInterval(clockTimer);
        raw?.close();
        await Promise.all([
          new Promise<void>((r) => media.close(() => r())),
          new Promise<void>((r) => signalling.close(() => r())),
        ]);
        log({ event: 'stopped', ...table.stats });
      })();
      return closed;
    },
  };
}
