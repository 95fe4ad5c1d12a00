// RTP header (RFC 3550 §5.1), sequence accounting (§6.4.1, Appendix A.1/A.3) and interarrival
// jitter (§6.4.1, Appendix A.8).

export const RTP_HEADER_BYTES = 12;

export interface RtpHeader {
  version: number;
  padding: boolean;
  extension: boolean;
  csrcCount: number;
  marker: boolean;
  payloadType: number;
  sequence: number;
  timestamp: number;
  ssrc: number;
  /** Offset of the payload: after CSRCs and the header extension (§5.3.1). */
  payloadOffset: number;
  /** Payload length without padding (§5.1 P bit). */
  payloadLength: number;
}

/** Parses an RTP v2 header; returns undefined when the bytes cannot be one. */
export function parseRtpHeader(
  buf: Uint8Array,
  offset = 0,
  length = buf.length - offset,
): RtpHeader | undefined {
  if (length < RTP_HEADER_BYTES) return undefined;
  const b0 = buf[offset]!;
  const b1 = buf[offset + 1]!;
  const version = b0 >> 6;
  if (version !== 2) return undefined;
  const csrcCount = b0 & 0x0f;
  const extension = (b0 & 0x10) !== 0;
  const padding = (b0 & 0x20) !== 0;
  let payloadOffset = RTP_HEADER_BYTES + 4 * csrcCount;
  if (payloadOffset > length) return undefined;
  if (extension) {
    if (payloadOffset + 4 > length) return undefined;
    const words = (buf[offset + payloadOffset + 2]! << 8) | buf[offset + payloadOffset + 3]!;
    payloadOffset += 4 + 4 * words;
    if (payloadOffset > length) return undefined;
  }
  let payloadLength = length - payloadOffset;
  if (padding) {
    const pad = buf[offset + length - 1]!;
    if (pad === 0 || pad > payloadLength) return undefined;
    payloadLength -= pad;
  }
  return {
    version,
    padding,
    extension,
    csrcCount,
    marker: (b1 & 0x80) !== 0,
    payloadType: b1 & 0x7f,
    sequence: (buf[offset + 2]! << 8) | buf[offset + 3]!,
    timestamp:
      ((buf[offset + 4]! << 24) | (buf[offset + 5]! << 16) | (buf[offset + 6]! << 8) | buf[offset + 7]!) >>>
      0,
    ssrc:
      ((buf[offset + 8]! << 24) | (buf[offset + 9]! << 16) | (buf[offset + 10]! << 8) | buf[offset + 11]!) >>>
      0,
    payloadOffset: offset + payloadOffset,
    payloadLength,
  };
}

/** Writes a 12-byte RTP v2 header (no CSRC, no extension) at offset. */
export function writeRtpHeader(
  buf: Buffer,
  h: { marker?: boolean; payloadType: number; sequence: number; timestamp: number; ssrc: number },
  offset = 0,
): void {
  buf[offset] = 0x80;
  buf[offset + 1] = (h.marker ? 0x80 : 0) | (h.payloadType & 0x7f);
  buf.writeUInt16BE(h.sequence & 0xffff, offset + 2);
  buf.writeUInt32BE(h.timestamp >>> 0, offset + 4);
  buf.writeUInt32BE(h.ssrc >>> 0, offset + 8);
}

/**
 * Interarrival jitter, RFC 3550 §6.4.1 / A.8: J += (|D(i-1,i)| - J) / 16, where D is the
 * difference of relative transit times. Kept in milliseconds as a double (as Wireshark does) so
 * that it is comparable across clock rates; arrival times are in ms, RTP timestamps in clock units.
 */
export class JitterEstimator {
  jitterMs = 0;
  maxJitterMs = 0;
  /** Sum of J after each update, for a mean. */
  sumJitterMs = 0;
  updates = 0;
  private lastTransitMs = Number.NaN;

  constructor(private readonly clockRate: number) {}

  /** arrivalMs: receiver clock; rtpTimestamp: the packet's 32-bit media timestamp (unwrapped by caller or not). */
  update(arrivalMs: number, rtpTimestamp: number): void {
    const transitMs = arrivalMs - (rtpTimestamp * 1000) / this.clockRate;
    if (!Number.isNaN(this.lastTransitMs)) {
      let d = transitMs - this.lastTransitMs;
      // A 32-bit timestamp wrap shows as a jump of 2^32 clock units; fold it back.
      const wrapMs = (4294967296 * 1000) / this.clockRate;
      if (d > wrapMs / 2) d -= wrapMs;
      else if (d < -wrapMs / 2) d += wrapMs;
      this.observe(d);
    }
    this.lastTransitMs = transitMs;
  }

  /**
   * Feeds one transit-time difference D(i-1,i) in ms, for callers that compute D themselves
   * (e.g. the capture analyzer, which follows Wireshark's choice of reference packet).
   */
  observe(transitDiffMs: number): void {
    this.jitterMs += (Math.abs(transitDiffMs) - this.jitterMs) / 16;
    if (this.jitterMs > this.maxJitterMs) this.maxJitterMs = this.jitterMs;
    this.sumJitterMs += this.jitterMs;
    this.updates++;
  }
}

/** Packets may arrive up to this many sequence numbers before the first one seen and still count. */
const EARLY_WINDOW = 3000;

/**
 * Sequence accounting for one stream: extended sequence numbers across the 16-bit wrap (A.1),
 * expected/lost (A.3), duplicates, reorders and the longest run of consecutive losses.
 * A reordered packet fills its gap: it is counted as reordered, not as lost.
 */
