// Fuzzing the SIP response path of the OPTIONS probe: the shared tolerant parser (src/capture/sip.ts)
// on arbitrary text and on mutations of real responses, round trips of generated responses, the
// stream framer on arbitrary chunking, and the probe itself fed arbitrary datagrams through a fake
// transport: nothing throws, every datagram is counted once, and the real answer is still matched.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runSipPing, type SipPingDeps } from '../../agent/sip/ping.js';
import type { SipConnection } from '../../agent/sip/transport.js';
import { parseSipMessage } from '../../src/capture/sip.js';
import { SipStreamFramer } from '../../src/sip/message.js';
import { SipResult } from '../../src/sip/schema.js';

const token = fc.stringMatching(/^[A-Za-z0-9.!%*_+`'~-]{1,24}$/);
const reasonPhrase = fc.stringMatching(/^[A-Za-z][A-Za-z0-9 ,.'-]{0,40}[A-Za-z0-9.]$|^$/);

const response = fc.record({
  status: fc.integer({ min: 100, max: 699 }),
  reason: reasonPhrase,
  branch: token.map((t) => `z9hG4bK${t}`),
  cseq: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  method: fc.constantFrom('OPTIONS', 'INVITE', 'BYE'),
  compact: fc.boolean(),
  body: fc.stringMatching(/^[ -~]{0,64}$/),
  extraVia: fc.boolean(),
});

type Response = typeof response extends fc.Arbitrary<infer T> ? T : never;

function render(r: Response): string {
  const via = r.compact ? 'v' : 'Via';
  const len = r.compact ? 'l' : 'Content-Length';
  return [
    `SIP/2.0 ${r.status} ${r.reason}`.trimEnd(),
    `${via}: SIP/2.0/UDP 192.0.2.10:40000;branch=${r.branch};rport=40000${r.extraVia ? ', SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKother' : ''}`,
    'From: <sip:voipready@192.0.2.10>;tag=1',
    'To: <sip:sbc.example.net>;tag=2',
    'Call-ID: c@x',
    `CSeq: ${r.cseq} ${r.method}`,
    `${len}: ${r.body.length}`,
    '',
    r.body,
  ].join('\r\n');
}

describe('SIP response parser (fuzz)', () => {
  it('never throws on arbitrary text and bytes', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 2000 }), fc.uint8Array({ maxLength: 2000 })), (input) => {
        const text = typeof input === 'string' ? input : Buffer.from(input).toString('latin1');
        const m = parseSipMessage(text);
        if (m !== null) expect(m.status === null || (m.status >= 100 && m.status <= 699)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('reads status, reason, top Via branch and CSeq back from generated responses', () => {
    fc.assert(
      fc.property(response, (r) => {
        const m = parseSipMessage(render(r))!;
        expect(m).not.toBeNull();
        expect(m.status).toBe(r.status);
        expect(m.reason).toBe(r.reason.trim());
        expect(m.viaBranch).toBe(r.branch);
        expect(m.cseq).toBe(r.cseq);
        expect(m.cseqMethod).toBe(r.method);
        expect(m.body).toBe(r.body);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on mutated responses (bytes flipped, cut, inserted)', () => {
    fc.assert(
      fc.property(
        response,
        fc.array(
          fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'cut', 'insert')),
          {
            maxLength: 8,
          },
        ),
        (r, edits) => {
          let text = render(r);
          for (const [at, byte, kind] of edits) {
            const i = text.length === 0 ? 0 : at % text.length;
            const ch = String.fromCharCode(byte);
            if (kind === 'flip') text = text.slice(0, i) + ch + text.slice(i + 1);
            else if (kind === 'cut') text = text.slice(0, i);
            else text = text.slice(0, i) + ch.repeat(1 + (byte % 50)) + text.slice(i);
          }
          parseSipMessage(text);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('the stream framer gives the same messages however the bytes are chunked', () => {
    fc.assert(
      fc.property(
        fc.array(response, { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (rs, cuts) => {
          const messages = rs.map(render);
          const stream = messages.join('\r\n');
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          const framer = new SipStreamFramer();
          const out: string[] = [];
          let from = 0;
          for (const p of [...points, stream.length]) {
            out.push(...framer.push(stream.slice(from, p)));
            from = p;
          }
          expect(out).toEqual(messages);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('the probe fed arbitrary datagrams (fuzz)', () => {
  it('counts each unsolicited datagram once, never throws, and still matches the real answer', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.string({ maxLength: 300 }), response.map(render)), { maxLength: 30 }),
        async (junk) => {
          let deliver: ((t: string) => void) | undefined;
          const deps: SipPingDeps = {
            now: () => 0,
            wallNow: () => Date.parse('2026-11-26T00:00:00Z'),
            sleep: async () => {},
            setTimer: () => () => {},
            lookup: async () => ({ address: '192.0.2.1' }),
            open: async (o) => {
              deliver = (t) => o.handlers.onMessage(t, 0);
              const conn: SipConnection = {
                localHost: '192.0.2.10',
                localPort: 40000,
                privileged: false,
                forward: { dscpSent: null, dscpReceived: {}, dscpUnknownReason: 'fuzz' },
                reverse: { dscpSent: null, dscpReceived: {}, dscpUnknownReason: 'fuzz' },
                send: (text) => {
                  for (const j of junk) deliver!(j);
                  const branch = /branch=([^;\r]+)/.exec(text)![1]!;
                  deliver!(
                    `SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=${branch}\r\nCSeq: 1 OPTIONS\r\n\r\n`,
                  );
                },
                close: () => {},
              };
              return conn;
            },
            token: (n) => 'ab'.repeat(n),
            useRawSocket: false,
            nativeUdp: () => 'a fake transport',
            userAgent: 'fuzz',
          };
          const r = await runSipPing({ target: 'sip:192.0.2.1', count: 1, intervalMs: 10 }, deps);
          expect(SipResult.safeParse(r).success).toBe(true);
          expect(r.answered).toBe(1);
          expect(r.strays + r.malformed + r.duplicates).toBe(junk.length);
        },
      ),
      { numRuns: 300 },
    );
  });
});
