// The reflector in-process on loopback with real sockets: reply sizes, bounded state, idle expiry,
// authentication, the unprivileged dgram path (no raw socket); the native layer's marks; and
// attacks on its state: stream-table exhaustion from one and from many source addresses
// (127.x.y.z), replays, stale probes and summary floods.
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { loadNativeUdp } from '../../agent/net/native-udp.js';
import { type Reflector, startReflector } from '../../agent/reflector.js';
import {
  CONTROL_BYTES,
  type Decoded,
  decodeMessage,
  encodeProbe,
  encodeSummaryRequest,
} from '../../src/wire.js';

const SECRET = Buffer.from('a reflector secret');
const unsynced = async () => ({ synchronised: false, errorBoundMs: null, source: 'none' });

let reflector: Reflector | undefined;
let client: Socket | undefined;
const others: Socket[] = [];
afterEach(async () => {
  client?.close();
  client = undefined;
  for (const o of others.splice(0)) o.close();
  await reflector?.close();
  reflector = undefined;
});

/** A UDP socket on a loopback address (any 127.x.y.z is this host), collecting what it receives. */
async function peer(address: string) {
  const socket = createSocket('udp4');
  others.push(socket);
  await new Promise<void>((r) => socket.bind(0, address, () => r()));
  const received: Buffer[] = [];
  socket.on('message', (m) => received.push(m));
  const sendTo = (buf: Buffer, port: number) =>
    new Promise<void>((r) => socket.send(buf, port, '127.0.0.1', () => r()));
  return { socket, received, sendTo };
}

