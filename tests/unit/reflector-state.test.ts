// The reflector in-process on loopback with real sockets: reply sizes, bounded state, idle expiry,
// authentication, and the unprivileged dgram path (no raw socket); the native layer's marks.
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
afterEach(async () => {
  client?.close();
  client = undefined;
  await reflector?.close();
  reflector = undefined;
});

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

function probe(size: number, ssrc: number, sequence: number, secret?: Buffer): Buffer {
  const buf = Buffer.alloc(size);
  encodeProbe(
    buf,
    size,
    { payloadType: 0, sequence, timestamp: sequence * 160, ssrc, replyDscp: 46, signalling: false },
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

  it('counts duplicates and reorders in the forward summary', async () => {
    const { r, replies } = await open();
    for (const seq of [0, 1, 3, 2, 3, 65535 & 4]) await send(probe(172, 9, seq), r.port);
    await send(encodeSummaryRequest({ ssrc: 9, nonce: 2 }), r.port);
    await settle();
    const summary = decodeMessage(replies.at(-1)!);
    expect(summary).toMatchObject({ type: 'summaryResponse', received: 5, duplicates: 1, reordered: 1 });
  });

  it('counts loss across the 65535 sequence wrap (one missing, none reordered)', async () => {
    const { r, replies } = await open();
    const sequences = [65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 3, 4, 5];
    for (const seq of sequences) await send(probe(172, 13, seq), r.port);
    await send(encodeSummaryRequest({ ssrc: 13, nonce: 5 }), r.port);
    await settle();
    expect(decodeMessage(replies.at(-1)!)).toMatchObject({
      type: 'summaryResponse',
      received: 11,
      duplicates: 0,
      reordered: 0,
      maxBurstLoss: 1,
      repliesSent: 11,
    });
  });

  it('tracks at most maxStreams streams and counts the rest as capacity drops', async () => {
    const { r, replies } = await open({ maxStreams: 2 });
    for (const ssrc of [1, 2, 3]) await send(probe(172, ssrc, 0), r.port);
    await settle();
    expect(replies).toHaveLength(2);
    expect(r.stats()).toMatchObject({ streams: 2, replied: 2, rejected: { capacity: 1 } });
  });

  it('forgets idle streams', async () => {
    const { r, replies } = await open({ idleMs: 50 });
    await send(probe(172, 5, 0), r.port);
    await settle(250);
    expect(r.stats().streams).toBe(0);
    await send(encodeSummaryRequest({ ssrc: 5, nonce: 3 }), r.port);
    await settle();
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
    await settle();
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
});
