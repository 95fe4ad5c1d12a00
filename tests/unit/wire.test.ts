import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRtpHeader } from '../../src/rtp.js';
import {
  CONTROL_BYTES,
  decodeMessage,
  encodeProbe,
  encodeReply,
  encodeSummaryRequest,
  encodeSummaryResponse,
  MIN_PROBE_BYTES,
  type SummaryResponse,
} from '../../src/wire.js';

const SECRET = Buffer.from('correct horse battery staple');
const probeFields = {
  payloadType: 18,
  sequence: 65535,
  timestamp: 0xfffffff0,
  ssrc: 0xdeadbeef,
  replyDscp: 46,
  signalling: false,
  sentAtMs: Date.UTC(2026, 10, 29, 7, 30, 0, 123),
};

function probe(size: number, secret?: Buffer): Buffer {
  const buf = Buffer.alloc(size);
  encodeProbe(buf, size, probeFields, secret);
  return buf;
}

describe('probe packets', () => {
  it('are valid RTP v2 packets of the exact codec size, even for G.729 (20-byte payload)', () => {
    const buf = probe(12 + 20, SECRET);
    expect(MIN_PROBE_BYTES).toBe(32);
    const h = parseRtpHeader(buf)!;
    expect(h).toMatchObject({ version: 2, payloadType: 18, sequence: 65535, timestamp: 0xfffffff0 });
    expect(h.ssrc).toBe(0xdeadbeef);
    expect(h.payloadLength).toBe(20);
    expect(() => encodeProbe(Buffer.alloc(31), 31, probeFields)).toThrow(RangeError);
  });

  it('decode to the fields they were encoded with', () => {
    expect(decodeMessage(probe(172))).toEqual({ type: 'probe', tagged: false, version: 2, ...probeFields });
    expect(decodeMessage(probe(172, SECRET), SECRET)).toEqual({
      type: 'probe',
      tagged: true,
      version: 2,
      ...probeFields,
    });
  });

  it('carry their send time under the tag: a changed time is bad-auth', () => {
    const msg = probe(172, SECRET);
    expect(msg.readUIntBE(16, 6)).toBe(probeFields.sentAtMs); // payload bytes 4-9, docs/probe.md
    msg[21]! ^= 1;
    expect(decodeMessage(msg, SECRET)).toBe('bad-auth');
  });

  it('version 1 (no send time) is answered without a secret, in version 1, and refused with one', () => {
    const v1 = probe(172);
    v1[13] = (1 << 4) | 1;
    v1.fill(0, 16, 22);
    expect(decodeMessage(v1)).toMatchObject({ type: 'probe', version: 1, sentAtMs: 0 });
    encodeReply(v1, {
      sequence: 1,
      timestamp: 1,
      echoedSequence: 65535,
      arrivalUs: 1,
      holdUs: 1,
      arrivalDscp: null,
      marked: false,
    });
    expect(v1[13]).toBe((1 << 4) | 2);
    expect(decodeMessage(v1)).toMatchObject({ type: 'reply', version: 1, echoedSequence: 65535 });
    const v1Tagged = probe(172, SECRET);
    v1Tagged[13] = (1 << 4) | 1;
    expect(decodeMessage(v1Tagged, SECRET)).toBe('version');
    const request = encodeSummaryRequest({ ssrc: 1, nonce: 2 });
    request[2] = (1 << 4) | 3;
    encodeSummaryResponse(request, { ...response, remark: 'evicted' });
    expect(request[2]).toBe((1 << 4) | 4);
    expect(request[69]).toBe(0); // reserved in version 1
    expect(decodeMessage(request)).toMatchObject({ type: 'summaryResponse', version: 1, remark: 'none' });
  });

  it('are rejected with a secret unless the HMAC matches', () => {
    expect(decodeMessage(probe(172), SECRET)).toBe('unauthenticated');
    expect(decodeMessage(probe(172, Buffer.from('another secret!')), SECRET)).toBe('bad-auth');
    const tampered = probe(172, SECRET);
    tampered[3]! ^= 1; // sequence number changed in flight
    expect(decodeMessage(tampered, SECRET)).toBe('bad-auth');
    const tamperedFiller = probe(172, SECRET);
    tamperedFiller[171]! ^= 0x80;
    expect(decodeMessage(tamperedFiller, SECRET)).toBe('bad-auth');
  });

  it('rejects short, non-RTP, wrong-magic and wrong-version packets cheaply', () => {
    expect(decodeMessage(Buffer.alloc(0))).toBe('short');
    expect(decodeMessage(probe(172).subarray(0, 31))).toBe('short');
    const notRtp = probe(172);
    notRtp[0] = 0x40;
    expect(decodeMessage(notRtp)).toBe('not-probe');
    const magic = probe(172);
    magic[12] = 0x57;
    expect(decodeMessage(magic)).toBe('not-probe');
    const version = probe(172);
    version[13] = (3 << 4) | 1;
    expect(decodeMessage(version)).toBe('version');
    expect(decodeMessage(Buffer.alloc(2000, 0x80))).toBe('not-probe');
  });
});

