// Streaming reader for classic pcap and pcapng capture files. It reads fixed-size chunks into one
// reused buffer and hands each record to a callback as (buffer, offset, length) — no per-packet
// allocation, so memory stays flat whatever the file size.
// Formats: pcap (https://www.tcpdump.org/manpages/pcap-savefile.5.html; draft-ietf-opsawg-pcap)
// and pcapng (draft-ietf-opsawg-pcapng: SHB, IDB, EPB, SPB, obsolete PB; other blocks skipped).
import { closeSync, openSync, readSync } from 'node:fs';
import { UserError } from '../errors.js';

export type CaptureFormat = 'pcap' | 'pcapng';

/** Where bytes come from: a file descriptor (file or stdin) or memory (tests, fuzzing). */
export interface ByteSource {
  /** Fills buf[offset..offset+length) as far as possible; returns bytes read, 0 at the end. */
  read(buf: Uint8Array, offset: number, length: number): number;
  close(): void;
}

export function memorySource(bytes: Uint8Array): ByteSource {
  let pos = 0;
  return {
    read(buf, offset, length) {
      const n = Math.min(length, bytes.length - pos);
      buf.set(bytes.subarray(pos, pos + n), offset);
      pos += n;
      return n;
    },
    close() {},
  };
}

/** Opens a file, or stdin for "-". Unreadable files are the user's problem: UserError. */
export function fileSource(path: string): ByteSource {
  let fd: number;
  if (path === '-') fd = 0;
  else {
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw new UserError(`${path}: cannot open (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  return {
    read(buf, offset, length) {
      for (;;) {
        try {
          return readSync(fd, buf, offset, length, null);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN') {
            // A non-blocking stdin pipe with no data yet: wait a little and retry.
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
            continue;
          }
          if (code === 'EOF') return 0;
          if (code === 'EISDIR') throw new UserError(`${path}: is a directory`);
          throw new UserError(`${path}: read failed (${code ?? String(err)})`);
        }
      }
    },
    close() {
      if (fd !== 0) closeSync(fd);
    },
  };
}

/**
 * A packet's time. The reader updates one such object in place for every packet rather than
 * passing the times as arguments: a double argument is boxed on the heap by a call the optimiser
 * does not inline, 32 bytes of garbage per packet.
 */
export interface PacketTime {
  /** Time since the first packet of the file, in ms (like Wireshark's frame.time_relative). */
  relMs: number;
  /** Seconds since the Unix epoch. */
  epochS: number;
}

/** Receives each packet. data[offset..offset+capLen) and time are only valid during the call. */
export type PacketHandler = (
  linkType: number,
  data: Uint8Array,
  offset: number,
  capLen: number,
  origLen: number,
  time: PacketTime,
) => void;

export interface ReadSummary {
  format: CaptureFormat;
  packets: number;
  /** Damage found: reading stopped there; everything before it was analysed. */
  warnings: string[];
}

const CHUNK = 1 << 20;
/** Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD: larger pcap records are damage, not packets. */
export const MAX_PCAP_RECORD = 262144;
/** pcapng blocks larger than this are damage (Wireshark caps blocks at 16 MiB as well). */
export const MAX_PCAPNG_BLOCK = 16 * 1024 * 1024;
const MAX_INTERFACES = 4096;

/** A window over the source: keeps unread bytes contiguous and refills in chunks. */
class Window {
  buf = new Uint8Array(CHUNK * 2);
  start = 0;
  end = 0;
  eof = false;
  /** Bytes consumed before buf[start]. */
  consumed = 0;
  constructor(private readonly source: ByteSource) {}

  get available(): number {
    return this.end - this.start;
  }

  /** Makes at least n bytes available unless the source ends; returns whether it could. */
  need(n: number): boolean {
    if (this.end - this.start >= n) return true;
    if (this.eof) return false;
    if (this.start + n > this.buf.length) {
      if (n > this.buf.length) {
        const grown = new Uint8Array(Math.max(n, this.buf.length * 2));
        grown.set(this.buf.subarray(this.start, this.end));
        this.buf = grown;
      } else this.buf.copyWithin(0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
    while (this.end - this.start < n) {
      const want = Math.max(this.buf.length - this.end, 0);
      const got = want > 0 ? this.source.read(this.buf, this.end, want) : 0;
      if (got <= 0) {
        this.eof = true;
        return false;
      }
      this.end += got;
    }
    return true;
  }

  skip(n: number): void {
    this.start += n;
    this.consumed += n;
  }

  get position(): number {
    return this.consumed;
  }
}

function describeStart(bytes: Uint8Array, n: number): string {
  const printable = Array.from(bytes.subarray(0, Math.min(n, 4)))
    .map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`))
    .join('');
  return `starts with '${printable}'`;
}