/** Waits until cond() holds (polled), or gives up after timeoutMs: a loaded machine is slow. */
async function until(cond: () => boolean, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

async function open(options: Partial<Parameters<typeof startReflector>[0]> = {}) {
  reflector = await startReflector({
    host: '127.0.0.1',
    port: 0,
    useRawSocket: false,
    nativeUdp: () => 'switched off in this test',
    notice: () => {},
    clockSync: unsynced,
    ...options,
  });
  client = createSocket('udp4');
  await new Promise<void>((r) => client!.bind(0, '127.0.0.1', () => r()));
  const replies: Buffer[] = [];
  client.on('message', (m) => replies.push(m));
  return { r: reflector, replies };
}

function probe(size: number, ssrc: number, sequence: number, secret?: Buffer, sentAtMs = Date.now()): Buffer {
  const buf = Buffer.alloc(size);
  encodeProbe(
    buf,
    size,
    {
      payloadType: 0,
      sequence,
      timestamp: sequence * 160,
      ssrc,
      replyDscp: 46,
      signalling: false,
      sentAtMs,
    },
    secret,
  );
  return buf;
}

const send = (buf: Buffer, port: number) =>
  new Promise<void>((r) => client!.send(buf, port, '127.0.0.1', () => r()));
const settle = (ms = 100) => new Promise((r) => setTimeout(r, ms));
/** Waits until `n` replies are in (or 3 s: a loaded machine may take a while to run the reflector). */
async function replied(replies: Buffer[], n: number) {
  for (let waited = 0; replies.length < n && waited < 3000; waited += 20) await settle(20);
  await settle(50); // and a little longer, so an unexpected extra reply would show
}

describe('reflector', () => {
  it('answers each probe with a reply of exactly its size, and summaries of the request size', async () => {
    const { r, replies } = await open();
    const sizes = [32, 172, 1500];
    for (const [i, size] of sizes.entries()) await send(probe(size, 7, i), r.port);
    await send(encodeSummaryRequest({ ssrc: 7, nonce: 1 }), r.port);
    await replied(replies, 4);
    expect(replies.map((m) => m.length)).toEqual([...sizes, CONTROL_BYTES]);
    const decoded = replies.map((m) => decodeMessage(m)) as Decoded[];
    expect(decoded.slice(0, 3).map((d) => d.type === 'reply' && d.echoedSequence)).toEqual([0, 1, 2]);
    // Without a raw socket: the arrival mark is unknown and the reply is not marked.
    expect(decoded[0]).toMatchObject({ type: 'reply', arrivalDscp: null, marked: false });
    expect(decoded[3]).toMatchObject({
      type: 'summaryResponse',
      known: true,
      received: 3,
      repliesSent: 3,
      dscpReadable: false,
      marksReplies: false,
      dscpCounts: [],
    });
    expect(r.dscpReadable).toBe(false);
    expect(r.dscpUnknownReason).toBe('raw sockets disabled');
  });

  it('native sockets: reads the class each probe arrived with and marks the reply', async () => {
    const { r, replies } = await open({ nativeUdp: loadNativeUdp });
    expect(r.socketPath).toBe('native');
    expect(r.dscpReadable).toBe(true);
    await send(probe(172, 9, 0), r.port);
    await send(encodeSummaryRequest({ ssrc: 9, nonce: 1 }), r.port);
    await replied(replies, 2);
    expect(replies.map((m) => m.length)).toEqual([172, CONTROL_BYTES]);
    // Node's dgram sends unmarked (CS0): read as such, and the reply carries the requested EF.
    expect(decodeMessage(replies[0]!)).toMatchObject({ type: 'reply', arrivalDscp: 0, marked: true });
    expect(decodeMessage(replies[1]!)).toMatchObject({
      type: 'summaryResponse',
      dscpReadable: true,
      marksReplies: true,
      dscpCounts: [[0, 1]],
    });
  });

  it('counts duplicates and reorders in the forward summary, and answers no duplicate', async () => {
    const { r, replies } = await open();
    for (const seq of [0, 1, 3, 2, 3, 65535 & 4]) await send(probe(172, 9, seq), r.port);
    await send(encodeSummaryRequest({ ssrc: 9, nonce: 2 }), r.port);
    await until(() => replies.length >= 6);
    await settle();
    expect(replies).toHaveLength(6); // five replies (the second 3 unanswered) and the summary
    const summary = decodeMessage(replies.at(-1)!);
    expect(summary).toMatchObject({
      type: 'summaryResponse',
      received: 5,
      duplicates: 1,
      reordered: 1,
      repliesSent: 5,
    });
  });

  it('counts loss across the 65535 sequence wrap (one missing, none reordered)', async () => {
    const { r, replies } = await open();
    const sequences = [65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 3, 4, 5];
    for (const seq of sequences) await send(probe(172, 13, seq), r.port);
    await send(encodeSummaryRequest({ ssrc: 13, nonce: 5 }), r.port);
    await until(() => replies.length >= 12);
    expect(decodeMessage(replies.at(-1)!)).toMatchObject({
      type: 'summaryResponse',
      received: 11,
      duplicates: 0,
      reordered: 0,
      maxBurstLoss: 1,
      repliesSent: 11,
    });
  });

  it('tracks at most maxStreams streams: a new one evicts the least recently heard', async () => {
    const { r, replies } = await open({ maxStreams: 2 });
    for (const ssrc of [1, 2, 3]) await send(probe(172, ssrc, 0), r.port);
    await until(() => replies.length >= 3);
    expect(replies).toHaveLength(3);
    expect(r.stats()).toMatchObject({ streams: 2, replied: 3, evicted: 1 });
    // The evicted stream's summary says it was forgotten, so a probe will not count it as lost.
    await send(encodeSummaryRequest({ ssrc: 1, nonce: 1 }), r.port);
    await until(() => replies.length >= 4);
    expect(decodeMessage(replies[3]!)).toMatchObject({ known: false, remark: 'evicted' });
  });

  it('forgets idle streams', async () => {
    const { r, replies } = await open({ idleMs: 50 });
    await send(probe(172, 5, 0), r.port);
    await until(() => replies.length >= 1);
    await until(() => r.stats().streams === 0);
    expect(r.stats().streams).toBe(0);
    await send(encodeSummaryRequest({ ssrc: 5, nonce: 3 }), r.port);
    await until(() => replies.length >= 2);
    expect(decodeMessage(replies.at(-1)!)).toMatchObject({
      type: 'summaryResponse',
      known: false,
      received: 0,
    });
  });

  it('with a secret answers only authenticated probes and counts the others', async () => {
    const { r, replies } = await open({ secret: SECRET });
    await send(probe(172, 1, 0), r.port); // untagged
    await send(probe(172, 1, 1, Buffer.from('wrong secret')), r.port);
    await send(encodeSummaryRequest({ ssrc: 1, nonce: 4 }), r.port); // untagged control
    await send(probe(172, 1, 2, SECRET), r.port);
    await until(() => replies.length >= 1);
    await settle();
    expect(replies).toHaveLength(1);
    expect(decodeMessage(replies[0]!, SECRET)).toMatchObject({
      type: 'reply',
      echoedSequence: 2,
      tagged: true,
    });
    expect(r.stats().rejected).toMatchObject({ unauthenticated: 2, 'bad-auth': 1 });
  });

  it('answers signalling probes on the signalling port, and frees both ports on close', async () => {
    const { r, replies } = await open();
    await send(probe(600, 11, 0), r.signallingPort);
    await until(() => replies.length >= 1);
    expect(replies).toHaveLength(1);
    const { port, signallingPort } = r;
    await r.close();
    reflector = undefined;
    reflector = await startReflector({
      host: '127.0.0.1',
      port,
      signallingPort,
      useRawSocket: false,
      clockSync: unsynced,
    });
    expect(reflector.port).toBe(port);
  });

  it('1,100 new streams from one address cannot lock out a genuine stream (per-source share)', async () => {
    const { r, replies } = await open(); // the shipped limits: 1024 streams, 512 per source
    const flooder = await peer('127.0.0.2');
    for (let ssrc = 1; ssrc <= 1100; ssrc++) {
      await flooder.sendTo(probe(172, 0x10000 + ssrc, 0), r.port);
      // In batches the receive buffer holds: a lost flood packet would prove nothing.
      if (ssrc % 100 === 0) await until(() => r.stats().received >= ssrc);
    }
    await until(() => r.stats().received >= 1100);
    expect(r.stats()).toMatchObject({ received: 1100, evicted: 1100 - 512 });
    expect(r.stats().streams).toBe(512);
    for (let seq = 0; seq < 10; seq++) await send(probe(172, 42, seq), r.port);
    await send(encodeSummaryRequest({ ssrc: 42, nonce: 1 }), r.port);
    await until(() => replies.length >= 11);
    expect(replies).toHaveLength(11);
    expect(decodeMessage(replies[10]!)).toMatchObject({
      known: true,
      remark: 'none',
      received: 10,
      repliesSent: 10,
    });
  });

  it('a table filled from many addresses still admits a genuine stream; the evicted one is told so', async () => {
    const { r, replies } = await open({ maxStreams: 16, perSourceStreams: 8 });
    const sources = await Promise.all(Array.from({ length: 20 }, (_, i) => peer(`127.0.1.${i + 1}`)));
    for (const [i, p] of sources.entries()) await p.sendTo(probe(172, 0x20000 + i, 0), r.port);
    await until(() => r.stats().received >= 20);
    expect(r.stats()).toMatchObject({ streams: 16, evicted: 4 });
    await send(probe(172, 43, 0), r.port);
    await until(() => replies.length >= 1);
    expect(decodeMessage(replies[0]!)).toMatchObject({ type: 'reply', echoedSequence: 0 });
    // The first source's stream was the least recently heard: forgotten, and its summary says so.
    await sources[0]!.sendTo(encodeSummaryRequest({ ssrc: 0x20000, nonce: 7 }), r.port);
    await until(() => sources[0]!.received.length >= 2);
    expect(decodeMessage(sources[0]!.received[1]!)).toMatchObject({ known: false, remark: 'evicted' });
  });

  it('one captured authenticated probe re-sent from 40 addresses holds no more streams', async () => {
    const { r, replies } = await open({ secret: SECRET });
    const captured = probe(172, 77, 0, SECRET);
    await send(Buffer.from(captured), r.port);
    await until(() => replies.length >= 1);
    const replayers = await Promise.all(Array.from({ length: 40 }, (_, i) => peer(`127.0.2.${i + 1}`)));
    for (const p of replayers) await p.sendTo(Buffer.from(captured), r.port);
    await until(() => r.stats().received >= 41);
    await settle();
    expect(replayers.every((p) => p.received.length === 0)).toBe(true);
    expect(r.stats()).toMatchObject({ streams: 1, replied: 1, rejected: { 'ssrc-in-use': 40 } });
    // A replayer's summary says why it has no stream; the genuine one's is whole.
    await replayers[0]!.sendTo(encodeSummaryRequest({ ssrc: 77, nonce: 1 }, SECRET), r.port);
    await send(encodeSummaryRequest({ ssrc: 77, nonce: 2 }, SECRET), r.port);
    await until(() => replayers[0]!.received.length >= 1 && replies.length >= 2);
    expect(decodeMessage(replayers[0]!.received[0]!, SECRET)).toMatchObject({
      known: false,
      remark: 'ssrc-in-use',
    });
    expect(decodeMessage(replies[1]!, SECRET)).toMatchObject({ known: true, received: 1, repliesSent: 1 });
  });

  it('replayed authenticated probes are neither answered nor counted, from the same port or another', async () => {
    const { r, replies } = await open({ secret: SECRET });
    const captured = Array.from({ length: 10 }, (_, seq) => probe(172, 88, seq, SECRET));
    for (const p of captured) await send(Buffer.from(p), r.port);
    await until(() => replies.length >= 10);
    // The same address from another port (the case: replies went elsewhere, yet counted).
    const otherPort = await peer('127.0.0.1');
    for (const p of captured) await otherPort.sendTo(Buffer.from(p), r.port);
    for (const p of captured) await send(Buffer.from(p), r.port); // and the same port: duplicates
    await until(() => r.stats().received >= 30);
    await settle();
    expect(otherPort.received).toHaveLength(0);
    expect(replies).toHaveLength(10);
    await send(encodeSummaryRequest({ ssrc: 88, nonce: 3 }, SECRET), r.port);
    await until(() => replies.length >= 11);
    expect(decodeMessage(replies[10]!, SECRET)).toMatchObject({
      known: true,
      received: 10,
      duplicates: 10,
      repliesSent: 10,
    });
  });

  it('refuses authenticated probes outside the freshness window and says why in the summary', async () => {
    const { r, replies } = await open({ secret: SECRET, freshnessMs: 60_000 });
    await send(probe(172, 99, 0, SECRET, Date.now() - 10 * 60_000), r.port); // captured 10 min ago
    await send(probe(172, 98, 0, SECRET, Date.now() + 10 * 60_000), r.port); // a clock far ahead
    await send(encodeSummaryRequest({ ssrc: 99, nonce: 4 }, SECRET), r.port);
    await until(() => replies.length >= 1);
    await settle();
    expect(replies).toHaveLength(1);
    expect(decodeMessage(replies[0]!, SECRET)).toMatchObject({ known: false, remark: 'stale' });
    expect(r.stats()).toMatchObject({ streams: 0, rejected: { stale: 2 } });
  });

  it('rate-limits summary requests per source address', async () => {
    const { r, replies } = await open({ summaryBurst: 5, summaryRatePerS: 1 });
    await send(probe(172, 5, 0), r.port);
    for (let i = 0; i < 50; i++) await send(encodeSummaryRequest({ ssrc: 5, nonce: i }), r.port);
    const other = await peer('127.0.0.3');
    await other.sendTo(encodeSummaryRequest({ ssrc: 5, nonce: 99 }), r.port);
    await until(() => other.received.length >= 1);
    await settle();
    const summaries = replies.filter((m) => m.length === CONTROL_BYTES);
    expect(summaries.length).toBeGreaterThanOrEqual(5);
    expect(summaries.length).toBeLessThanOrEqual(10); // the burst, and 1/s refilled meanwhile
    expect(r.stats().rejected['summary-rate']).toBe(50 - summaries.length);
    expect(decodeMessage(other.received[0]!)).toMatchObject({ type: 'summaryResponse', nonce: 99 });
  });

  it('still answers version 1 probes without a secret, in version 1', async () => {
    const { r, replies } = await open();
    const v1 = probe(172, 6, 0);
    v1[13] = (1 << 4) | 1;
    v1.fill(0, 16, 22);
    await send(v1, r.port);
    await until(() => replies.length >= 1);
    expect(replies[0]![13]).toBe((1 << 4) | 2);
    expect(decodeMessage(replies[0]!)).toMatchObject({ type: 'reply', version: 1, echoedSequence: 0 });
  });
});
