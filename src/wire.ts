// The probe wire format, version 2 (documented field by field in docs/probe.md). Version 2 adds
// the probe's send time (covered by the tag, so a reflector with a secret can refuse stale
// replays) and a stream remark in summaries (why the reflector has no full record of a stream).
// Version 1 messages are still understood without a secret, and answered in version 1.
//
// Media and signalling probes are valid RTP v2 packets (RFC 3550 §5.1) of the codec's exact size:
// the RTP header carries the sequence number, the send instant (RTP timestamp, media clock units)
// and the stream (SSRC); the probe's own fields sit at the start of the RTP payload and fit the
// 20-byte G.729 payload. A reply is the same size as the probe it answers (no amplification) and
// reports the arrival time, the sender's sequence and the DSCP seen on arrival, as STAMP reports
// the received class of service (RFC 8972 §5.2). Statistics are fetched with fixed-size control
// messages whose first byte is not an RTP v2 header, so RTP analysers never count them as media.
// With a shared secret every message carries an HMAC-SHA256 tag truncated to 8 bytes (STAMP, RFC
// 8762 §4.1.1 truncates to 16; G.729's 20-byte payload leaves room for 8).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { RTP_HEADER_BYTES, writeRtpHeader } from './rtp.js';

export const WIRE_VERSION = 2;
/** Oldest version still answered (only without a secret: version 1 probes carry no send time). */
export const MIN_WIRE_VERSION = 1;
/** First payload byte of every probe/reply, and second byte of a control message: 'V'. */
export const MAGIC = 0x56;
export const TAG_BYTES = 8;
/** Probe fields in the RTP payload, before the tag. */
export const PROBE_FIELDS_BYTES = 12;
/** Smallest RTP payload that carries the probe fields and the tag (G.729: 20 bytes). */
export const MIN_PAYLOAD_BYTES = PROBE_FIELDS_BYTES + TAG_BYTES;
export const MIN_PROBE_BYTES = RTP_HEADER_BYTES + MIN_PAYLOAD_BYTES;
/** Control messages (summary request and response) are always exactly this long. */
export const CONTROL_BYTES = 128;
/** Largest datagram the reflector answers: a probe never needs more than an Ethernet MTU. */
export const MAX_MESSAGE_BYTES = 1500;
/** DSCP field value meaning "could not be read". */
export const DSCP_UNKNOWN = 0x40;
/** Per-stream DSCP counts a summary can carry. */
export const SUMMARY_DSCP_SLOTS = 8;

export const MessageType = {
  probe: 1,
  reply: 2,
  summaryRequest: 3,
  summaryResponse: 4,
  loadRequest: 5,
  loadResponse: 6,
  load: 7,
} as const;

/**
 * Load datagrams (`--priority-test`): control-format (first byte 0, never RTP), any length from
 * LOAD_HEADER_BYTES to MAX_MESSAGE_BYTES, never answered. Header: magic, version/type, flags, the
 * load id (the nonce of the granted load request), a sequence, the send time; tag at 24.
 */
export const LOAD_HEADER_BYTES = 32;
const LOAD_TAG_OFFSET = 24;

// Flags in payload byte 2 (probe: bits 0-5 carry the DSCP the sender asks the reply to carry).
const FLAG_SIGNALLING = 0x40;
const FLAG_TAGGED = 0x80;
// Flags in payload byte 3 of a reply (bits 0-6 carry the DSCP on arrival, or DSCP_UNKNOWN).
const FLAG_REPLY_MARKED = 0x80;

const P = RTP_HEADER_BYTES; // payload offset
const TAG_OFFSET = P + PROBE_FIELDS_BYTES;
const CONTROL_TAG_OFFSET = CONTROL_BYTES - TAG_BYTES;

export interface ProbeFields {
  payloadType: number;
  sequence: number;
  /** RTP timestamp: the actual send instant in media clock units. */
  timestamp: number;
  ssrc: number;
  /** DSCP the reply should be marked with. */
  replyDscp: number;
  signalling: boolean;
  /** The sender's wall clock at the send, ms since the Unix epoch (version 2; 0 in version 1). */
  sentAtMs: number;
}

export interface ReplyFields {
  payloadType: number;
  /** The reflector's own sequence for this reverse stream. */
  sequence: number;
  /** The reflector's send instant, media clock units of its reverse stream. */
  timestamp: number;
  ssrc: number;
  /** The probe's sequence number this reply answers. */
  echoedSequence: number;
  /** Reflector clock at the probe's arrival, microseconds modulo 2^32. */
  arrivalUs: number;
  /** Microseconds between the probe's arrival and this reply's send (saturates at 65535). */
  holdUs: number;
  /** DSCP of the probe on arrival; null when the reflector could not read it. */
  arrivalDscp: number | null;
  /** True when the reflector set the requested DSCP on this reply. */
  marked: boolean;
  signalling: boolean;
}

