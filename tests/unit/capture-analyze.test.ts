import { describe, expect, it } from 'vitest';
import { analyzeCapture, type CaptureResult } from '../../src/capture/analyze.js';
import { memorySource } from '../../src/capture/reader.js';
import { isRtcp, parseRtcp } from '../../src/capture/rtcp.js';
import { parseSdp, parseSipMessage } from '../../src/capture/sip.js';
import { DEFAULT_POLICY, Policy } from '../../src/policy.js';
import {
  type Endpoints,
  type Frame,
  fragmentIpv4,
  fragmentIpv6,
  frameFor,
  rtpPacket,
  sipInvite,
  sipRequest,
  tcpPacket,
  udpPacket,
  writePcap,
  writePcapng,
} from '../helpers/pcap-writer.js';

const T0 = 1_700_000_000;
const A = '10.1.1.10';
const B = '10.2.2.20';
const sipAB: Endpoints = { src: A, dst: B, srcPort: 5060, dstPort: 5060, dscp: 24 };
const sipBA: Endpoints = { src: B, dst: A, srcPort: 5060, dstPort: 5060, dscp: 24 };

function analyze(bytes: Uint8Array, policy = DEFAULT_POLICY): CaptureResult {
  return analyzeCapture(memorySource(bytes), 'gen.pcap', { policy });
}

