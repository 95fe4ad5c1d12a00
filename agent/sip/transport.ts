// The sockets of a SIP OPTIONS probe: UDP (requests marked CS3 through a raw socket with CAP_NET_RAW,
// responses' marks read from the raw socket's copies), TCP and TLS (framed by Content-Length, RFC
// 3261 §18.3). Every failure comes back as data: where it happened and why.
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { dscpFromTos, tosFromDscp } from '../../src/dscp.js';
import { errorMessage } from '../../src/errors.js';
import { SipStreamFramer } from '../../src/sip/message.js';
import type { SipTarget } from '../../src/sip/target.js';
import { type NativeBinding, NativeUdp } from '../net/native-udp.js';
import { IPV6_DSCP_REASON, openRawUdp, type RawUdp } from '../net/raw-udp.js';

/** DSCP bookkeeping of one direction, in the report's SignallingDirection shape. */
export interface MarkCounts {
  dscpSent: number | null;
  /** DSCP → datagrams seen on arrival. */
  dscpReceived: Record<string, number>;
  dscpUnknownReason?: string;
}

export interface SipConnection {
  localHost: string;
  localPort: number;
  /** Sends one request (all of it: a datagram, or bytes on the stream). */
  send(text: string): void;
  close(): void;
  /** Whether DSCP could be set and read (native socket options, or a raw socket with CAP_NET_RAW). */
  privileged: boolean;
  /** Which UDP socket layer carried the run, and why not the native one. */
  socketPath?: { path: 'native' | 'dgram'; reason?: string };
  forward: MarkCounts;
  reverse: MarkCounts;
}

export interface SipHandlers {
  /** A datagram, or one message framed out of the stream; arrivalMs taken before anything else. */
  onMessage(text: string, arrivalMs: number): void;
  /** Stream bytes that cannot be framed as SIP (the connection is then closed). */
  onMalformed(): void;
  /** The stream closed (by the server, or broken); UDP never calls this. */
  onClosed(reason: string): void;
}

export type OpenFailure = { failedAt: 'connect' | 'tls' | 'socket'; reason: string };

export interface OpenOptions {
  target: SipTarget;
  /** The target's resolved address. */
  address: string;
  dscp: number;
  handlers: SipHandlers;
  now: () => number;
  connectTimeoutMs: number;
  /** Verify the server certificate (TLS). */
  tlsVerify: boolean;
  /** false: do not try the raw socket even when privileged. */
  useRawSocket: boolean;
  /** The native UDP layer (marks and reads DSCP without privilege), or why it is not used. */
  native: () => NativeBinding | string;
}

/** A SIP server does not tell us the marks our requests arrived with. */
export const FORWARD_NOT_SEEN =
  'a SIP server does not report the DSCP its requests arrive with; a capture point or the voipready reflector can';
export const STREAM_MARK_REASON =
  "Node's TCP/TLS sockets cannot set IP_TOS (no setsockopt), so requests over TCP and TLS leave unmarked";
export const STREAM_READ_REASON =
  'the marks of TCP segments are not read (the raw socket copies only UDP datagrams)';

const RECEIVE_BUFFER = 4 * 1024 * 1024;

const codeOf = (err: unknown) => (err as NodeJS.ErrnoException).code ?? errorMessage(err);

/** The local address the kernel routes to `address` from (a connected UDP socket learns it). */
function localAddressFor(address: string): Promise<string> {
  const probe = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
  return new Promise<string>((resolve, reject) => {
    probe.once('error', reject);
    probe.connect(9, address, () => resolve(probe.address().address));
  }).finally(() => probe.close());
}

/**
 * UDP through the native layer: CS3 set with IP_TOS / IPV6_TCLASS and the class of each response
 * read with IP_RECVTOS / IPV6_RECVTCLASS, no privilege; arrival from the kernel's receive stamp.
 * The socket is connected to the server, so the kernel drops datagrams from anywhere else.
 */
function openNativeUdp(o: OpenOptions, b: NativeBinding, localHost: string): SipConnection | OpenFailure {
  const v6 = net.isIPv6(o.address);
  const reverse: MarkCounts = { dscpSent: null, dscpReceived: {} };
  const udp: NativeUdp = new NativeUdp(b, (count) => {
    // Kernel stamps are wall-clock; the probe's clock is o.now: carry the datagram's age across.
    const nowMs = o.now();
    const kernelNow = udp.now();
    for (let k = 0; k < count; k++) {
      const tos = udp.rxTos(k);
      if (tos >= 0) {
        const key = String(dscpFromTos(tos));
        reverse.dscpReceived[key] = (reverse.dscpReceived[key] ?? 0) + 1;
      }
      const ageMs = Math.max(0, kernelNow - udp.rxArrivalMs(k));
      o.handlers.onMessage(udp.rxPayload(k).toString('latin1'), nowMs - ageMs);
    }
  });
  let id: number;
  try {
    id = udp.open(v6 ? 6 : 4, v6 ? '::' : '0.0.0.0', 0);
    udp.connect(id, o.address, o.target.port);
  } catch (err) {
    return { failedAt: 'socket', reason: `cannot open a UDP socket to ${o.address}: ${codeOf(err)}` };
  }
  const tos = tosFromDscp(o.dscp);
  return {
    localHost,
    localPort: udp.localPort(id),
    privileged: true,
    socketPath: { path: 'native' },
    forward: { dscpSent: o.dscp, dscpReceived: {}, dscpUnknownReason: FORWARD_NOT_SEEN },
    reverse,
    send(text) {
      const buf = udp.txBuffer();
      const length = buf.write(text, 'latin1');
      udp.queue(id, length, tos);
      udp.flush();
    },
    close() {
      udp.close(id);
    },
  };
}