type Envelope = { tagged: boolean; version: number };
export type Decoded =
  | ({ type: 'probe' } & Envelope & ProbeFields)
  | ({ type: 'reply' } & Envelope & ReplyFields)
  | ({ type: 'summaryRequest' } & Envelope & SummaryRequest)
  | ({ type: 'summaryResponse' } & Envelope & SummaryResponse)
  | ({ type: 'loadRequest' } & Envelope & { nonce: number })
  | ({ type: 'loadResponse' } & Envelope & { nonce: number; accepted: boolean })
  | ({ type: 'load' } & Envelope & LoadFields);

export interface LoadFields {
  loadId: number;
  sequence: number;
  /** The sender's wall clock at the send, ms since the Unix epoch. */
  sentAtMs: number;
}

export type Rejection = 'short' | 'not-probe' | 'version' | 'bad-auth' | 'unauthenticated';

/** A version this end answers: the current one, or version 1 when no secret is configured. */
const versionAccepted = (version: number, secret: Buffer | undefined) =>
  version === WIRE_VERSION || (!secret && version >= MIN_WIRE_VERSION && version < WIRE_VERSION);

/** Computes the truncated HMAC-SHA256 over the message with its tag field zeroed. */
function computeTag(secret: Buffer, msg: Buffer, tagOffset: number): Buffer {
  const h = createHmac('sha256', secret);
  h.update(msg.subarray(0, tagOffset));
  h.update(Buffer.alloc(TAG_BYTES));
  h.update(msg.subarray(tagOffset + TAG_BYTES));
  return h.digest().subarray(0, TAG_BYTES);
}

function sign(msg: Buffer, tagOffset: number, secret: Buffer | undefined): void {
  if (secret) computeTag(secret, msg, tagOffset).copy(msg, tagOffset);
  else msg.fill(0, tagOffset, tagOffset + TAG_BYTES);
}

function tagMatches(msg: Buffer, tagOffset: number, secret: Buffer): boolean {
  return timingSafeEqual(computeTag(secret, msg, tagOffset), msg.subarray(tagOffset, tagOffset + TAG_BYTES));
}

/** Writes a probe of `size` bytes (RTP header + payload) into buf (length ≥ size); returns size. */
export function encodeProbe(buf: Buffer, size: number, f: ProbeFields, secret?: Buffer): number {
  if (size < MIN_PROBE_BYTES) throw new RangeError(`a probe needs at least ${MIN_PROBE_BYTES} bytes`);
  writeRtpHeader(buf, f);
  buf[P] = MAGIC;
  buf[P + 1] = (WIRE_VERSION << 4) | MessageType.probe;
  buf[P + 2] = (f.replyDscp & 0x3f) | (f.signalling ? FLAG_SIGNALLING : 0) | (secret ? FLAG_TAGGED : 0);
  buf.fill(0, P + 3, TAG_OFFSET);
  buf.writeUIntBE(Math.max(0, Math.round(f.sentAtMs)) % 2 ** 48, P + 4, 6);
  // The rest of the payload stands in for audio: a fixed filler, so the size is the codec's.
  buf.fill(0xd5, TAG_OFFSET + TAG_BYTES, size);
  sign(buf.subarray(0, size), TAG_OFFSET, secret);
  return size;
}

/**
 * Turns a received probe (in place) into its reply: same size, the reflector's RTP sequence and
 * timestamp, and the facts of the probe's arrival, in the probe's wire version. Then signs it.
 */
export function encodeReply(
  msg: Buffer,
  f: Omit<ReplyFields, 'ssrc' | 'payloadType' | 'signalling'>,
  secret?: Buffer,
): void {
  msg.writeUInt16BE(f.sequence & 0xffff, 2);
  msg.writeUInt32BE(f.timestamp >>> 0, 4);
  msg[P + 1] = (msg[P + 1]! & 0xf0) | MessageType.reply;
  msg[P + 2] = (msg[P + 2]! & ~FLAG_TAGGED) | (secret ? FLAG_TAGGED : 0);
  msg[P + 3] =
    (f.arrivalDscp === null ? DSCP_UNKNOWN : f.arrivalDscp & 0x3f) | (f.marked ? FLAG_REPLY_MARKED : 0);
  msg.writeUInt32BE(f.arrivalUs >>> 0, P + 4);
  msg.writeUInt16BE(f.echoedSequence & 0xffff, P + 8);
  msg.writeUInt16BE(Math.min(65535, Math.max(0, Math.round(f.holdUs))), P + 10);
  sign(msg, TAG_OFFSET, secret);
}