/** A G.711 call: INVITE/200 with SDP, then one RTP stream A→B whose packets the caller shapes. */
function callFrames(opts: {
  order: number[];
  dscp?: (n: number) => number;
  jitterMs?: (n: number) => number;
  linkType?: number;
  vlans?: number[];
  a?: string;
  b?: string;
}): Frame[] {
  const a = opts.a ?? A;
  const b = opts.b ?? B;
  const wrap = (ip: Uint8Array) => frameFor(opts.linkType ?? 1, ip, opts.vlans);
  const frames: Frame[] = [
    {
      time: T0,
      bytes: wrap(
        udpPacket(
          { ...sipAB, src: a, dst: b },
          sipInvite({
            callId: 'call-1@test',
            from: 'sip:alice@example.net',
            to: 'sip:bob@example.net',
            mediaAddress: a,
            mediaPort: 40000,
            payloadTypes: [8, 101],
            rtpmap: ['8 PCMA/8000', '101 telephone-event/8000'],
          }),
        ),
      ),
    },
    {
      time: T0 + 0.05,
      bytes: wrap(
        udpPacket(
          { ...sipBA, src: b, dst: a },
          sipInvite({
            callId: 'call-1@test',
            from: 'sip:alice@example.net',
            to: 'sip:bob@example.net',
            mediaAddress: b,
            mediaPort: 50000,
            payloadTypes: [8],
            response: 200,
          }),
        ),
      ),
    },
  ];
  const spec = { ssrc: 0x11223344, payloadType: 8, timestampStep: 160 };
  opts.order.forEach((n, i) => {
    // Packet n is due at n × 20 ms; it is written in capture order i at its due time plus jitter.
    const due = T0 + 0.1 + n * 0.02 + (opts.jitterMs?.(n) ?? 0) / 1000;
    const time = Math.max(due, T0 + 0.1 + i * 0.00001);
    frames.push({
      time,
      bytes: wrap(
        udpPacket(
          { src: a, dst: b, srcPort: 40000, dstPort: 50000, dscp: opts.dscp?.(n) ?? 46 },
          rtpPacket(spec, n),
        ),
      ),
    });
  });
  frames.push({
    time: T0 + 10,
    bytes: wrap(udpPacket({ ...sipAB, src: a, dst: b }, sipRequest('BYE', 'call-1@test'))),
  });
  return frames;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('analyze: generated captures with known truth', () => {
  it('finds the call, its codec and a clean EF stream; ready', () => {
    const r = analyze(writePcap(callFrames({ order: range(100) })));
    expect(r.calls).toHaveLength(1);
    expect(r.calls[0]).toMatchObject({
      callId: 'call-1@test',
      from: 'sip:alice@example.net',
      to: 'sip:bob@example.net',
      codec: 'PCMA',
      status: 200,
      streams: ['s1'],
    });
    expect(r.streams).toHaveLength(1);
    expect(r.streams[0]).toMatchObject({
      src: `${A}:40000`,
      dst: `${B}:50000`,
      ssrc: '0x11223344',
      codec: 'PCMA',
      media: 'audio',
      clockRate: 8000,
      foundBy: 'sdp',
      packets: 100,
      expected: 100,
      lost: 0,
      duplicates: 0,
      reordered: 0,
      dscp: { '46': 100 },
    });
    expect(r.streams[0]!.jitterMaxMs).toBeLessThan(0.001);
    expect(r.streams[0]!.maxDeltaMs).toBeCloseTo(20, 3);
    expect(r.sip).toEqual({ messages: 3, dscp: { '24': 3 } });
    const status = Object.fromEntries(r.checks.map((c) => [c.id, c.status]));
    expect(status).toEqual({
      latency: 'unknown',
      jitter: 'pass',
      loss: 'pass',
      'dscp-rtp': 'pass',
      'dscp-sip': 'pass',
      bandwidth: 'unknown',
    });
    expect(r.ready).toBe(true);
  });

  it('keeps each stream with its own call when a later call reuses the media ports', () => {
    const first = callFrames({ order: range(10) });
    const second = callFrames({ order: range(10) }).map((f) => ({ ...f, time: f.time + 60 }));
    // The second call: another Call-ID and SSRC on the same addresses and ports.
    for (const f of second) {
      const text = Buffer.from(f.bytes).toString('latin1');
      if (text.includes('call-1@test'))
        f.bytes = Buffer.from(text.replace('call-1@test', 'call-2@test'), 'latin1');
      else if (f.bytes.length > 170)
        Buffer.from(f.bytes.buffer, f.bytes.byteOffset).writeUInt32BE(0x55555555, f.bytes.length - 172 + 8);
    }
    const r = analyze(writePcap([...first, ...second]));
    expect(r.calls.map((c) => [c.callId, c.streams])).toEqual([
      ['call-1@test', ['s1']],
      ['call-2@test', ['s2']],
    ]);
    expect(r.streams.map((s) => [s.ssrc, s.callId, s.packets])).toEqual([
      ['0x11223344', 'call-1@test', 10],
      ['0x55555555', 'call-2@test', 10],
    ]);
  });

  it('adopts SDP that arrives after the stream started (a late or re-sent INVITE)', () => {
    const frames = callFrames({ order: range(40) });
    const [invite, ok] = [frames[0]!, frames[1]!];
    frames.splice(0, 2);
    // The offer/answer are captured only after the first 10 RTP packets.
    frames.splice(
      10,
      0,
      { ...invite, time: frames[9]!.time + 0.001 },
      { ...ok, time: frames[9]!.time + 0.002 },
    );
    const r = analyze(writePcap(frames));
    expect(r.streams.map((s) => [s.foundBy, s.callId, s.packets, s.codec])).toEqual([
      ['sdp', 'call-1@test', 40, 'PCMA'],
    ]);
    expect(r.calls[0]!.streams).toEqual(['s1']);
  });

  it('counts loss, a burst, duplicates and reorders exactly', () => {
    // 0..199 with 50..54 lost (burst 5), 100 lost, 120 sent twice, 150/151 swapped.
    const order = range(200).filter((n) => !(n >= 50 && n <= 54) && n !== 100);
    order.splice(order.indexOf(120) + 1, 0, 120);
    const i150 = order.indexOf(150);
    order[i150] = 151;
    order[i150 + 1] = 150;
    const r = analyze(writePcap(callFrames({ order })));
    const s = r.streams[0]!;
    expect(s).toMatchObject({
      packets: 195,
      expected: 200,
      // tshark's Lost counts the duplicate as received: 200 − 195 = 5, while 6 are missing.
      lost: 5,
      duplicates: 1,
      reordered: 1,
      maxBurstLoss: 5,
    });
    expect(r.checks.find((c) => c.id === 'loss')!.status).toBe('fail');
    expect(r.ready).toBe(false);
  });

  it('computes RFC 3550 jitter for a known arrival pattern', () => {
    // Every 10th packet 8 ms late: J steps up by (8 − J)/16 then twice as the next packet is early.
    const r = analyze(writePcap(callFrames({ order: range(300), jitterMs: (n) => (n % 10 === 5 ? 8 : 0) })));
    const s = r.streams[0]!;
    let j = 0;
    let max = 0;
    for (let n = 1; n < 300; n++) {
      const d = n % 10 === 5 || n % 10 === 6 ? 8 : 0;
      j += (d - j) / 16;
      max = Math.max(max, j);
    }
    expect(s.jitterMaxMs!).toBeCloseTo(max, 3);
    expect(s.jitterMs!).toBeCloseTo(j, 3);
    expect(s.maxDeltaMs).toBeCloseTo(28, 3);
  });

  it('judges DSCP: RTP re-marked to CS0 fails, SIP not CS3 fails', () => {
    const frames = callFrames({ order: range(50), dscp: (n) => (n < 10 ? 0 : 46) });
    const r = analyze(writePcap(frames));
    expect(r.streams[0]!.dscp).toEqual({ '0': 10, '46': 40 });
    const rtp = r.checks.find((c) => c.id === 'dscp-rtp')!;
    expect(rtp.status).toBe('fail');
    expect(rtp.evidence).toMatch(/CS0 \(10 of 50\)/);
    const relaxed = Policy.parse({ 'dscp-rtp': { severity: 'warn' } });
    expect(analyze(writePcap(frames), relaxed).ready).toBe(true);
  });

  it('reads the same call through every supported link type, VLAN/QinQ and IPv6', () => {
    const cases: Array<{ linkType: number; vlans?: number[]; a?: string; b?: string; ng?: boolean }> = [
      { linkType: 1, vlans: [100] },
      { linkType: 1, vlans: [10, 20] },
      { linkType: 113 },
      { linkType: 276, ng: true },
      { linkType: 0 },
      { linkType: 101 },
      { linkType: 1, a: '2001:db8::a', b: '2001:db8::b' },
    ];
    for (const c of cases) {
      const frames = callFrames({ order: range(30), ...c });
      const bytes = c.ng
        ? writePcapng(frames, [{ linkType: c.linkType, tsresol: 9 }])
        : writePcap(frames, { linkType: c.linkType });
      const r = analyze(bytes);
      expect(r.warnings, JSON.stringify(c)).toEqual([]);
      expect(
        r.streams.map((s) => [s.packets, s.lost, s.foundBy, s.dscp]),
        JSON.stringify(c),
      ).toEqual([[30, 0, 'sdp', { '46': 30 }]]);
      expect(r.calls[0]!.streams).toEqual(['s1']);
    }
  });

  it('reads IPv4 total length 0 (segmentation offload on the capturing host) as "what was captured"', () => {
    const frames = callFrames({ order: range(30) });
    for (const f of frames) Buffer.from(f.bytes.buffer, f.bytes.byteOffset).writeUInt16BE(0, 14 + 2);
    const r = analyze(writePcap(frames));
    expect(r.calls[0]!.codec).toBe('PCMA');
    expect(r.streams.map((s) => [s.packets, s.foundBy])).toEqual([[30, 'sdp']]);
  });

  it('survives timestamps beyond any date (damaged pcapng with 1 s resolution)', () => {
    const frames = callFrames({ order: range(5) }).map((f, i) => ({ ...f, time: 2 ** 40 + i }));
    const r = analyze(writePcapng(frames, [{ linkType: 1, tsresol: 0 }], { tsOffsetS: 2 ** 52 }));
    expect(r.calls[0]).toMatchObject({ callId: 'call-1@test', start: null, end: null });
    expect(r.streams[0]!.packets).toBe(5);
  });

  it('reassembles IPv4 and IPv6 fragments (SIP INVITE split in pieces)', () => {
    for (const [a, b] of [
      [A, B],
      ['2001:db8::a', '2001:db8::b'],
    ] as const) {
      const frames = callFrames({ order: range(20), a, b });
      const invite = frames[0]!.bytes.subarray(14);
      const pieces = a.includes(':') ? fragmentIpv6(invite, 256, 7) : fragmentIpv4(invite, 256);
      expect(pieces.length).toBeGreaterThan(1);
      // Fragments arrive out of order.
      pieces.reverse();
      frames.splice(0, 1, ...pieces.map((p, i) => ({ time: T0 + i * 0.001, bytes: frameFor(1, p) })));
      const r = analyze(writePcap(frames));
      expect(r.calls[0]!.codec).toBe('PCMA');
      expect(r.streams[0]!.foundBy).toBe('sdp');
    }
  });

  it('follows SIP over TCP, with segments split, out of order and retransmitted', () => {
    const msg = sipInvite({
      callId: 'tcp-call',
      from: 'sip:a@x',
      to: 'sip:b@y',
      mediaAddress: A,
      mediaPort: 40000,
      payloadTypes: [0],
    });
    const bye = sipRequest('BYE', 'tcp-call');
    const stream = Buffer.concat([Buffer.from('\r\n\r\n'), msg, bye]);
    const e: Endpoints = { src: A, dst: B, srcPort: 40123, dstPort: 5060, dscp: 24 };
    const seq0 = 0xfffffff0; // wraps during the stream
    const cut = [0, 100, 300, 500, stream.length];
    const segs = cut.slice(0, -1).map((from, i) => ({ from, to: cut[i + 1]! }));
    const order = [0, 2, 1, 1, 3]; // segment 2 early, segment 1 retransmitted
    const frames: Frame[] = order.map((k, i) => ({
      time: T0 + i * 0.01,
      bytes: frameFor(1, tcpPacket(e, seq0 + segs[k]!.from, stream.subarray(segs[k]!.from, segs[k]!.to))),
    }));
    const spec = { ssrc: 7, payloadType: 0, timestampStep: 160 };
    for (let n = 0; n < 10; n++)
      frames.push({
        time: T0 + 1 + n * 0.02,
        bytes: frameFor(
          1,
          udpPacket({ src: A, dst: B, srcPort: 40000, dstPort: 40002, dscp: 46 }, rtpPacket(spec, n)),
        ),
      });
    const r = analyze(writePcap(frames));
    expect(r.sip.messages).toBe(2);
    expect(r.calls).toMatchObject([{ callId: 'tcp-call', codec: 'PCMU', messages: 2, streams: ['s1'] }]);
    expect(r.streams[0]!.foundBy).toBe('sdp');
  });

  it('judges the marks of SIP over TLS (port 5061), which it cannot read', () => {
    const frames = callFrames({ order: range(20) }).slice(2); // no INVITE/200 over UDP: they went over TLS
    const tls = Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20, ...Array(32).fill(0xaa)]); // TLS application data
    for (let i = 0; i < 4; i++)
      frames.unshift({
        time: T0 - 1 + i * 0.01,
        bytes: frameFor(
          1,
          tcpPacket(
            { src: A, dst: B, srcPort: 40999, dstPort: 5061, dscp: i < 3 ? 24 : 0 },
            1000 + i * 37,
            tls,
          ),
        ),
      });
    const r = analyze(writePcap(frames));
    expect(r.sip.messages).toBe(1); // the BYE over UDP; TLS records are not SIP messages we can count
    const check = r.checks.find((c) => c.id === 'dscp-sip')!;
    expect(check.status).toBe('fail');
    expect(check.evidence).toMatch(/CS0 \(1 of 4\) on SIP 10\.1\.1\.10 → 10\.2\.2\.20 \(SIP over TLS\)/);
  });

  it('finds RTP without SDP heuristically, and knows no jitter without a clock', () => {
    const frames: Frame[] = [];
    const opus = { ssrc: 9, payloadType: 111, timestampStep: 960 };
    const pcmu = { ssrc: 10, payloadType: 0, timestampStep: 160 };
    for (let n = 0; n < 50; n++) {
      frames.push({
        time: T0 + n * 0.02,
        bytes: frameFor(1, udpPacket({ src: A, dst: B, srcPort: 7000, dstPort: 7002 }, rtpPacket(opus, n))),
      });
      frames.push({
        time: T0 + n * 0.02 + 0.001,
        bytes: frameFor(1, udpPacket({ src: B, dst: A, srcPort: 7003, dstPort: 7001 }, rtpPacket(pcmu, n))),
      });
    }
    const r = analyze(writePcap(frames));
    // 7001 is odd: tshark's heuristic would skip it; ours takes it because it behaves like RTP.
    expect(r.streams.map((s) => [s.dst, s.foundBy, s.packets, s.clockRate, s.jitterMaxMs])).toEqual([
      [`${B}:7002`, 'heuristic', 50, null, null],
      [`${A}:7001`, 'heuristic', 50, 8000, 0],
    ]);
    expect(r.checks.find((c) => c.id === 'jitter')!.evidence).toMatch(/on s2 .*\(PCMU\)/);
    expect(r.checks.find((c) => c.id === 'dscp-sip')!.status).toBe('unknown');
    // Opus alone, without SDP: no clock rate, so no jitter to judge.
    const opusOnly = analyze(writePcap(frames.filter((_, i) => i % 2 === 0)));
    expect(opusOnly.checks.find((c) => c.id === 'jitter')).toMatchObject({
      status: 'unknown',
      evidence: 'not measured: no stream has a known clock rate (dynamic payload types without SDP)',
    });
  });

  it('does not take other UDP traffic that starts with "version 2" bits for RTP', () => {
    const frames: Frame[] = [];
    let x = 99;
    for (let n = 0; n < 200; n++) {
      const junk = Buffer.alloc(100);
      for (let i = 0; i < junk.length; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        junk[i] = x >>> 24;
      }
      // Half the datagrams keep one SSRC (a fixed flow id, as some protocols have), half are random.
      if (n % 2 === 0) junk.writeUInt32BE(0xfeedface, 8);
      junk[0] = 0x80 | (junk[0]! & 0x3f); // version bits 2, as in 1 of 4 random datagrams
      frames.push({
        time: T0 + n * 0.01,
        bytes: frameFor(1, udpPacket({ src: A, dst: B, srcPort: 40000, dstPort: 41000 }, junk)),
      });
    }
    const r = analyze(writePcap(frames));
    expect(r.streams).toEqual([]);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(
      /^\d+ candidate RTP stream\(s\) found by the heuristic were left out: a single packet, or sequence numbers that do not behave like RTP$/,
    );
    expect(r.ready).toBe(false); // and no audio: nothing was judged as a call
  });

  it('takes latency from RTCP LSR/DLSR (RFC 3550 §6.4.1)', () => {
    const frames = callFrames({ order: range(20) });
    const sr = Buffer.alloc(28);
    sr[0] = 0x80;
    sr[1] = 200;
    sr.writeUInt16BE(6, 2);
    sr.writeUInt32BE(0x11223344, 4);
    sr.writeUInt32BE(0x00001234, 8); // NTP seconds (low 16 bits = middle word high half)
    sr.writeUInt32BE(0x56780000, 12); // NTP fraction (high 16 bits = middle word low half)
    const rr = Buffer.alloc(32);
    rr[0] = 0x81;
    rr[1] = 201;
    rr.writeUInt16BE(7, 2);
    rr.writeUInt32BE(0x55667788, 4);
    rr.writeUInt32BE(0x11223344, 8);
    rr.writeUInt32BE(0x12345678, 24); // LSR = middle 32 bits of the SR's NTP timestamp
    rr.writeUInt32BE(65536 / 10, 28); // DLSR = 100 ms
    frames.push({
      time: T0 + 1,
      bytes: frameFor(1, udpPacket({ src: A, dst: B, srcPort: 40001, dstPort: 50001 }, sr)),
    });
    frames.push({
      time: T0 + 1.18,
      bytes: frameFor(1, udpPacket({ src: B, dst: A, srcPort: 50001, dstPort: 40001 }, rr)),
    });
    const r = analyze(writePcap(frames));
    expect(r.rtcp.packets).toBe(2);
    expect(r.rtcp.rttMs![0]).toBeCloseTo(80, 1);
    const latency = r.checks.find((c) => c.id === 'latency')!;
    expect(latency.status).toBe('pass');
    expect(latency.value).toBeCloseTo(40, 1);
    expect(r.streams[0]!.rtcp).toMatchObject({ reports: 1, cumulativeLost: 0 });
  });

  it('tells video from its packet pattern when no SDP says so (frames over several packets)', () => {
    const frames: Frame[] = [];
    for (let n = 0; n < 90; n++) {
      // 30 frames of 3 packets: one timestamp per frame, the marker on its last packet.
      const spec = {
        ssrc: 77,
        payloadType: 96,
        timestampStep: 0,
        timestampStart: 1000 + Math.floor(n / 3) * 3000,
        payloadBytes: 1000,
      };
      frames.push({
        time: T0 + n * 0.011,
        bytes: frameFor(
          1,
          udpPacket(
            { src: A, dst: B, srcPort: 9000, dstPort: 9002, dscp: 34 },
            rtpPacket(spec, n, n % 3 === 2),
          ),
        ),
      });
    }
    const r = analyze(writePcap(frames));
    expect(r.streams.map((s) => [s.media, s.foundBy, s.packets])).toEqual([['video', 'heuristic', 90]]);
    expect(r.checks.find((c) => c.id === 'dscp-rtp')).toMatchObject({ status: 'pass', value: 'AF41' });
    expect(r.ready).toBe(false); // video alone: no audio
    // The same pattern with small payloads (as DTMF events repeat timestamps) is not video.
    const small = frames.map((f) => ({ ...f, bytes: f.bytes.subarray(0, f.bytes.length - 990) }));
    for (const f of small)
      Buffer.from(f.bytes.buffer, f.bytes.byteOffset).writeUInt16BE(f.bytes.length - 14, 16);
    expect(analyze(writePcap(small)).streams[0]!.media).toBe('unknown');
  });

  it('judges SDP video against AF41 and needs audio to be ready', () => {
    const frames: Frame[] = [
      {
        time: T0,
        bytes: frameFor(
          1,
          udpPacket(
            sipAB,
            sipInvite({
              callId: 'v',
              from: 'sip:a@x',
              to: 'sip:b@y',
              mediaAddress: A,
              mediaPort: 6000,
              payloadTypes: [96],
              rtpmap: ['96 H264/90000'],
              media: 'video',
            }),
          ),
        ),
      },
    ];
    const spec = { ssrc: 5, payloadType: 96, timestampStep: 3000 };
    for (let n = 0; n < 30; n++)
      frames.push({
        time: T0 + 0.1 + n / 30,
        bytes: frameFor(
          1,
          udpPacket({ src: A, dst: B, srcPort: 6000, dstPort: 6002, dscp: 34 }, rtpPacket(spec, n)),
        ),
      });
    const r = analyze(writePcap(frames));
    expect(r.streams[0]).toMatchObject({
      media: 'video',
      codec: 'H264',
      clockRate: 90000,
      dscp: { '34': 30 },
    });
    expect(r.checks.find((c) => c.id === 'dscp-rtp')!.status).toBe('pass');
    expect(r.checks.every((c) => c.status !== 'fail')).toBe(true);
    expect(r.ready).toBe(false); // no audio
  });
});