async function openUdp(o: OpenOptions): Promise<SipConnection | OpenFailure> {
  const v6 = net.isIPv6(o.address);
  let localHost: string;
  try {
    localHost = await localAddressFor(o.address);
  } catch (err) {
    // No route from this host to the server: the site cannot reach it, which is the answer.
    return { failedAt: 'connect', reason: `no route to ${o.address}: ${codeOf(err)}` };
  }
  const native = o.native();
  if (typeof native !== 'string') return openNativeUdp(o, native, localHost);
  const sock = dgram.createSocket(v6 ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(0, () => {
        sock.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    sock.close();
    return { failedAt: 'socket', reason: `cannot open a UDP socket to ${o.address}: ${codeOf(err)}` };
  }
  // ICMP errors (port unreachable) surface as socket errors: the request stays unanswered (Timer F).
  sock.on('error', () => {});
  // A deep queue rides out a burst of unsolicited datagrams without losing the answers behind it.
  try {
    sock.setRecvBufferSize(RECEIVE_BUFFER);
  } catch {
    // the system's limit applies
  }
  const localPort = sock.address().port;
  const reverse: MarkCounts = { dscpSent: null, dscpReceived: {} };
  let raw: RawUdp | string = v6 ? IPV6_DSCP_REASON : 'raw socket not used (--no-raw)';
  if (!v6 && o.useRawSocket) {
    raw = openRawUdp(
      {
        acceptPort: (p) => p === localPort,
        onDatagram(d) {
          if (d.src !== o.address || d.srcPort !== o.target.port) return;
          const key = String(dscpFromTos(d.tos));
          reverse.dscpReceived[key] = (reverse.dscpReceived[key] ?? 0) + 1;
        },
      },
      o.now,
    );
  }
  const rawReason = typeof raw === 'string' ? raw : undefined;
  if (rawReason !== undefined) reverse.dscpUnknownReason = rawReason;
  const forward: MarkCounts = {
    dscpSent: rawReason === undefined ? o.dscp : null,
    dscpReceived: {},
    dscpUnknownReason: rawReason ?? FORWARD_NOT_SEEN,
  };
  // The socket is not connected: datagrams from anywhere are parsed and counted (strays, malformed).
  sock.on('message', (buf) => {
    const arrivalMs = o.now();
    o.handlers.onMessage(buf.toString('latin1'), arrivalMs);
  });
  return {
    localHost,
    localPort,
    privileged: rawReason === undefined,
    socketPath: { path: 'dgram', reason: native },
    forward,
    reverse,
    send(text) {
      const payload = Buffer.from(text, 'latin1');
      if (typeof raw !== 'string') raw.send(localHost, localPort, o.address, o.target.port, o.dscp, payload);
      else sock.send(payload, o.target.port, o.address);
    },
    close() {
      if (typeof raw !== 'string') raw.close();
      sock.close();
    },
  };
}

function openStream(o: OpenOptions): Promise<SipConnection | OpenFailure> {
  const secure = o.target.transport === 'tls';
  return new Promise((resolve) => {
    let connected = false;
    const socket: net.Socket = secure
      ? tls.connect({
          host: o.address,
          port: o.target.port,
          // SNI only for names (RFC 6066 §3); certificate checked against the name the user gave.
          ...(net.isIP(o.target.host) ? {} : { servername: o.target.host }),
          rejectUnauthorized: o.tlsVerify,
          checkServerIdentity: (_host, cert) => tls.checkServerIdentity(o.target.host, cert),
        })
      : net.connect({ host: o.address, port: o.target.port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ failedAt: 'connect', reason: `no connection within ${o.connectTimeoutMs} ms (Timer F)` });
    }, o.connectTimeoutMs);
    let tcpUp = false;
    socket.once('connect', () => {
      tcpUp = true;
    });
    socket.on('error', (err) => {
      if (connected) return; // reported through 'close'
      clearTimeout(timer);
      socket.destroy();
      const stage = secure && tcpUp ? 'tls' : 'connect';
      resolve({
        failedAt: stage,
        reason: `${stage === 'tls' ? 'TLS handshake failed' : 'cannot connect'}: ${errorMessage(err)}`,
      });
    });
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      connected = true;
      clearTimeout(timer);
      socket.setNoDelay(true);
      const framer = new SipStreamFramer();
      let closeReason = 'connection closed by the server';
      socket.on('data', (chunk: Buffer) => {
        const arrivalMs = o.now();
        for (const message of framer.push(chunk.toString('latin1'))) o.handlers.onMessage(message, arrivalMs);
        if (framer.broken) {
          closeReason = 'the server sent bytes that cannot be framed as SIP; connection closed';
          o.handlers.onMalformed();
          socket.destroy();
        }
      });
      socket.on('error', (err) => {
        closeReason = `connection failed: ${codeOf(err)}`;
      });
      socket.on('close', () => o.handlers.onClosed(closeReason));
      resolve({
        localHost: socket.localAddress ?? '0.0.0.0',
        localPort: socket.localPort ?? 0,
        privileged: false,
        forward: { dscpSent: null, dscpReceived: {}, dscpUnknownReason: STREAM_MARK_REASON },
        reverse: { dscpSent: null, dscpReceived: {}, dscpUnknownReason: STREAM_READ_REASON },
        send(text) {
          if (!socket.destroyed) socket.write(Buffer.from(text, 'latin1'));
        },
        close() {
          socket.destroy();
        },
      });
    });
  });
}

/** Opens the transport the target names. */
export function openSipTransport(o: OpenOptions): Promise<SipConnection | OpenFailure> {
  return o.target.transport === 'udp' ? openUdp(o) : openStream(o);
}
