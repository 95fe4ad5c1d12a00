// Agreement with the independent reference: tshark 4.0's `-z rtp,streams` (heuristic RTP on), run
// live on every sample capture in tests/fixtures/captures and on generated captures with loss,
// reorders, duplicates, jitter, marker bits, comfort noise, sequence/timestamp wrap and odd framing.
// Losses must agree exactly; max/mean jitter and max delta within 0.01 ms. Where we deliberately
// differ the difference is listed below, asserted, and explained in docs/analyze.md.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzeCapture, type CaptureResult, type CaptureStream } from '../../src/capture/analyze.js';
import { fileSource, memorySource } from '../../src/capture/reader.js';
import {
  type Frame,
  frameFor,
  rtpPacket,
  sipInvite,
  sipRequest,
  tcpPacket,
  udpPacket,
  writePcap,
  writePcapng,
} from '../helpers/pcap-writer.js';
import { parseRtpStreams, type RtpStreamRow } from '../helpers/tshark.js';

/**
 * tshark -z rtp,streams (heuristic RTP on) and -z sip,stat in one run. A damaged file makes tshark
 * exit non-zero after printing the tables of what it read; those are still the reference.
 */
function tsharkStats(file: string): Promise<{ streams: RtpStreamRow[]; sipMessages: number }> {
  return new Promise((resolve, reject) => {
    execFile(
      'tshark',
      ['-r', file, '-q', '-o', 'rtp.heuristic_rtp:TRUE', '-z', 'rtp,streams', '-z', 'sip,stat'],
      { maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && !/cut short|damaged|corrupt/.test(stderr)) reject(err);
        else
          resolve({
            streams: parseRtpStreams(stdout),
            sipMessages: Number(/Number of SIP messages: (\d+)/.exec(stdout)?.[1] ?? Number.NaN),
          });
      },
    );
  });
}

const rtpStreams = async (file: string) => (await tsharkStats(file)).streams;

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'captures');
const execFileP = promisify(execFile);

/** Captures that are not readable captures at all, or that tshark cannot read: tested elsewhere. */
const UNREADABLE = new Set([
  'NormB__sipnab/c07-sip-r2.cap', // Microsoft NetMon 2.x: not pcap/pcapng (exit 2)
  'aboutsip__pkts/cool.pcap', // corrupt first record header: a damaged file (exit 2)
]);

type Field = 'packets' | 'lost' | 'jitter' | 'maxDelta' | 'present' | 'extra';
/**
 * Deliberate or known differences, by capture and SSRC (see docs/analyze.md, "Where we differ").
 * Each entry names the fields that differ; the test asserts they really do, so the list stays true.
 */
const DEVIATIONS: Record<string, Record<string, Field[]>> = {
  // A fax call: tshark stops counting RTP where the SDP offer/answer switched the port to T.38
  // (m=image) and back, following its own conversation rules; we follow the latest SDP seen.
  'ntop__nDPI/FAX-Call-t38-CA-TDM-SIP-FB-1.pcap': { '0x0EAF0EAF': ['packets'] },
  // tshark 4.0 misreads this BSD-loopback file (shows LLC/XNS) and finds no RTP; we find the three
  // streams rtpproxy's own analysis expects (checked against its output below).
  'sippy__rtpproxy/DLT_NULL.a.rtp': { '0x9C49CA0A': ['extra', 'extra'], '0xCEAD2A2B': ['extra'] },
};

function captures(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...captures(path));
    else if (!/\.(tsv|txt|md)$/.test(name)) out.push(path);
  }
  return out.sort();
}

const key = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

function find(r: CaptureResult, row: RtpStreamRow): CaptureStream | undefined {
  return r.streams.find(
    (s) =>
      s.src === key(row.srcIp, row.srcPort) &&
      s.dst === key(row.dstIp, row.dstPort) &&
      s.ssrc === `0x${row.ssrc.slice(2).toUpperCase()}`,
  );
}

/** Fields where ours and tshark's row disagree. tshark prints 0 jitter where it knows no clock. */
function differences(s: CaptureStream, row: RtpStreamRow): Field[] {
  const out: Field[] = [];
  if (s.packets !== row.packets) out.push('packets');
  if (s.lost !== row.lost) out.push('lost');
  if (
    Math.abs((s.jitterMaxMs ?? 0) - row.maxJitterMs) > 0.01 ||
    Math.abs((s.jitterMeanMs ?? 0) - row.meanJitterMs) > 0.01
  )
    out.push('jitter');
  if (Math.abs(s.maxDeltaMs - row.maxDeltaMs) > 0.01) out.push('maxDelta');
  return out;
}