describe('RTCP (RFC 3550 §6.4, RFC 3611 §4.7)', () => {
  /** RR with one report block + XR with a VoIP metrics block, as one compound packet. */
  function compound(): Buffer {
    const rr = Buffer.alloc(32);
    rr[0] = 0x81;
    rr[1] = 201;
    rr.writeUInt16BE(7, 2);
    rr.writeUInt32BE(0xaaaa0001, 4);
    rr.writeUInt32BE(0x11223344, 8); // about the media source
    rr[12] = 64; // fraction lost 64/256
    rr.writeUIntBE(0xfffffe, 13, 3); // cumulative lost −2 (duplicates)
    rr.writeUInt32BE(80, 20); // jitter 80 timestamp units = 10 ms at 8 kHz
    const xr = Buffer.alloc(8 + 36);
    xr[0] = 0x80;
    xr[1] = 207;
    xr.writeUInt16BE(10, 2);
    xr.writeUInt32BE(0xaaaa0001, 4);
    xr[8] = 7; // VoIP metrics
    xr.writeUInt16BE(8, 10);
    xr.writeUInt32BE(0x11223344, 12);
    xr[16] = 13; // loss rate 13/256
    xr.writeUInt16BE(120, 24); // round-trip delay ms
    xr[32] = 87; // R factor
    xr[34] = 41; // MOS-LQ 4.1
    xr[35] = 127; // MOS-CQ unavailable
    return Buffer.concat([rr, xr]);
  }

  it('recognises compound packets only when the lengths add up', () => {
    const c = compound();
    expect(isRtcp(c, 0, c.length)).toBe(true);
    expect(isRtcp(c, 0, c.length - 4)).toBe(false);
    const rtp = rtpPacket({ ssrc: 1, payloadType: 0, timestampStep: 160 }, 0);
    expect(isRtcp(rtp, 0, rtp.length)).toBe(false);
    const contents = parseRtcp(c, 0, c.length);
    expect(contents.reportBlocks[0]).toMatchObject({
      sourceSsrc: 0x11223344,
      fractionLost: 0.25,
      cumulativeLost: -2,
      jitter: 80,
    });
    expect(contents.xr[0]).toMatchObject({
      lossRate: 13 / 256,
      roundTripDelayMs: 120,
      rFactor: 87,
      mosLq: 41,
      mosCq: 127,
    });
  });

  it('shows the endpoints’ reports beside the stream, multiplexed on the RTP port (RFC 5761)', () => {
    const frames = callFrames({ order: range(20) });
    frames.push({
      time: T0 + 1,
      bytes: frameFor(1, udpPacket({ src: B, dst: A, srcPort: 50000, dstPort: 40000 }, compound())),
    });
    const r = analyze(writePcap(frames));
    expect(r.streams).toHaveLength(1);
    expect(r.streams[0]!.rtcp).toEqual({
      reports: 1,
      fractionLost: 0.25,
      cumulativeLost: -2,
      jitterMs: 10,
      xr: { lossRate: 0.0508, discardRate: 0, roundTripDelayMs: 120, rFactor: 87, mosLq: 4.1, mosCq: null },
    });
    expect(r.rtcp).toEqual({ packets: 1, rttMs: [120] });
    expect(r.checks.find((c) => c.id === 'latency')!.value).toBe(60);
  });
});

