// The reflector: answers probe packets (src/wire.ts) with same-size replies that report the arrival
// time, the sender's sequence and the DSCP on arrival, marked with the class the sender asked for;
// keeps per-stream forward statistics and hands them out as summaries. Design after STAMP (RFC 8762
// §4.3: stateful reflector; RFC 8972 §5.2: reporting the received DSCP). This module is the socket
// I/O; the per-stream state and accounting live in agent/reflector/streams.ts. Junk is rejected by
// the cheapest test that catches it, state is bounded, and no reply is ever larger than the message
// it answers.
import { isIP } from 'node:net';
import { UserError } from '../src/errors.js';
import type { ClockSync } from '../src/schemas.js';
import { detectClockSync } from './net/clock-sync.js';
import { loadNativeUdp, type NativeBinding, noticeFallback } from './net/native-udp.js';
import { wallNowMs } from './net/wall-clock.js';
import type { IoPath } from './probe/sockets.js';
import {
  openDgramReflectorSockets,
  openNativeReflectorSockets,
  type ReflectorSocketsRequest,
} from './reflector/sockets.js';
import { type ReflectorStats, STREAM_DEFAULTS, StreamTable } from './reflector/streams.js';

export { MAX_STREAM_SPAN, type ReflectorStats } from './reflector/streams.js';

export interface ReflectorOptions {
  /** IPv4 or IPv6 address to listen on (0.0.0.0 / :: for all). */
  host: string;
  /** Media port; 0 picks a free one. */
  port: number;
  /** Signalling port; default port + 1 (or a free one when port is 0). */
  signallingPort?: number;
  secret?: Buffer;
  /** Stream-table limits, freshness window and summary rate (defaults: STREAM_DEFAULTS). */
  maxStreams?: number;
  perSourceStreams?: number;
  /** A stream not heard from for this long is forgotten. */
  idleMs?: number;
  freshnessMs?: number;
  summaryBurst?: number;
  summaryRatePerS?: number;
  /** Accept the probe's --priority-test load (count and discard it); refused otherwise. */
  acceptLoad?: boolean;
  /** Dgram path only: set false to measure without raw sockets even when privileged. */
  useRawSocket?: boolean;
  /** The native socket layer, or why it cannot be used (default: the addon, if it loads). */
  nativeUdp?: () => NativeBinding | string;
  /** Says once that the dgram fallback measures (default: one line on stderr). */
  notice?: (reason: string) => void;
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
  /** The socket layer answering: the native addon or Node's dgram. */
  socketPath: IoPath;
  stats(): ReflectorStats;
  close(): Promise<void>;
}

/** The stream-table limits the caller set (undefined ones keep their defaults). */
function definedOnly(o: ReflectorOptions): Partial<Record<keyof typeof STREAM_DEFAULTS, number>> {
  const keys = Object.keys(STREAM_DEFAULTS) as Array<keyof typeof STREAM_DEFAULTS>;
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
}

export async function startReflector(options: ReflectorOptions): Promise<Reflector> {
  const { host } = options;
  if (isIP(host) === 0) throw new UserError(`listen address "${host}" is not an IPv4 or IPv6 address`);
  const limits = { ...STREAM_DEFAULTS, ...definedOnly(options) };
  const log = options.log ?? (() => {});

  let table: StreamTable | undefined;
  const request: ReflectorSocketsRequest = {
    host,
    port: options.port,
    ...(options.signallingPort !== undefined ? { signallingPort: options.signallingPort } : {}),
    onArrival: (a) => table?.handle(a),
  };
  const native = (options.nativeUdp ?? loadNativeUdp)();
  if (typeof native === 'string') (options.notice ?? noticeFallback)(native);
  const io =
    typeof native === 'string'
      ? await openDgramReflectorSockets(request, {
          useRawSocket: options.useRawSocket !== false,
          now: options.now ?? wallNowMs,
        })
      : openNativeReflectorSockets(request, native);
  const now = options.now ?? io.now;
  const marks = io.dscpReason === undefined;
  table = new StreamTable({
    ...limits,
    secret: options.secret,
    acceptLoad: options.acceptLoad === true,
    now,
    log,
  });
  table.marks = marks;
  const readClock = options.clockSync ?? (() => detectClockSync());
  const refreshClock = () =>
    readClock().then(
      (c) => {
        if (table) table.clock = c;
      },
      () => {},
    );
  await refreshClock();

  const expiry = setInterval(() => table.expire(now()), Math.min(limits.idleMs, 10_000));
  expiry.unref();
  const clockTimer = setInterval(refreshClock, 60_000);
  clockTimer.unref();

  const { mediaPort, signallingPort } = io;
  log({
    event: 'listening',
    host,
    port: mediaPort,
    signallingPort,
    dscpReadable: marks,
    socketPath: io.path,
  });
  let closed: Promise<void> | undefined;
  return {
    address: host,
    port: mediaPort,
    signallingPort,
    dscpReadable: marks,
    ...(io.dscpReason ? { dscpUnknownReason: io.dscpReason } : {}),
    socketPath: io.path,
    stats: () => structuredClone(table.stats),
    close() {
      closed ??= (async () => {
        clearInterval(expiry);
        clearInterval(clockTimer);
        await io.close();
        log({ event: 'stopped', ...table.stats });
      })();
      return closed;
    },
  };
}
