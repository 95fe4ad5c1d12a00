// RTCP compound packets (RFC 3550 §6.4: SR, RR and their report blocks) and RTCP XR VoIP metrics
// (RFC 3611 §4.7), read just far enough to show the endpoints' own view beside ours.

export interface ReportBlock {
  /** Whose report this is, and about which media source. */
  reporterSsrc: number;
  sourceSsrc: number;
  fractionLost: number;
  cumulativeLost: number;
  extendedHighestSeq: number;
  /** Interarrival jitter in RTP timestamp units. */
  jitter: number;
  lsr: number;
  dlsr: number;
}

export interface SenderReport {
  ssrc: number;
  /** Middle 32 bits of the NTP timestamp: what a later report's LSR refers to (§6.4.1). */
  ntpMiddle: number;
}

export interface XrVoipMetrics {
  reporterSsrc: number;
  sourceSsrc: number;
  /** Fractions of packets lost / discarded, in 1/256 (RFC 3611 §4.7.1). */
  lossRate: number;
  discardRate: number;
  /** ms; 0 means unavailable. */
  roundTripDelayMs: number;
  endSystemDelayMs: number;
  /** 127 means unavailable. */
  rFactor: number;
  /** MOS × 10; 127 means unavailable. */
  mosLq: number;
  mosCq: number;
}

export interface RtcpContents {
  senderReports: SenderReport[];
  reportBlocks: ReportBlock[];
  xr: XrVoipMetrics[];
}

const u32 = (b: Uint8Array, i: number) =>
  ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
const u16 = (b: Uint8Array, i: number) => (b[i]! << 8) | b[i + 1]!;

/**
 * Whether a datagram is an RTCP compound packet: version 2, a known packet type (200–207) and
 * lengths that add up exactly to the datagram (§6.1: the packets of a compound are stacked).
 */
export function isRtcp(b: Uint8Array, off: number, len: number): boolean {
  if (len < 8) return false;
  const pt = b[off + 1]!;
  if (b[off]! >> 6 !== 2 || pt < 200 || pt > 207) return false;
  let o = 0;
  for (let n = 0; n < 32 && o < len; n++) {
    if (len - o < 4 || b[off + o]! >> 6 !== 2) return false;
    o += (u16(b, off + o + 2) + 1) * 4;
  }
  return o === len;
}

/** Reads SR/RR report blocks and XR VoIP metrics from a compound packet known to be RTCP. */
export function parseRtcp(b: Uint8Array, off: number, len: number): RtcpContents {
  const out: RtcpContents = { senderReports: [], reportBlocks: [], xr: [] };
  let o = off;
  const end = off + len;
  while (end - o >= 4) {
    const count = b[o]! & 0x1f;
    const pt = b[o + 1]!;
    const next = o + (u16(b, o + 2) + 1) * 4;
    if (next > end) break;
    if ((pt === 200 || pt === 201) && next - o >= 8) {
      const reporter = u32(b, o + 4);
      let blocks = o + 8;
      if (pt === 200) {
        if (next - o < 28) break;
        out.senderReports.push({
          ssrc: reporter,
          ntpMiddle: ((u16(b, o + 10) << 16) | u16(b, o + 12)) >>> 0,
        });
        blocks = o + 28;
      }
      for (let i = 0; i < count && blocks + 24 <= next; i++, blocks += 24) {
        // Cumulative lost is a signed 24-bit number (§6.4.1; duplicates can make it negative).
        const raw = (b[blocks + 5]! << 16) | (b[blocks + 6]! << 8) | b[blocks + 7]!;
        out.reportBlocks.push({
          reporterSsrc: reporter,
          sourceSsrc: u32(b, blocks),
          fractionLost: b[blocks + 4]! / 256,
          cumulativeLost: raw & 0x800000 ? raw - 0x1000000 : raw,
          extendedHighestSeq: u32(b, blocks + 8),
          jitter: u32(b, blocks + 12),
          lsr: u32(b, blocks + 16),
          dlsr: u32(b, blocks + 20),
        });
      }
    } else if (pt === 207 && next - o >= 8) {
      const reporter = u32(b, o + 4);
      let x = o + 8;
      while (next - x >= 4) {
        const blockType = b[x]!;
        const blockEnd = x + 4 + u16(b, x + 2) * 4;
        if (blockEnd > next) break;
        if (blockType === 7 && blockEnd - x >= 36) {
          out.xr.push({
            reporterSsrc: reporter,
            sourceSsrc: u32(b, x + 4),
            lossRate: b[x + 8]! / 256,
            discardRate: b[x + 9]! / 256,
            roundTripDelayMs: u16(b, x + 16),
            endSystemDelayMs: u16(b, x + 18),
            rFactor: b[x + 24]!,
            mosLq: b[x + 26]!,
            mosCq: b[x + 27]!,
          });
        }
        x = blockEnd;
      }
    }
    o = next;
  }
  return out;
}
