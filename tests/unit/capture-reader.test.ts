import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { memorySource, readCapture } from '../../src/capture/reader.js';
import { UserError } from '../../src/errors.js';
import { type Frame, writePcap, writePcapng } from '../helpers/pcap-writer.js';

interface Seen {
  linkType: number;
  length: number;
  relMs: number;
  epochS: number;
  first: number;
}

function read(bytes: Uint8Array) {
  const seen: Seen[] = [];
  const summary = readCapture(
    memorySource(bytes),
    'test.pcap',
    (linkType, data, off, capLen, _o, { relMs, epochS }) =>
      seen.push({ linkType, length: capLen, relMs, epochS, first: data[off]! }),
  );
  return { seen, summary };
}

const frames: Frame[] = [
  { time: 1000.000001, bytes: new Uint8Array([1, 2, 3]) },
  { time: 1000.020002, bytes: new Uint8Array(100).fill(7) },
  { time: 1001.5, bytes: new Uint8Array([9]) },
];

describe('pcap reader', () => {
  for (const nanoseconds of [false, true])
    for (const bigEndian of [false, true])
      it(`reads ${nanoseconds ? 'ns' : 'µs'} ${bigEndian ? 'big' : 'little'}-endian pcap`, () => {
        const { seen, summary } = read(writePcap(frames, { nanoseconds, bigEndian, linkType: 113 }));
        expect(summary).toMatchObject({ format: 'pcap', packets: 3, warnings: [] });
        expect(seen.map((s) => [s.linkType, s.length, s.first])).toEqual([
          [113, 3, 1],
          [113, 100, 7],
          [113, 1, 9],
        ]);
        expect(seen[1]!.relMs).toBeCloseTo(20.001, 6);
        expect(seen[2]!.relMs).toBeCloseTo(1499.999, 6);
        expect(seen[0]!.epochS).toBeCloseTo(1000.000001, 6);
      });

  it('warns and keeps what it read when the file is cut in a packet', () => {
    const whole = writePcap(frames);
    const { summary } = read(whole.subarray(0, whole.length - 1));
    expect(summary.packets).toBe(2);
    expect(summary.warnings[0]).toMatch(/cut short in the middle of packet 3; analysed the 2 packets/);
  });

  it('stops at an absurd record length instead of allocating it', () => {
    const whole = writePcap(frames);
    whole.writeUInt32LE(0x7fffffff, 24 + 16 + 3 + 8); // second record's captured length
    const { summary } = read(whole);
    expect(summary.packets).toBe(1);
    expect(summary.warnings[0]).toMatch(/claims 2147483647 bytes .* damaged file/);
  });

  it('reads records longer than the snapshot length with a warning', () => {
    const { summary } = read(writePcap(frames, { snapLen: 50 }));
    expect(summary.packets).toBe(3);
    expect(summary.warnings[0]).toMatch(/longer \(100 bytes\) than the snapshot length 50/);
  });

  it('rejects what is no capture with one clear line', () => {
    const err = (bytes: Uint8Array) => {
      try {
        read(bytes);
      } catch (e) {
        expect(e).toBeInstanceOf(UserError);
        return (e as Error).message;
      }
      throw new Error('expected a UserError');
    };
    expect(err(new Uint8Array(0))).toBe('test.pcap: empty file, not a pcap or pcapng capture');
    expect(err(Buffer.from('GET / HTTP/1.1\r\n'))).toBe(
      "test.pcap: not a pcap or pcapng file (starts with 'GET ')",
    );
    expect(err(Buffer.from([0xd4, 0xc3]))).toMatch(/too short/);
    expect(err(gzipSync(writePcap(frames)))).toBe(
      'test.pcap: is gzip-compressed; decompress it first, e.g. gunzip -c test.pcap | voipready analyze -',
    );
    expect(err(writePcap([]).subarray(0, 20))).toMatch(/file header cut short/);
  });

  it('refuses a valid header followed by nothing readable as a damaged file; a bare header is an empty capture', () => {
    const err = (bytes: Uint8Array) => {
      try {
        read(bytes);
      } catch (e) {
        expect(e).toBeInstanceOf(UserError);
        return (e as Error).message;
      }
      throw new Error('expected a UserError');
    };
    const junk = Buffer.from('not a record, not a packet at all');
    expect(err(Buffer.concat([writePcap([]), junk]))).toBe(
      'test.pcap: damaged pcap file: nothing readable after its header (record 1 at byte 24 claims 1685221219 bytes (more than 262144))',
    );
    expect(err(Buffer.concat([writePcap([]), junk.subarray(0, 5)]))).toBe(
      'test.pcap: damaged pcap file: nothing readable after its header (cut short in a record header after 0 packets)',
    );
    expect(err(Buffer.concat([writePcapng([], [{ linkType: 1 }]), junk]))).toMatch(
      /^test\.pcap: damaged pcapng file: nothing readable after its header \(block of type 0x[0-9a-f]+ with a bad length \(\d+\) at byte 48\)$/,
    );
    // Damage after at least one packet is analysed up to there, with a warning (tested above).
    expect(read(writePcap([])).summary).toEqual({ format: 'pcap', packets: 0, warnings: [] });
  });
});