export interface SummaryRequest {
  ssrc: number;
  nonce: number;
}

export interface ClockSyncWire {
  synchronised: boolean;
  /** Error bound in microseconds; null when unknown. */
  errorBoundUs: number | null;
  /** Up to 8 ASCII characters, e.g. "chrony". */
  source: string;
}

/**
 * Why the reflector has no full record of a stream (version 2, summary byte 69). With `known` it
 * marks a record that restarted after the stream was forgotten; without, why there is none.
 */
export type StreamRemark = 'none' | 'evicted' | 'ssrc-in-use' | 'stale';
const REMARKS: readonly StreamRemark[] = ['none', 'evicted', 'ssrc-in-use', 'stale'];

export interface SummaryResponse {
  ssrc: number;
  nonce: number;
  /** The reflector has seen this stream. */
  known: boolean;
  remark: StreamRemark;
  /** The reflector could read DSCP on arrival. */
  dscpReadable: boolean;
  /** The reflector marks its replies with the requested DSCP. */
  marksReplies: boolean;
  received: number;
  duplicates: number;
  reordered: number;
  maxBurstLoss: number;
  repliesSent: number;
  jitterUs: number;
  jitterMaxUs: number;
  /** Reflector hold time (arrival to reply) over all its replies, microseconds. */
  holdP50Us: number;
  holdP99Us: number;
  holdMaxUs: number;
  holdSamples: number;
  /**
   * Datagrams the reflector's socket dropped (receive queue full) while this stream was active —
   * any sender's (version 2, bytes 70–71, saturating at 65535); null when it cannot say.
   */
  queueDrops?: number | null;
  clock: ClockSyncWire;
  dscpCounts: Array<[dscp: number, count: number]>;
}

const CONTROL_FLAG_KNOWN = 1;
const CONTROL_FLAG_DSCP_READABLE = 2;
const CONTROL_FLAG_MARKS = 4;
const CONTROL_FLAG_SYNCED = 8;
const CONTROL_FLAG_DROPS_COUNTED = 0x10;
const CONTROL_FLAG_TAGGED = 0x80;
const U32_NONE = 0xffffffff;

function writeControlHeader(
  buf: Buffer,
  version: number,
  type: number,
  ssrc: number,
  nonce: number,
  flags: number,
): void {
  buf.fill(0, 0, CONTROL_BYTES);
  buf[0] = 0; // RTP version 0: never mistaken for media
  buf[1] = MAGIC;
  buf[2] = (version << 4) | type;
  buf[3] = flags;
  buf.writeUInt32BE(ssrc >>> 0, 4);
  buf.writeUInt32BE(nonce >>> 0, 8);
}

export function encodeSummaryRequest(r: SummaryRequest, secret?: Buffer): Buffer {
  const buf = Buffer.alloc(CONTROL_BYTES);
  writeControlHeader(
    buf,
    WIRE_VERSION,
    MessageType.summaryRequest,
    r.ssrc,
    r.nonce,
    secret ? CONTROL_FLAG_TAGGED : 0,
  );
  sign(buf, CONTROL_TAG_OFFSET, secret);
  return buf;
}

const u32 = (v: number) => Math.min(U32_NONE - 1, Math.max(0, Math.round(v)));