export class SequenceTracker {
  received = 0;
  duplicates = 0;
  reordered = 0;
  /** Packets too far from the stream's window to place (a restart or garbage); not counted. */
  outOfWindow = 0;
  private maxExt = -1;
  private minExt = -1;
  private origin = 0;
  private seen: Uint8Array;
  /**
   * Longest loss run, kept as packets arrive: a packet beyond either end opens a gap of known
   * length, so it is exact until a late packet fills a gap (which may split the longest run);
   * only then does maxBurstLoss() walk the bitmap, once, and the result is kept again.
   */
  private burst = 0;
  private burstExact = true;

  /**
   * maxSpan bounds the sequence span tracked (the bitmap grows to maxSpan/8 bytes at most), and a
   * budget shared by many trackers bounds their growth together; packets that would need more are
   * counted in outOfWindow. Hostile input cannot make the trackers allocate more. initialBytes is
   * the bitmap's first size (it doubles as needed): smaller saves memory where there are thousands
   * of short streams.
   */
  constructor(
    private readonly maxSpan = Number.POSITIVE_INFINITY,
    private readonly budget?: { bytes: number },
    initialBytes = 1024,
  ) {
    this.seen = new Uint8Array(initialBytes);
  }

  /** Accepts a 16-bit sequence number. Returns 'new' | 'duplicate' | 'reordered' | 'ignored'. */
  add(seq: number): 'new' | 'duplicate' | 'reordered' | 'ignored' {
    let ext: number;
    if (this.maxExt < 0) {
      ext = seq + 65536 * 4; // room below the first packet for early arrivals across a wrap
      this.origin = ext - EARLY_WINDOW;
      this.maxExt = ext;
      this.minExt = ext;
      this.burst = 0;
      this.burstExact = true;
    } else {
      let delta = seq - (this.maxExt & 0xffff);
      if (delta > 32767) delta -= 65536;
      else if (delta < -32768) delta += 65536;
      ext = this.maxExt + delta;
      if (ext < this.origin || ext - this.origin >= this.maxSpan) {
        this.outOfWindow++;
        return 'ignored';
      }
    }
    const index = ext - this.origin;
    if (!this.ensure(index)) {
      this.outOfWindow++;
      return 'ignored';
    }
    const byte = index >> 3;
    const bit = 1 << (index & 7);
    if ((this.seen[byte]! & bit) !== 0) {
      this.duplicates++;
      return 'duplicate';
    }
    this.seen[byte]! |= bit;
    this.received++;
    if (ext > this.maxExt) {
      this.burst = Math.max(this.burst, ext - this.maxExt - 1);
      this.maxExt = ext;
      return 'new';
    }
    if (ext < this.minExt) {
      this.burst = Math.max(this.burst, this.minExt - ext - 1);
      this.minExt = ext;
    } else if (ext !== this.maxExt) this.burstExact = false; // filled a gap
    if (ext === this.maxExt && this.received === 1) return 'new';
    this.reordered++;
    return 'reordered';
  }

  private ensure(index: number): boolean {
    const need = (index >> 3) + 1;
    if (need <= this.seen.length) return true;
    let size = this.seen.length;
    while (size < need) size *= 2;
    if (this.budget) {
      if (this.budget.bytes < size - this.seen.length) return false;
      this.budget.bytes -= size - this.seen.length;
    }
    const grown = new Uint8Array(size);
    grown.set(this.seen);
    this.seen = grown;
    return true;
  }

  /** Expected count from the lowest to the highest extended sequence seen (A.3). */
  get expected(): number {
    return this.maxExt < 0 ? 0 : this.maxExt - this.minExt + 1;
  }

  /** Distinct sequence numbers missing between the lowest and highest seen. */
  get lost(): number {
    return this.expected - this.received;
  }

  /** Highest extended sequence seen, relative to the first packet (0 = first). */
  get highestOffset(): number {
    return this.maxExt < 0 ? -1 : this.maxExt - (this.origin + EARLY_WINDOW);
  }

  /**
   * maxBurstLoss() without a walk: exact when `maxBurstLossExact`, else an upper bound (a late
   * packet can only shorten a run).
   */
  get maxBurstLossBound(): number {
    return this.maxExt < 0 ? 0 : this.burst;
  }

  get maxBurstLossExact(): boolean {
    return this.burstExact;
  }

  /** Longest run of consecutive missing sequence numbers (O(1) unless a late packet filled a gap). */
  maxBurstLoss(): number {
    if (this.maxExt < 0) return 0;
    if (!this.burstExact) {
      this.burst = this.walkBurst();
      this.burstExact = true;
    }
    return this.burst;
  }

  /** The longest run of clear bits from minExt to maxExt; whole bytes at a time where it can. */
  private walkBurst(): number {
    const first = this.minExt - this.origin;
    const last = this.maxExt - this.origin;
    let longest = 0;
    let run = 0;
    let i = first;
    while (i <= last) {
      const byte = this.seen[i >> 3]!;
      if ((i & 7) === 0 && i + 7 <= last && (byte === 0 || byte === 0xff)) {
        run = byte === 0 ? run + 8 : 0;
        i += 8;
      } else {
        run = (byte & (1 << (i & 7))) === 0 ? run + 1 : 0;
        i++;
      }
      if (run > longest) longest = run;
    }
    return longest;
  }
}