describe('pcapng reader', () => {
  it('reads several interfaces with their own timestamp resolution, skipping unknown blocks', () => {
    const ng = writePcapng(
      [
        { time: 1000.000001, bytes: new Uint8Array([1]), iface: 0 },
        { time: 1000.000001234, bytes: new Uint8Array([2, 2]), iface: 1 },
        { time: 1000.25, bytes: new Uint8Array([3, 3, 3]), iface: 2 },
      ],
      [{ linkType: 1 }, { linkType: 113, tsresol: 9 }, { linkType: 101, tsresol: 0x80 | 20 }],
      { unknownBlocks: true },
    );
    const { seen, summary } = read(ng);
    expect(summary).toMatchObject({ format: 'pcapng', packets: 3, warnings: [] });
    expect(seen.map((s) => [s.linkType, s.length])).toEqual([
      [1, 1],
      [113, 2],
      [101, 3],
    ]);
    expect(seen[1]!.relMs).toBeCloseTo(0.000234, 6);
    expect(seen[2]!.relMs).toBeCloseTo(249.999, 3);
  });

  it('reads big-endian sections and applies if_tsoffset', () => {
    const ng = writePcapng(frames, [{ linkType: 113, tsresol: 9 }], { bigEndian: true, tsOffsetS: 900 });
    expect(ng.readUInt32BE(8)).toBe(0x1a2b3c4d);
    const { seen, summary } = read(ng);
    expect(summary).toMatchObject({ format: 'pcapng', packets: 3, warnings: [] });
    expect(seen.map((s) => [s.linkType, s.length])).toEqual([
      [113, 3],
      [113, 100],
      [113, 1],
    ]);
    expect(seen[0]!.epochS).toBeCloseTo(1000.000001, 6); // 100 s stamped + 900 s offset
    expect(seen[1]!.relMs).toBeCloseTo(20.001, 6);
  });

  it('reads Simple Packet Blocks', () => {
    const { seen, summary } = read(writePcapng(frames, [{ linkType: 1 }], { simple: true }));
    expect(summary.packets).toBe(3);
    expect(seen.map((s) => s.length)).toEqual([3, 100, 1]);
  });

  it('stops with a warning at a block with a bad length', () => {
    const ng = writePcapng(frames);
    // SHB (28) + IDB (20) + first EPB (32 + 4): corrupt the second EPB's length.
    ng.writeUInt32LE(13, 28 + 20 + 36 + 4);
    const { summary } = read(ng);
    expect(summary.packets).toBe(1);
    expect(summary.warnings[0]).toMatch(/bad length \(13\).*analysed the 1 packets/);
  });

  it('stops with a warning at a block longer than the file', () => {
    const ng = writePcapng(frames);
    const { summary } = read(ng.subarray(0, ng.length - 2));
    expect(summary.packets).toBe(2);
    expect(summary.warnings[0]).toMatch(/cut short in a block/);
  });
});