/** Writes the response over the request's buffer (same size), in the request's wire version. */
export function encodeSummaryResponse(buf: Buffer, r: SummaryResponse, secret?: Buffer): void {
  const version = buf[2]! >> 4;
  const flags =
    (r.known ? CONTROL_FLAG_KNOWN : 0) |
    (r.dscpReadable ? CONTROL_FLAG_DSCP_READABLE : 0) |
    (r.marksReplies ? CONTROL_FLAG_MARKS : 0) |
    (r.clock.synchronised ? CONTROL_FLAG_SYNCED : 0) |
    (version >= 2 && typeof r.queueDrops === 'number' ? CONTROL_FLAG_DROPS_COUNTED : 0) |
    (secret ? CONTROL_FLAG_TAGGED : 0);
  writeControlHeader(buf, version, MessageType.summaryResponse, r.ssrc, r.nonce, flags);
  const fields = [
    r.received,
    r.duplicates,
    r.reordered,
    r.maxBurstLoss,
    r.repliesSent,
    r.jitterUs,
    r.jitterMaxUs,
    r.holdP50Us,
    r.holdP99Us,
    r.holdMaxUs,
    r.holdSamples,
  ];
  fields.forEach((v, i) => {
    buf.writeUInt32BE(u32(v), 12 + 4 * i);
  });
  buf.writeUInt32BE(r.clock.errorBoundUs === null ? U32_NONE : u32(r.clock.errorBoundUs), 56);
  buf.write(r.clock.source.slice(0, 8), 60, 8, 'latin1');
  const counts = r.dscpCounts.slice(0, SUMMARY_DSCP_SLOTS);
  buf[68] = counts.length;
  if (version >= 2) buf[69] = REMARKS.indexOf(r.remark);
  if (flags & CONTROL_FLAG_DROPS_COUNTED) buf.writeUInt16BE(Math.min(65535, Math.max(0, r.queueDrops!)), 70);
  counts.forEach(([dscp, count], i) => {
    buf[72 + 6 * i] = dscp & 0x3f;
    buf.writeUInt32BE(u32(count), 74 + 6 * i);
  });
  sign(buf, CONTROL_TAG_OFFSET, secret);
}

/** A request to send load (128 bytes, like every control message); the nonce names the load. */
export function encodeLoadRequest(nonce: number, secret?: Buffer): Buffer {
  const buf = Buffer.alloc(CONTROL_BYTES);
  writeControlHeader(buf, WIRE_VERSION, MessageType.loadRequest, 0, nonce, secret ? CONTROL_FLAG_TAGGED : 0);
  sign(buf, CONTROL_TAG_OFFSET, secret);
  return buf;
}

/** The answer, written over a copy of the request (same size): whether load is accepted. */
export function encodeLoadResponse(buf: Buffer, nonce: number, accepted: boolean, secret?: Buffer): void {
  const flags = (accepted ? CONTROL_FLAG_KNOWN : 0) | (secret ? CONTROL_FLAG_TAGGED : 0);
  writeControlHeader(buf, WIRE_VERSION, MessageType.loadResponse, 0, nonce, flags);
  sign(buf, CONTROL_TAG_OFFSET, secret);
}

/** Writes a load datagram of `size` bytes into buf; returns size. */
export function encodeLoad(buf: Buffer, size: number, f: LoadFields, secret?: Buffer): number {
  if (size < LOAD_HEADER_BYTES || size > MAX_MESSAGE_BYTES) {
    throw new RangeError(`a load datagram is ${LOAD_HEADER_BYTES}..${MAX_MESSAGE_BYTES} bytes`);
  }
  buf[0] = 0;
  buf[1] = MAGIC;
  buf[2] = (WIRE_VERSION << 4) | MessageType.load;
  buf[3] = secret ? CONTROL_FLAG_TAGGED : 0;
  buf.writeUInt32BE(f.loadId >>> 0, 4);
  buf.writeUInt32BE(f.sequence >>> 0, 8);
  buf.writeUIntBE(Math.max(0, Math.round(f.sentAtMs)) % 2 ** 48, 12, 6);
  buf.fill(0, 18, LOAD_HEADER_BYTES);
  buf.fill(0xd5, LOAD_HEADER_BYTES, size);
  sign(buf.subarray(0, size), LOAD_TAG_OFFSET, secret);
  return size;
}

