// Per-stream RTP analysis that agrees with Wireshark's `-z rtp,streams` (tshark 4.0): lost,
// max/mean jitter and max delta follow its definitions (see docs/analyze.md, "Agreement with
// tshark"); duplicates, reorders and loss bursts come from the kernel's SequenceTracker. The
// interarrival jitter itself is RFC 3550 §6.4.1 / A.8, through the kernel's JitterEstimator.
import { JitterEstimator, SequenceTracker } from '../rtp.js';

/** Sequence span tracked per stream for duplicates/reorders: 2^23 numbers, a 1 MiB bitmap at most. */
export const MAX_SEQUENCE_SPAN = 1 << 23;

/**
 * A stream's first bitmap: 4096 sequence numbers, the kernel tracker's 3000 early ones and the first
 * ~1000 packets (20 s at 50 packets/s); it doubles as a stream goes on. Half the tracker's default,
 * which matters with thousands of short streams.
 */
export const FIRST_SEQUENCE_BITMAP_BYTES = 512;

// RFC 3551 §6 Table 4/5: payload type → encoding name and clock rate (static assignments).
const STATIC_PT: Record<number, [string, number, 'audio' | 'video']> = {
  0: ['PCMU', 8000, 'audio'],
  3: ['GSM', 8000, 'audio'],
  4: ['G723', 8000, 'audio'],
  5: ['DVI4', 8000, 'audio'],
  6: ['DVI4', 16000, 'audio'],
  7: ['LPC', 8000, 'audio'],
  8: ['PCMA', 8000, 'audio'],
  9: ['G722', 8000, 'audio'],
  10: ['L16', 44100, 'audio'],
  11: ['L16', 44100, 'audio'],
  12: ['QCELP', 8000, 'audio'],
  13: ['CN', 8000, 'audio'],
  14: ['MPA', 90000, 'audio'],
  15: ['G728', 8000, 'audio'],
  16: ['DVI4', 11025, 'audio'],
  17: ['DVI4', 22050, 'audio'],
  18: ['G729', 8000, 'audio'],
  19: ['CN', 8000, 'audio'],
  25: ['CelB', 90000, 'video'],
  26: ['JPEG', 90000, 'video'],
  28: ['nv', 90000, 'video'],
  31: ['H261', 90000, 'video'],
  32: ['MPV', 90000, 'video'],
  33: ['MP2T', 90000, 'video'],
  34: ['H263', 90000, 'video'],
};

export function staticPayload(
  pt: number,
): { encoding: string; clockRate: number; media: 'audio' | 'video' } | null {
  const e = STATIC_PT[pt];
  return e ? { encoding: e[0], clockRate: e[1], media: e[2] } : null;
}

/** What SDP said a dynamic payload type is: encoding name and clock rate (a=rtpmap). */
export interface PayloadMapping {
  encoding: string;
  clockRate: number;
}

const PT_CN = 13;
const PT_CN_OLD = 19;

/**
 * The clock Wireshark uses for a packet: static table, else the SDP rtpmap; 0 (= do not compute
 * jitter) for unknown dynamic types and for telephone-event (RFC 4733 §2.2.1: its timestamp does
 * not advance). Wireshark divides by clock/1000 in integer arithmetic; callers keep that quirk.
 */
export function analysisClockRate(pt: number, mapping: PayloadMapping | undefined): number {
  if (pt < 96) return STATIC_PT[pt]?.[1] ?? 0;
  if (!mapping) return 0;
  if (mapping.encoding.toLowerCase().startsWith('telephone-event')) return 0;
  return mapping.clockRate;
}

/**
 * One RTP packet as add() reads it. The analyzer fills one such object per packet rather than
 * passing the fields as arguments: a call the optimiser does not inline boxes a time (a double) or
 * a timestamp above 2^30 on the heap, garbage on every packet.
 */
export interface RtpPacketFields {
  /** Capture time, ms. */
  relMs: number;
  seq: number;
  /** The 32-bit RTP timestamp. */
  ts: number;
  marker: boolean;
  pt: number;
}

/** One RTP stream: one SSRC on one (source, destination) address/port pair. */
export class RtpStreamStats {
  packets = 0;
  /**
   * Steps from one packet's sequence number to the next that look like RTP: forward or back by at
   * most 1000, or a repeat; and of those, the forward ones. Random bytes that happen to start with
   * version 2 rarely step like that (≈ 3 %), and fixed fields never step forward.
   */
  plausibleSteps = 0;
  forwardSteps = 0;
  /** Packets carrying the previous packet's timestamp, and marker bits: video's signature (RFC 3551 §4.1). */
  sameTimestampSteps = 0;
  markers = 0;
  firstMs = 0;
  lastMs = 0;
  readonly sequence: SequenceTracker;
  /** RFC 3550 J, fed with transit differences computed here (its own clock argument is unused). */
  readonly jitter = new JitterEstimator(1);
  /** Payload types seen, in order of first appearance. */
  readonly payloadTypes: number[] = [];
  /** The clock rate used for jitter (0: none known). */
  clockRate = 0;
  maxDeltaMs = 0;
  jitterMaxMs = 0;
  jitterMeanMs = 0;
  private startSeq = 0;
  private stopSeq = 0;
  private seqCycles = 0;
  private under = false;
  /** The reference for the next packet's transit difference: an arrival time and a media time. */
  private refMs = 0;
  private refTs = 0;
  private firstTs = 0;
  private lastPt = -1;
  private extTs = 0;
  private lastRawTs = 0;
  private deltaMs = 0;