describe('replies', () => {
  it('keep the probe size and carry arrival time, echoed sequence, hold time and arrival DSCP', () => {
    const msg = probe(32, SECRET);
    encodeReply(
      msg,
      {
        sequence: 7,
        timestamp: 1234,
        echoedSequence: 65535,
        arrivalUs: 0xfffffffe,
        holdUs: 80_000, // saturates
        arrivalDscp: 0,
        marked: true,
      },
      SECRET,
    );
    expect(msg.length).toBe(32);
    expect(decodeMessage(msg, SECRET)).toEqual({
      type: 'reply',
      tagged: true,
      version: 2,
      payloadType: 18,
      sequence: 7,
      timestamp: 1234,
      ssrc: 0xdeadbeef,
      signalling: false,
      echoedSequence: 65535,
      arrivalUs: 0xfffffffe,
      holdUs: 65535,
      arrivalDscp: 0,
      marked: true,
    });
  });

  it('say "unknown" for a DSCP the reflector could not read', () => {
    const msg = probe(172);
    encodeReply(msg, {
      sequence: 1,
      timestamp: 1,
      echoedSequence: 1,
      arrivalUs: 1,
      holdUs: 12.4,
      arrivalDscp: null,
      marked: false,
    });
    expect(decodeMessage(msg)).toMatchObject({ type: 'reply', arrivalDscp: null, marked: false, holdUs: 12 });
  });
});

const response: SummaryResponse = {
  ssrc: 0x01020304,
  nonce: 99,
  known: true,
  remark: 'evicted',
  dscpReadable: true,
  marksReplies: true,
  received: 1490,
  duplicates: 2,
  reordered: 3,
  maxBurstLoss: 4,
  repliesSent: 1495,
  jitterUs: 1234,
  jitterMaxUs: 5678,
  holdP50Us: 40,
  holdP99Us: 120,
  holdMaxUs: 900,
  holdSamples: 1495,
  queueDrops: 7,
  clock: { synchronised: true, errorBoundUs: 350, source: 'chrony' },
  dscpCounts: [
    [46, 1400],
    [0, 90],
  ],
};

describe('summaries', () => {
  it('request and response are the same fixed size and round-trip', () => {
    const req = encodeSummaryRequest({ ssrc: 0x01020304, nonce: 99 }, SECRET);
    expect(req.length).toBe(CONTROL_BYTES);
    expect(req[0]).toBe(0); // never mistaken for RTP v2
    expect(decodeMessage(req, SECRET)).toEqual({
      type: 'summaryRequest',
      tagged: true,
      version: 2,
      ssrc: 0x01020304,
      nonce: 99,
    });
    encodeSummaryResponse(req, response, SECRET);
    expect(req.length).toBe(CONTROL_BYTES);
    expect(decodeMessage(req, SECRET)).toEqual({
      type: 'summaryResponse',
      tagged: true,
      version: 2,
      ...response,
    });
    for (const remark of ['none', 'ssrc-in-use', 'stale'] as const) {
      encodeSummaryResponse(req, { ...response, remark }, SECRET);
      expect(decodeMessage(req, SECRET)).toMatchObject({ remark });
    }
    // The receive-queue drop count: unknown stays unknown (flag clear), large counts saturate.
    for (const [queueDrops, decoded] of [
      [null, null],
      [undefined, null],
      [0, 0],
      [70_000, 65_535],
    ] as const) {
      encodeSummaryResponse(req, { ...response, queueDrops }, SECRET);
      expect(decodeMessage(req, SECRET)).toMatchObject({ queueDrops: decoded });
    }
  });

  it('a version 1 response carries no drop count', () => {
    const req = encodeSummaryRequest({ ssrc: 5, nonce: 6 });
    req[2] = (1 << 4) | (req[2]! & 0x0f);
    encodeSummaryResponse(req, response);
    expect(decodeMessage(req)).toMatchObject({ version: 1, queueDrops: null });
    expect(req.readUInt16BE(70)).toBe(0);
  });

  it('without a bound or a secret', () => {
    const buf = encodeSummaryRequest({ ssrc: 1, nonce: 2 });
    encodeSummaryResponse(buf, {
      ...response,
      clock: { synchronised: false, errorBoundUs: null, source: 'none' },
    });
    expect(decodeMessage(buf)).toMatchObject({
      clock: { synchronised: false, errorBoundUs: null, source: 'none' },
    });
    expect(decodeMessage(buf, SECRET)).toBe('unauthenticated');
    expect(decodeMessage(buf.subarray(0, 100))).toBe('short');
  });
});

describe('decoder fuzz', () => {
  it('never throws on arbitrary bytes, with or without a secret', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 1600 }), fc.boolean(), (bytes, useSecret) => {
        const r = decodeMessage(Buffer.from(bytes), useSecret ? SECRET : undefined);
        expect(typeof r === 'string' || typeof r === 'object').toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('never throws on mutated valid messages and never accepts a mutated authenticated one', () => {
    const valid = [
      probe(172, SECRET),
      probe(32, SECRET),
      encodeSummaryRequest({ ssrc: 5, nonce: 6 }, SECRET),
    ];
    fc.assert(
      fc.property(fc.constantFrom(...valid), fc.nat(), fc.integer({ min: 1, max: 255 }), (msg, at, flip) => {
        const copy = Buffer.from(msg);
        copy[at % copy.length]! ^= flip;
        const r = decodeMessage(copy, SECRET);
        expect(typeof r).toBe('string');
      }),
      { numRuns: 3000 },
    );
  });
});