function decodeControl(msg: Buffer, secret: Buffer | undefined): Decoded | Rejection {
  const type = msg[2]! & 0x0f;
  const isLoad = type === MessageType.load;
  if (!isLoad && msg.length !== CONTROL_BYTES) return 'short';
  const version = msg[2]! >> 4;
  if (!versionAccepted(version, secret) || (version < WIRE_VERSION && type >= MessageType.loadRequest))
    return 'version';
  const flags = msg[3]!;
  const tagged = (flags & CONTROL_FLAG_TAGGED) !== 0;
  if (secret) {
    if (!tagged) return 'unauthenticated';
    if (!tagMatches(msg, isLoad ? LOAD_TAG_OFFSET : CONTROL_TAG_OFFSET, secret)) return 'bad-auth';
  }
  if (isLoad) {
    const loadId = msg.readUInt32BE(4);
    return {
      type: 'load',
      tagged,
      version,
      loadId,
      sequence: msg.readUInt32BE(8),
      sentAtMs: msg.readUIntBE(12, 6),
    };
  }
  const ssrc = msg.readUInt32BE(4);
  const nonce = msg.readUInt32BE(8);
  if (type === MessageType.summaryRequest) return { type: 'summaryRequest', tagged, version, ssrc, nonce };
  if (type === MessageType.loadRequest) return { type: 'loadRequest', tagged, version, nonce };
  if (type === MessageType.loadResponse) {
    return { type: 'loadResponse', tagged, version, nonce, accepted: (flags & CONTROL_FLAG_KNOWN) !== 0 };
  }
  if (type !== MessageType.summaryResponse) return 'not-probe';
  const at = (i: number) => msg.readUInt32BE(12 + 4 * i);
  const n = Math.min(msg[68]!, SUMMARY_DSCP_SLOTS);
  const dscpCounts: Array<[number, number]> = [];
  for (let i = 0; i < n; i++) dscpCounts.push([msg[72 + 6 * i]! & 0x3f, msg.readUInt32BE(74 + 6 * i)]);
  const bound = msg.readUInt32BE(56);
  return {
    type: 'summaryResponse',
    tagged,
    version,
    ssrc,
    nonce,
    known: (flags & CONTROL_FLAG_KNOWN) !== 0,
    remark: (version >= 2 && REMARKS[msg[69]!]) || 'none',
    dscpReadable: (flags & CONTROL_FLAG_DSCP_READABLE) !== 0,
    marksReplies: (flags & CONTROL_FLAG_MARKS) !== 0,
    received: at(0),
    duplicates: at(1),
    reordered: at(2),
    maxBurstLoss: at(3),
    repliesSent: at(4),
    jitterUs: at(5),
    jitterMaxUs: at(6),
    holdP50Us: at(7),
    holdP99Us: at(8),
    holdMaxUs: at(9),
    holdSamples: at(10),
    queueDrops: version >= 2 && flags & CONTROL_FLAG_DROPS_COUNTED ? msg.readUInt16BE(70) : null,
    clock: {
      synchronised: (flags & CONTROL_FLAG_SYNCED) !== 0,
      errorBoundUs: bound === U32_NONE ? null : bound,
      source: msg.toString('latin1', 60, 68).replace(/\0+$/, ''),
    },
    dscpCounts,
  };
}

/**
 * Decodes any protocol message, cheapest checks first (length, version byte, magic) so junk costs
 * almost nothing; the HMAC is checked only on messages that otherwise look right. With a secret,
 * untagged or wrongly tagged messages are rejected.
 */
export function decodeMessage(msg: Buffer, secret?: Buffer): Decoded | Rejection {
  if (msg.length < MIN_PROBE_BYTES) return 'short';
  if (msg.length > MAX_MESSAGE_BYTES) return 'not-probe';
  const b0 = msg[0]!;
  if (b0 === 0 && msg[1] === MAGIC) return decodeControl(msg, secret);
  // RTP v2, no padding, no extension, no CSRC: the probe fields sit right after the fixed header.
  if (b0 !== 0x80 || msg[P] !== MAGIC) return 'not-probe';
  const version = msg[P + 1]! >> 4;
  if (!versionAccepted(version, secret)) return 'version';
  const type = msg[P + 1]! & 0x0f;
  if (type !== MessageType.probe && type !== MessageType.reply) return 'not-probe';
  const b2 = msg[P + 2]!;
  const tagged = (b2 & FLAG_TAGGED) !== 0;
  if (secret) {
    if (!tagged) return 'unauthenticated';
    if (!tagMatches(msg, TAG_OFFSET, secret)) return 'bad-auth';
  }
  const common = {
    tagged,
    version,
    payloadType: msg[1]! & 0x7f,
    sequence: msg.readUInt16BE(2),
    timestamp: msg.readUInt32BE(4),
    ssrc: msg.readUInt32BE(8),
    signalling: (b2 & FLAG_SIGNALLING) !== 0,
  };
  if (type === MessageType.probe) {
    const sentAtMs = version >= 2 ? msg.readUIntBE(P + 4, 6) : 0;
    return { type: 'probe', ...common, replyDscp: b2 & 0x3f, sentAtMs };
  }
  const b3 = msg[P + 3]!;
  const dscp = b3 & 0x7f;
  return {
    type: 'reply',
    ...common,
    arrivalDscp: dscp === DSCP_UNKNOWN ? null : dscp & 0x3f,
    marked: (b3 & FLAG_REPLY_MARKED) !== 0,
    arrivalUs: msg.readUInt32BE(P + 4),
    echoedSequence: msg.readUInt16BE(P + 8),
    holdUs: msg.readUInt16BE(P + 10),
  };
}