  /** sequenceBudget: bitmap bytes all streams of a capture may still grow by, shared. */
  constructor(sequenceBudget?: { bytes: number }) {
    this.sequence = new SequenceTracker(MAX_SEQUENCE_SPAN, sequenceBudget, FIRST_SEQUENCE_BITMAP_BYTES);
  }

  /**
   * Feeds one packet in capture order; mapping: what SDP said its payload type is.
   * Mirrors tshark's rtppacket_analyse (ui/tap-rtp-analysis.c) for the figures it prints.
   */
  add(packet: RtpPacketFields, mapping?: PayloadMapping): void {
    const { relMs, seq, ts, marker, pt } = packet;
    this.sequence.add(seq);
    if (this.lastPt !== pt && !this.payloadTypes.includes(pt) && this.payloadTypes.length < 16)
      this.payloadTypes.push(pt);
    if (this.packets === 0) {
      this.packets = 1;
      this.firstMs = this.lastMs = relMs;
      this.startSeq = this.stopSeq = seq;
      this.refMs = relMs;
      this.extTs = this.refTs = this.firstTs = ts;
      this.lastRawTs = ts;
      this.lastPt = pt;
      return;
    }
    if (ts === this.lastRawTs) this.sameTimestampSteps++;
    if (marker) this.markers++;
    // Extended timestamp: unwrap the 32-bit field by the signed difference to the previous one.
    this.extTs += (ts - this.lastRawTs) | 0;
    this.lastRawTs = ts;
    // tshark 4.0 judges a timestamp "in sequence" against the stream's first packet, not the last.
    const inTimeSequence = this.extTs >= this.firstTs;
    // Sequence cycles, as tshark counts them: a number below the first one starts a new cycle.
    if (seq < this.startSeq && inTimeSequence && !this.under) {
      this.seqCycles++;
      this.under = true;
    } else if (seq === 0 && this.stopSeq === 65535 && inTimeSequence && !this.under) {
      this.seqCycles++;
      this.under = true;
    } else if (seq > this.startSeq && inTimeSequence && this.under) {
      this.under = false;
    }
    const isCn = pt === PT_CN || pt === PT_CN_OLD;
    const followsCn = this.lastPt === PT_CN || this.lastPt === PT_CN_OLD;
    this.lastPt = pt;
    const clock = analysisClockRate(pt, mapping);
    let currentJitter = 0;
    this.deltaMs = relMs - this.refMs;
    if (clock !== 0) {
      this.clockRate = clock;
      // A timestamp before the stream's first one (the sender restarted its clock) has no place on
      // the stream's media timeline: J stays as it was, as tshark 4.0 leaves it (docs/analyze.md).
      if (inTimeSequence) {
        // Wireshark: nominal time = timestamp difference / (clock_rate / 1000), integer division.
        const nominalDiffMs = (this.extTs - this.refTs) / Math.floor(clock / 1000);
        this.jitter.observe(relMs - (this.refMs + nominalDiffMs));
      }
      currentJitter = this.jitter.jitterMs;
    }
    // Max delta and max/mean jitter skip marker packets, comfort noise, packets after comfort noise
    // and packets timestamped before the stream's first packet (as tshark does).
    if (!marker && !isCn && !followsCn && inTimeSequence) {
      if (this.deltaMs > this.maxDeltaMs) this.maxDeltaMs = this.deltaMs;
      if (clock !== 0) {
        if (currentJitter > this.jitterMaxMs) this.jitterMaxMs = currentJitter;
        // tshark 4.0: a running mean over the total packet count so far.
        this.jitterMeanMs = (this.jitterMeanMs * (this.packets - 1) + currentJitter) / this.packets;
      }
    }
    // The reference arrival time moves with every packet, its media time only with packets whose
    // clock is known: after telephone-event packets (clock 0) the next audio packet is compared
    // with the last audio timestamp but the last packet's arrival, as tshark 4.0 does.
    if (inTimeSequence) {
      this.refMs = relMs;
      if (clock !== 0) this.refTs = this.extTs;
    }
    const step = (seq - this.stopSeq) & 0xffff;
    if (step <= 1000 || step >= 65536 - 1000) this.plausibleSteps++;
    if (step >= 1 && step <= 1000) this.forwardSteps++;
    this.stopSeq = seq;
    this.lastMs = relMs;
    this.packets++;
  }

  /** Expected packets, as tshark counts them: from the first to the last packet's sequence number. */
  get expected(): number {
    return this.packets === 0 ? 0 : this.stopSeq + this.seqCycles * 65536 - this.startSeq + 1;
  }

  /** tshark's Lost: expected − received, duplicates counted as received (so it can go negative). */
  get lost(): number {
    return this.expected - this.packets;
  }

  /** Current RFC 3550 interarrival jitter estimate; null when no clock rate is known. */
  get jitterMs(): number | null {
    return this.clockRate === 0 ? null : this.jitter.jitterMs;
  }
}