describe('SIP and SDP parsing', () => {
  it('reads compact headers, folded lines and Content-Length', () => {
    const m = parseSipMessage(
      'SIP/2.0 180 Ringing\r\ni: abc\r\nf: "A" <sip:a@x>;tag=1\r\nt: <sip:b@y>\r\nCSeq: 1\r\n INVITE\r\nl: 4\r\n\r\nbodyEXTRA',
    )!;
    expect(m).toMatchObject({
      status: 180,
      callId: 'abc',
      cseqMethod: 'INVITE',
      contentLength: 4,
      body: 'body',
    });
    expect(parseSipMessage('HELLO world')).toBeNull();
    expect(parseSipMessage('SIP/2.0 999 x\r\n\r\n')).toBeNull();
  });

  it('reads media lines, rtpmap and a=rtcp', () => {
    const media = parseSdp(
      'v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp:4005\r\nm=video 0 RTP/AVP 96\r\nm=video 5000 RTP/AVP 96\r\nc=IN IP6 2001:DB8::1\r\n',
    );
    expect(media).toHaveLength(2);
    expect(media[0]).toMatchObject({
      media: 'audio',
      address: '192.0.2.1',
      port: 4000,
      rtcpPort: 4005,
      payloadTypes: [0, 101],
    });
    expect(media[0]!.rtpmap.get(101)).toEqual({ encoding: 'telephone-event', clockRate: 8000 });
    expect(media[1]).toMatchObject({ media: 'video', address: '2001:db8::1', port: 5000, rtcpPort: 5001 });
  });
});