/**
 * A valid file header followed by nothing but damage is a damaged file, not an empty capture: a
 * verdict of "every check unknown" would hide that. One line, like any unreadable input. (A file
 * that ends cleanly after its header is an empty capture and is analysed as one.)
 */
function refuseIfNothingRead(summary: ReadSummary, name: string): ReadSummary {
  if (summary.packets > 0 || summary.warnings.length === 0) return summary;
  const damage = summary.warnings[0]!.slice(name.length + 2).replace(/(: damaged file)?; analysed .*$/, '');
  throw new UserError(
    `${name}: damaged ${summary.format} file: nothing readable after its header (${damage})`,
  );
}

/** Reads the whole source, calling onPacket for each record. Throws UserError when it is no capture. */
export function readCapture(source: ByteSource, name: string, onPacket: PacketHandler): ReadSummary {
  const w = new Window(source);
  try {
    if (!w.need(4)) {
      if (w.available === 0) throw new UserError(`${name}: empty file, not a pcap or pcapng capture`);
      throw new UserError(`${name}: too short to be a pcap or pcapng file (${w.available} bytes)`);
    }
    const b = w.buf;
    const s = w.start;
    const magicBE = ((b[s]! << 24) | (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!) >>> 0;
    if (magicBE === 0x0a0d0d0a) return refuseIfNothingRead(readPcapng(w, name, onPacket), name);
    if (magicBE === 0xa1b2c3d4 || magicBE === 0xd4c3b2a1 || magicBE === 0xa1b23c4d || magicBE === 0x4d3cb2a1)
      return refuseIfNothingRead(readPcap(w, name, magicBE, onPacket), name);
    if (b[s] === 0x1f && b[s + 1] === 0x8b)
      throw new UserError(
        `${name}: is gzip-compressed; decompress it first, e.g. gunzip -c ${name} | voipready analyze -`,
      );
    throw new UserError(`${name}: not a pcap or pcapng file (${describeStart(b.subarray(s), w.available)})`);
  } finally {
    source.close();
  }
}

function u32(b: Uint8Array, i: number, le: boolean): number {
  return le
    ? (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0
    : ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}

function u16(b: Uint8Array, i: number, le: boolean): number {
  return le ? b[i]! | (b[i + 1]! << 8) : (b[i]! << 8) | b[i + 1]!;
}

function readPcap(w: Window, name: string, magicBE: number, onPacket: PacketHandler): ReadSummary {
  const warnings: string[] = [];
  if (!w.need(24)) throw new UserError(`${name}: pcap file header cut short (${w.available} of 24 bytes)`);
  // The magic as read big-endian tells the byte order: swapped magics mean little-endian fields.
  const le = magicBE === 0xd4c3b2a1 || magicBE === 0x4d3cb2a1;
  const nano = magicBE === 0xa1b23c4d || magicBE === 0x4d3cb2a1;
  const fracPerMs = nano ? 1e6 : 1e3;
  let b = w.buf;
  const snapLen = u32(b, w.start + 16, le);
  const linkType = u32(b, w.start + 20, le) & 0x0fffffff; // upper bits: FCS info (pcap-savefile)
  w.skip(24);
  let packets = 0;
  let sec0 = 0;
  let frac0 = 0;
  const time: PacketTime = { relMs: 0, epochS: 0 };
  let warnedSnap = false;
  for (;;) {
    if (!w.need(16)) {
      if (w.available > 0)
        warnings.push(`${name}: cut short in a record header after ${packets} packets; analysed up to there`);
      break;
    }
    b = w.buf;
    const h = w.start;
    const sec = u32(b, h, le);
    const frac = u32(b, h + 4, le);
    const capLen = u32(b, h + 8, le);
    const origLen = u32(b, h + 12, le);
    if (capLen > MAX_PCAP_RECORD) {
      warnings.push(
        `${name}: record ${packets + 1} at byte ${w.position} claims ${capLen} bytes (more than ${MAX_PCAP_RECORD}): damaged file; analysed the ${packets} packets before it`,
      );
      break;
    }
    if (capLen > snapLen && snapLen > 0 && !warnedSnap) {
      warnedSnap = true;
      warnings.push(
        `${name}: record ${packets + 1} is longer (${capLen} bytes) than the snapshot length ${snapLen}; read anyway`,
      );
    }
    if (!w.need(16 + capLen)) {
      warnings.push(
        `${name}: cut short in the middle of packet ${packets + 1}; analysed the ${packets} packets before it`,
      );
      break;
    }
    b = w.buf;
    if (packets === 0) {
      sec0 = sec;
      frac0 = frac;
    }
    packets++;
    time.relMs = (sec - sec0) * 1000 + (frac - frac0) / fracPerMs;
    time.epochS = sec + frac / (fracPerMs * 1000);
    onPacket(linkType, b, w.start + 16, capLen, origLen, time);
    w.skip(16 + capLen);
  }
  return { format: 'pcap', packets, warnings };
}

interface Interface {
  linkType: number;
  /** Timestamp units per second (if_tsresol), and whether it is a power of 10. */
  unitsPerSecond: number;
  offsetS: number;
}

// Scratch results of splitTimestamp: whole seconds and the remaining units.
let tsSec = 0;
let tsRem = 0;

/**
 * Splits a 64-bit timestamp (high, low) in units of 1/d s into seconds and remainder exactly,
 * by long division in 16-bit digits (doubles stay exact below 2^53).
 */
function splitTimestamp(high: number, low: number, d: number): void {
  if (d > 2 ** 36) {
    const units = high * 4294967296 + low;
    tsSec = Math.floor(units / d);
    tsRem = units - tsSec * d;
    return;
  }
  const q1 = Math.floor(high / d);
  let r = high - q1 * d;
  let x = r * 65536 + (low >>> 16);
  const q2 = Math.floor(x / d);
  r = x - q2 * d;
  x = r * 65536 + (low & 0xffff);
  const q3 = Math.floor(x / d);
  tsRem = x - q3 * d;
  tsSec = q1 * 4294967296 + q2 * 65536 + q3;
}

function readPcapng(w: Window, name: string, onPacket: PacketHandler): ReadSummary {
  const warnings: string[] = [];
  let le = true;
  let interfaces: Interface[] = [];
  let packets = 0;
  let first = true;
  let sec0 = 0;
  let rem0 = 0;
  const time: PacketTime = { relMs: 0, epochS: 0 };
  let unknownInterfaceWarned = false;
  const damage = (what: string) => {
    warnings.push(`${name}: ${what} at byte ${w.position}; analysed the ${packets} packets before it`);
  };
  for (;;) {
    if (!w.need(12)) {
      if (w.available > 0) damage('cut short in a block header');
      break;
    }
    let b = w.buf;
    let s = w.start;
    const typeRaw = ((b[s]! << 24) | (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!) >>> 0;
    if (typeRaw === 0x0a0d0d0a) {
      // Section Header Block: its byte-order magic sets the endianness of the whole section.
      const bom = u32(b, s + 8, false);
      if (bom === 0x1a2b3c4d) le = false;
      else if (bom === 0x4d3c2b1a) le = true;
      else {
        if (packets === 0 && w.position === 0)
          throw new UserError(`${name}: pcapng section header has a bad byte-order magic`);
        damage('section header with a bad byte-order magic');
        break;
      }
      interfaces = [];
    }
    const type = u32(b, s, le);
    const len = u32(b, s + 4, le);
    if (len < 12 || len % 4 !== 0 || len > MAX_PCAPNG_BLOCK) {
      if (packets === 0 && w.position === 0)
        throw new UserError(`${name}: pcapng section header has a bad length (${len})`);
      damage(`block of type 0x${type.toString(16)} with a bad length (${len})`);
      break;
    }
    if (!w.need(len)) {
      damage(`cut short in a block of ${len} bytes`);
      break;
    }
    b = w.buf;
    s = w.start;
    if (u32(b, s + len - 4, le) !== len) {
      damage(`block of type 0x${type.toString(16)} whose trailing length disagrees (${len})`);
      break;
    }
    if (type === 1) {
      if (len < 20) {
        damage('interface description block too short');
        break;
      }
      if (interfaces.length < MAX_INTERFACES) interfaces.push(readInterface(b, s, len, le));
    } else if (type === 6 || type === 2 || type === 3) {
      let ifIndex = 0;
      let capLen: number;
      let origLen: number;
      let dataOff: number;
      let high = -1;
      let low = 0;
      if (type === 3) {
        // Simple Packet Block: no interface id (interface 0), no timestamp, no captured length.
        origLen = u32(b, s + 8, le);
        capLen = Math.min(origLen, len - 16);
        dataOff = s + 12;
      } else {
        if (len < 32) {
          damage('packet block too short');
          break;
        }
        ifIndex = type === 6 ? u32(b, s + 8, le) : u16(b, s + 8, le);
        high = u32(b, s + 12, le);
        low = u32(b, s + 16, le);
        capLen = u32(b, s + 20, le);
        origLen = u32(b, s + 24, le);
        dataOff = s + 28;
        if (capLen > len - 32) {
          damage(`packet block whose captured length ${capLen} overruns the block`);
          break;
        }
      }
      const iface = interfaces[ifIndex];
      if (!iface) {
        if (!unknownInterfaceWarned) {
          unknownInterfaceWarned = true;
          warnings.push(`${name}: packet refers to interface ${ifIndex}, which was never described; skipped`);
        }
      } else {
        // A packet without a timestamp (SPB) keeps the previous packet's time.
        if (high >= 0) {
          // if_tsresol units; relative time from the first packet, exact to the unit.
          splitTimestamp(high, low, iface.unitsPerSecond);
          const sec = tsSec + iface.offsetS;
          const remNs = (tsRem * 1e9) / iface.unitsPerSecond;
          if (first) {
            first = false;
            sec0 = sec;
            rem0 = remNs;
          }
          time.relMs = (sec - sec0) * 1000 + (remNs - rem0) / 1e6;
          time.epochS = sec + remNs / 1e9;
        }
        packets++;
        onPacket(iface.linkType, b, dataOff, capLen, origLen, time);
      }
    }
    w.skip(len);
  }
  return { format: 'pcapng', packets, warnings };
}

/** Interface Description Block: link type, and the if_tsresol (9) / if_tsoffset (14) options. */
function readInterface(b: Uint8Array, s: number, len: number, le: boolean): Interface {
  const iface: Interface = { linkType: u16(b, s + 8, le), unitsPerSecond: 1e6, offsetS: 0 };
  let o = s + 16;
  const end = s + len - 4;
  while (o + 4 <= end) {
    const code = u16(b, o, le);
    const optLen = u16(b, o + 2, le);
    if (code === 0 || o + 4 + optLen > end) break;
    if (code === 9 && optLen >= 1) {
      const r = b[o + 4]!;
      // High bit clear: 10^-r seconds; set: 2^-(r & 0x7f). Unusable resolutions keep the default.
      const units = r & 0x80 ? 2 ** (r & 0x7f) : 10 ** r;
      if (units >= 1 && units <= 1e18) iface.unitsPerSecond = units;
    } else if (code === 14 && optLen >= 8) {
      // A 64-bit integer in the section's byte order.
      const first = u32(b, o + 4, le);
      const second = u32(b, o + 8, le);
      iface.offsetS = le ? second * 4294967296 + first : first * 4294967296 + second;
    }
    o += 4 + ((optLen + 3) & ~3);
  }
  return iface;
}
