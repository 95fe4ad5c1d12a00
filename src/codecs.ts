// Codec table: what a call of each codec looks like on the wire and what the E-model makes of it.
// Payload types and clock rates: RFC 3551 §6 Table 4 (G.722 keeps an 8000 Hz RTP clock for
// historical reasons, §4.5.2). Opus: RFC 7587 §4.1 (48 kHz clock, dynamic payload type).
// E-model equipment impairment Ie and packet-loss robustness Bpl: ITU-T G.113 (11/2007)
// Appendix I, Tables I.1 and I.3. G.722 and Opus have no narrowband Ie/Bpl in G.113; we use
// G.711-with-PLC values for both (they are at least that good), and say so in the MOS evidence.

export type CodecName = 'g711u' | 'g711a' | 'g729' | 'g722' | 'opus';

export interface Codec {
  name: CodecName;
  /** SDP encoding name (RFC 4566 rtpmap). */
  encoding: string;
  payloadType: number;
  clockRate: number;
  ptimeMs: number;
  /** RTP payload bytes per packet at ptimeMs. */
  payloadBytes: number;
  /** Codec look-ahead added to mouth-to-ear delay (G.114 Table II.1 style budget). */
  lookaheadMs: number;
  ie: number;
  bpl: number;
  /** True when Ie/Bpl are an approximation rather than a G.113 table entry. */
  emodelApproximate: boolean;
}

export const CODECS: Record<CodecName, Codec> = {
  g711u: {
    name: 'g711u',
    encoding: 'PCMU',
    payloadType: 0,
    clockRate: 8000,
    ptimeMs: 20,
    payloadBytes: 160,
    lookaheadMs: 0,
    ie: 0,
    bpl: 25.1, // G.113 Table I.3: G.711 with Appendix I PLC
    emodelApproximate: false,
  },
  g711a: {
    name: 'g711a',
    encoding: 'PCMA',
    payloadType: 8,
    clockRate: 8000,
    ptimeMs: 20,
    payloadBytes: 160,
    lookaheadMs: 0,
    ie: 0,
    bpl: 25.1,
    emodelApproximate: false,
  },
  g729: {
    name: 'g729',
    encoding: 'G729',
    payloadType: 18,
    clockRate: 8000,
    ptimeMs: 20,
    payloadBytes: 20,
    lookaheadMs: 5,
    ie: 11, // G.113 Table I.1: G.729A
    bpl: 19.0, // G.113 Table I.3: G.729A + VAD
    emodelApproximate: false,
  },
  g722: {
    name: 'g722',
    encoding: 'G722',
    payloadType: 9,
    clockRate: 8000,
    ptimeMs: 20,
    payloadBytes: 160,
    lookaheadMs: 1.5,
    ie: 0,
    bpl: 25.1,
    emodelApproximate: true,
  },
  opus: {
    name: 'opus',
    encoding: 'opus',
    payloadType: 111,
    clockRate: 48000,
    ptimeMs: 20,
    payloadBytes: 80, // 32 kbit/s wideband speech
    lookaheadMs: 6.5,
    ie: 0,
    bpl: 25.1,
    emodelApproximate: true,
  },
};

export const CODEC_NAMES = Object.keys(CODECS) as CodecName[];

export function codecByName(name: string): Codec | undefined {
  return CODECS[name.toLowerCase() as CodecName];
}

/** Static payload types (RFC 3551 Table 4) to codec, for captures without SDP. */
export function codecByStaticPayloadType(pt: number): Codec | undefined {
  return Object.values(CODECS).find((c) => c.payloadType === pt && pt < 96);
}

const RTP_HEADER = 12;
const UDP_HEADER = 8;
const IPV4_HEADER = 20;
/** Ethernet II header + FCS; preamble and inter-frame gap are not counted (common VoIP calculators). */
const ETHERNET_OVERHEAD = 18;

export interface Bandwidth {
  packetsPerSecond: number;
  ipBytesPerPacket: number;
  ipKbps: number;
  ethernetKbps: number;
}

/** One direction of one call, IPv4. */
export function bandwidthPerCall(codec: Codec): Bandwidth {
  const packetsPerSecond = 1000 / codec.ptimeMs;
  const ipBytesPerPacket = codec.payloadBytes + RTP_HEADER + UDP_HEADER + IPV4_HEADER;
  return {
    packetsPerSecond,
    ipBytesPerPacket,
    ipKbps: (ipBytesPerPacket * 8 * packetsPerSecond) / 1000,
    ethernetKbps: ((ipBytesPerPacket + ETHERNET_OVERHEAD) * 8 * packetsPerSecond) / 1000,
  };
}