/** Compares every stream of one capture; returns the differences found, keyed by SSRC. */
function compare(r: CaptureResult, rows: RtpStreamRow[]): Record<string, Field[]> {
  const found: Record<string, Field[]> = {};
  for (const row of rows) {
    const ssrc = `0x${row.ssrc.slice(2).toUpperCase()}`;
    const s = find(r, row);
    const d = s ? differences(s, row) : ['present' as const];
    if (d.length > 0) found[ssrc] = d;
  }
  for (const s of r.streams) {
    if (!rows.some((row) => find(r, row) === s)) found[s.ssrc] = [...(found[s.ssrc] ?? []), 'extra'];
  }
  return found;
}

describe('agreement with tshark (-z rtp,streams, -z sip,stat) on the public sample captures', () => {
  const files = captures(FIXTURES).filter((f) => !UNREADABLE.has(relative(FIXTURES, f)));

  it('has the samples to compare', () => {
    expect(files.length).toBeGreaterThanOrEqual(30);
  });

  it.each(files.map((f) => [relative(FIXTURES, f), f]))('%s', async (name, file) => {
    const { streams: rows, sipMessages } = await tsharkStats(file);
    const r = analyzeCapture(fileSource(file), name);
    expect(r.sip.messages).toBe(sipMessages);
    if (sipMessages > 0) {
      // Calls are INVITE dialogs: as many as tshark sees distinct Call-IDs in INVITE transactions.
      const { stdout } = await execFileP('tshark', [
        '-r',
        file,
        '-Y',
        'sip.CSeq.method == "INVITE"',
        '-T',
        'fields',
        '-e',
        'sip.Call-ID',
      ]).catch(
        (err: { stdout: string }) => err, // a damaged file: tshark exits non-zero after the packets it read
      );
      const invites = new Set(stdout.split('\n').filter((l) => l !== ''));
      expect(r.calls.map((c) => c.callId).sort()).toEqual([...invites].sort());
    }
    const found = compare(r, rows);
    expect(found).toEqual(DEVIATIONS[name] ?? {});
    // Where the figures agree, they agree with real content: at least one stream was compared.
    if (rows.length > 0) expect(r.streams.length).toBeGreaterThan(0);
  });

  it('RTCP round trip (RFC 3550 §6.4.1) agrees with tshark’s rtcp.roundtrip-delay (whole ms)', () => {
    const file = join(FIXTURES, 'NormB__sipnab/sip-over-tcp.pcap');
    const out = execFileSync(
      'tshark',
      [
        '-r',
        file,
        '-o',
        'rtcp.show_roundtrip_calculation:TRUE',
        '-o',
        'rtcp.roundtrip_min_threshhold:0',
        '-Y',
        'rtcp.roundtrip-delay',
        '-T',
        'fields',
        '-e',
        'rtcp.roundtrip-delay',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const reference = out.trim().split('\n').map(Number);
    const r = analyzeCapture(fileSource(file), 'sip-over-tcp.pcap');
    expect(r.rtcp.rttMs).toHaveLength(reference.length);
    for (const [i, rtt] of r.rtcp.rttMs!.entries())
      expect(Math.abs(rtt - reference[i]!)).toBeLessThanOrEqual(1);
  });

  it('DLT_NULL.a.rtp: matches rtpproxy’s own expected analysis instead', () => {
    const file = join(FIXTURES, 'sippy__rtpproxy/DLT_NULL.a.rtp');
    const expected = readFileSync(
      join(FIXTURES, 'sippy__rtpproxy/DLT_NULL.output.rtpproxy-expected.txt'),
      'utf8',
    );
    // "pcount=300, min_seq=63377, max_seq=63676, ... ssrc=0x9C49CA0A ... plost=0"
    expect(expected).toMatch(/pcount=300, min_seq=63377, max_seq=63676.*ssrc=0x9C49CA0A/);
    const r = analyzeCapture(fileSource(file), 'DLT_NULL.a.rtp');
    const ipv4 = r.streams.filter((s) => s.ssrc === '0x9C49CA0A');
    expect(ipv4.reduce((n, s) => n + s.packets, 0)).toBe(300);
    expect(ipv4.reduce((n, s) => n + s.lost, 0)).toBe(0);
  });
});

describe('agreement with tshark on generated captures', () => {
  const dir = mkdtempSync(join(tmpdir(), 'voipready-analyze-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // A deterministic PRNG so that failures reproduce.
  function prng(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
      return s / 4294967296;
    };
  }

  interface Variant {
    name: string;
    linkType?: number;
    ng?: boolean;
    ipv6?: boolean;
    vlans?: number[];
    payloadType: number;
    step: number;
    seqStart?: number;
    tsStart?: number;
    loss?: number;
    dupEvery?: number;
    swapEvery?: number;
    jitterMs?: number;
    markerEvery?: number;
    cnEvery?: number;
    /** Announce the stream in SIP/SDP with telephone-event 101, and send DTMF events (frozen timestamp). */
    dtmfEvery?: number;
    /** From packet `at` on, the sender's RTP clock restarts `back` packets' worth earlier (below the first timestamp). */
    tsRestart?: { at: number; back: number };
  }

  const variants: Variant[] = [
    { name: 'G.711 clean', payloadType: 0, step: 160 },
    { name: 'G.711 2% random loss, jitter 15 ms', payloadType: 8, step: 160, loss: 0.02, jitterMs: 15 },
    { name: 'duplicates and swaps', payloadType: 0, step: 160, dupEvery: 37, swapEvery: 53, jitterMs: 3 },
    {
      name: 'sequence and timestamp wrap',
      payloadType: 18,
      step: 160,
      seqStart: 65000,
      tsStart: 0xfffff000,
      loss: 0.01,
    },
    {
      name: 'marker bits and comfort noise',
      payloadType: 0,
      step: 160,
      markerEvery: 50,
      cnEvery: 41,
      jitterMs: 5,
    },
    { name: 'G.722 over IPv6, QinQ', payloadType: 9, step: 160, ipv6: true, vlans: [10, 20], jitterMs: 2 },
    {
      name: 'Linux cooked v2, pcapng ns',
      payloadType: 8,
      step: 160,
      linkType: 276,
      ng: true,
      jitterMs: 8,
      loss: 0.03,
    },
    { name: 'BSD loopback', payloadType: 0, step: 160, linkType: 0, jitterMs: 1 },
    { name: 'H.263 video clock 90 kHz', payloadType: 34, step: 3000, jitterMs: 4 },
    // Timestamps drop below the stream's first at packet 300 and climb past it again at 400.
    {
      name: 'RTP timestamp restart below the first',
      payloadType: 0,
      step: 160,
      jitterMs: 3,
      tsRestart: { at: 300, back: 400 },
    },
    {
      name: 'SDP-announced G.711 with DTMF events',
      payloadType: 8,
      step: 160,
      dtmfEvery: 300,
      jitterMs: 2,
      loss: 0.01,
    },
  ];

  it.each(variants.map((v) => [v.name, v]))('%s', async (_name, v) => {
    const rand = prng(v.name.length * 7919);
    const frames: Frame[] = [];
    const a = v.ipv6 ? '2001:db8::10' : '192.0.2.10';
    const b = v.ipv6 ? '2001:db8::20' : '198.51.100.20';
    const order: number[] = [];
    for (let n = 0; n < 1500; n++) {
      if (v.loss && rand() < v.loss) continue;
      order.push(n);
      if (v.dupEvery && n % v.dupEvery === 0) order.push(n);
    }
    if (v.swapEvery)
      for (let i = v.swapEvery; i + 1 < order.length; i += v.swapEvery)
        [order[i], order[i + 1]] = [order[i + 1]!, order[i]!];
    let t = 1_600_000_000.123456;
    if (v.dtmfEvery) {
      const invite = sipInvite({
        callId: 'dtmf@test',
        from: 'sip:a@x',
        to: 'sip:b@y',
        mediaAddress: b,
        mediaPort: 16386,
        payloadTypes: [v.payloadType, 101],
        rtpmap: ['101 telephone-event/8000'],
      });
      frames.push({
        time: t - 1,
        bytes: frameFor(1, udpPacket({ src: b, dst: a, srcPort: 5060, dstPort: 5060 }, invite)),
      });
    }
    for (const n of order) {
      t = Math.max(
        t + 0.0001,
        1_600_000_000.123456 + n * 0.02 + (v.jitterMs ? (rand() * v.jitterMs) / 1000 : 0),
      );
      const cn = v.cnEvery !== undefined && n % v.cnEvery === 0;
      // A DTMF event lasts 5 packets; all carry the timestamp of its first packet (RFC 4733 §2.5.1.2).
      const eventStart = v.dtmfEvery ? n - (n % v.dtmfEvery) : -1;
      const event = v.dtmfEvery !== undefined && n % v.dtmfEvery < 5 && n >= v.dtmfEvery;
      const spec = {
        ssrc: 0x0badf00d,
        payloadType: cn ? 13 : event ? 101 : v.payloadType,
        timestampStep: v.step,
        sequenceStart: v.seqStart ?? 4000,
        timestampStart: v.tsStart ?? 123456,
        payloadBytes: cn ? 1 : 160,
      };
      const packet = rtpPacket(spec, n, v.markerEvery !== undefined && n % v.markerEvery === 0);
      if (event)
        Buffer.from(packet.buffer, packet.byteOffset).writeUInt32BE((123456 + eventStart * v.step) >>> 0, 4);
      if (v.tsRestart && n >= v.tsRestart.at)
        Buffer.from(packet.buffer, packet.byteOffset).writeUInt32BE(
          (spec.timestampStart + (n - v.tsRestart.back) * v.step) >>> 0,
          4,
        );
      const ip = udpPacket({ src: a, dst: b, srcPort: 16384, dstPort: 16386, dscp: 46 }, packet);
      frames.push({ time: t, bytes: frameFor(v.linkType ?? 1, ip, v.vlans) });
    }
    frames.sort((x, y) => x.time - y.time);
    if (v.dtmfEvery) expect(frames.length).toBeGreaterThan(order.length);
    const bytes = v.ng
      ? writePcapng(frames, [{ linkType: v.linkType ?? 1, tsresol: 9 }])
      : writePcap(frames, { linkType: v.linkType ?? 1 });
    const file = join(dir, `${v.name.replace(/\W+/g, '-')}.pcap`);
    writeFileSync(file, bytes);
    const rows = await rtpStreams(file);
    expect(rows).toHaveLength(1);
    const r = analyzeCapture(memorySource(bytes), file);
    expect(compare(r, rows)).toEqual({});
    const s = r.streams[0]!;
    // Ground truth the generator knows: distinct packets sent, duplicates written.
    const distinct = new Set(order).size;
    expect(s.packets).toBe(order.length);
    expect(s.duplicates).toBe(order.length - distinct);
    expect(s.expected - s.lost).toBe(order.length);
    if (v.dtmfEvery) expect([s.foundBy, s.payloadTypes]).toEqual(['sdp', [v.payloadType, 101]]);
  });

  it('SIP over WebSocket (RFC 7118): every message counted as tshark counts it, its SDP finds the media', async () => {
    const client = { src: '192.0.2.10', dst: '198.51.100.20', srcPort: 50123, dstPort: 8088, dscp: 24 };
    const server = {
      src: client.dst,
      dst: client.src,
      srcPort: client.dstPort,
      dstPort: client.srcPort,
      dscp: 24,
    };
    /** One WebSocket frame (RFC 6455 §5.2); a client's frames are masked (§5.3). */
    const wsFrame = (payload: Buffer, o: { opcode?: number; fin?: boolean; mask?: boolean } = {}) => {
      const len = payload.length;
      const head = [((o.fin ?? true) ? 0x80 : 0) | (o.opcode ?? 1)];
      const maskBit = o.mask ? 0x80 : 0;
      if (len < 126) head.push(maskBit | len);
      else head.push(maskBit | 126, len >> 8, len & 255);
      if (!o.mask) return Buffer.concat([Buffer.from(head), payload]);
      const key = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
      return Buffer.concat([Buffer.from(head), key, Buffer.from(payload.map((b, i) => b ^ key[i & 3]!))]);
    };
    const invite = sipInvite({
      callId: 'ws-call@webrtc',
      from: 'sip:agent@example.net',
      to: 'sip:queue@example.net',
      mediaAddress: '192.0.2.10',
      mediaPort: 40000,
      payloadTypes: [0],
    });
    const ok = sipInvite({
      callId: 'ws-call@webrtc',
      from: 'sip:agent@example.net',
      to: 'sip:queue@example.net',
      mediaAddress: '198.51.100.20',
      mediaPort: 30000,
      payloadTypes: [0],
      response: 200,
    });
    const request = (m: string) => sipRequest(m, 'ws-call@webrtc');
    const trying = Buffer.from(
      ok
        .toString('latin1')
        .replace('SIP/2.0 200 OK', 'SIP/2.0 100 Trying')
        .replace(/\r\n\r\n[\s\S]*$/, '\r\n\r\n')
        .replace(/Content-Length: \d+/, 'Content-Length: 0'),
      'latin1',
    );
    // The INVITE in two fragments (RFC 6455 §5.4), the first frame split over two TCP segments.
    const half = 200;
    const inviteFrames = Buffer.concat([
      wsFrame(invite.subarray(0, half), { fin: false, mask: true }),
      wsFrame(invite.subarray(half), { opcode: 0, mask: true }),
    ]);
    const toServer = [
      Buffer.from(
        'GET /ws HTTP/1.1\r\nHost: 198.51.100.20:8088\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\nSec-WebSocket-Version: 13\r\n\r\n',
        'latin1',
      ),
      inviteFrames.subarray(0, 100),
      inviteFrames.subarray(100),
      wsFrame(Buffer.from('ping'), { opcode: 9, mask: true }),
      wsFrame(request('ACK'), { mask: true, opcode: 2 }),
      wsFrame(request('BYE'), { mask: true }),
    ];
    const toClient = [
      Buffer.from(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n',
        'latin1',
      ),
      wsFrame(trying),
      Buffer.concat([wsFrame(ok), wsFrame(Buffer.from('ping'), { opcode: 10 })]),
      wsFrame(
        Buffer.from(
          request('BYE')
            .toString('latin1')
            .replace('BYE sip:b@example.net SIP/2.0', 'SIP/2.0 200 OK')
            .replace('CSeq: 2 BYE', 'CSeq: 2 BYE'),
          'latin1',
        ),
      ),
    ];
    const frames: Frame[] = [];
    let t = 1_700_000_000;
    const advance = (dt: number) => {
      t += dt;
      return t;
    };
    const seq = { c: 1000, s: 5000 };
    frames.push({
      time: advance(0.001),
      bytes: frameFor(1, tcpPacket(client, seq.c++, new Uint8Array(0), 0x02)),
    });
    frames.push({
      time: advance(0.001),
      bytes: frameFor(1, tcpPacket(server, seq.s++, new Uint8Array(0), 0x12)),
    });
    const send = (e: typeof client, from: 'c' | 's', bytes: Buffer) => {
      frames.push({ time: advance(0.005), bytes: frameFor(1, tcpPacket(e, seq[from], bytes)) });
      seq[from] += bytes.length;
    };
    send(client, 'c', toServer[0]!);
    send(server, 's', toClient[0]!);
    send(client, 'c', toServer[1]!);
    send(client, 'c', toServer[2]!);
    send(server, 's', toClient[1]!);
    send(server, 's', toClient[2]!);
    send(client, 'c', toServer[3]!);
    send(client, 'c', toServer[4]!);
    // The call's media, where the SDP carried over the WebSocket said.
    const spec = { ssrc: 0x5eb50c7e, payloadType: 0, timestampStep: 160 };
    for (let n = 0; n < 200; n++) {
      const ip = udpPacket(
        { src: '198.51.100.20', dst: '192.0.2.10', srcPort: 30000, dstPort: 40000, dscp: 46 },
        rtpPacket(spec, n),
      );
      frames.push({ time: advance(0.02), bytes: frameFor(1, ip) });
    }
    send(client, 'c', toServer[5]!);
    send(server, 's', toClient[3]!);
    const bytes = writePcap(frames);
    const file = join(dir, 'sip-over-websocket.pcap');
    writeFileSync(file, bytes);

    const r = analyzeCapture(memorySource(bytes), file);
    // INVITE, 100, 200, ACK, BYE, 200: what the generator wrote, and what tshark counts.
    expect(r.sip.messages).toBe(6);
    expect((await tsharkStats(file)).sipMessages).toBe(6);
    expect(r.calls).toHaveLength(1);
    expect(r.calls[0]).toMatchObject({ callId: 'ws-call@webrtc' });
    expect(r.streams).toHaveLength(1);
    expect(r.streams[0]).toMatchObject({ foundBy: 'sdp', callId: 'ws-call@webrtc', packets: 200 });
    expect(r.sip.dscp).toEqual({ '24': 6 });
    expect(r.warnings).toEqual([]);
  });

  it('tshark itself reads the generated files as the formats claimed', () => {
    const out = execFileSync('capinfos', ['-t', '-E', join(dir, 'Linux-cooked-v2-pcapng-ns.pcap')], {
      encoding: 'utf8',
    });
    expect(out).toMatch(/pcapng/);
    expect(out).toMatch(/Linux cooked-mode capture v2/);
  });
});
