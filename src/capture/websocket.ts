// SIP over WebSocket (RFC 7118), as WebRTC clients and their gateways speak it: an HTTP/1.1 opening
// handshake that chooses the `sip` subprotocol (RFC 6455 §4, RFC 7118 §4.1), then WebSocket frames
// (RFC 6455 §5.2), each SIP message carried in one WebSocket message (RFC 7118 §5.2), text or
// binary, possibly fragmented. Bytes are handled as latin1 strings, like the SIP-over-TCP buffer.
// Never throws on malformed input: it answers null, false or an error text.

/** Could this TCP payload be a WebSocket opening handshake (a GET or a 101 carrying Upgrade: websocket)? */
export function looksLikeWsHandshake(b: Uint8Array, off: number, len: number): boolean {
  if (len < 16) return false;
  const isGet = b[off] === 0x47 && b[off + 1] === 0x45 && b[off + 2] === 0x54 && b[off + 3] === 0x20;
  // "HTTP/1.1 101"
  const is101 =
    b[off] === 0x48 &&
    b[off + 4] === 0x2f &&
    b[off + 9] === 0x31 &&
    b[off + 10] === 0x30 &&
    b[off + 11] === 0x31;
  if (!isGet && !is101) return false;
  const head = Buffer.from(b.buffer, b.byteOffset + off, Math.min(len, 4096)).toString('latin1');
  return /^upgrade[ \t]*:[ \t]*websocket/im.test(head);
}

/** Header values of an HTTP header block by lower-case name (the first of each). */
function httpHeaders(head: string): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of head.split(/\r?\n/).slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  return headers;
}

/**
 * Whether a complete handshake header block opens a SIP WebSocket in its direction: the client's
 * GET offers `sip` among its Sec-WebSocket-Protocol tokens, the server's 101 answers `sip`.
 */
export function wsHandshakeIsSip(head: string): boolean {
  const start = head.slice(0, head.search(/\r?\n/));
  const headers = httpHeaders(head);
  if (!/websocket/i.test(headers.get('upgrade') ?? '')) return false;
  const protocols = (headers.get('sec-websocket-protocol') ?? '')
    .split(',')
    .map((p) => p.trim().toLowerCase());
  if (/^GET \S+ HTTP\/1\.1$/.test(start)) return protocols.includes('sip');
  if (/^HTTP\/1\.1 101\b/.test(start)) return protocols.length === 1 && protocols[0] === 'sip';
  return false;
}

export interface WsFrame {
  fin: boolean;
  /** RSV1: set on messages compressed with permessage-deflate (RFC 7692 §6). */
  compressed: boolean;
  /** 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong (RFC 6455 §5.2). */
  opcode: number;
  /** Unmasked payload, latin1. */
  payload: string;
}

export type WsFrameRead = { frame: WsFrame; size: number } | { error: string } | null;

/**
 * Reads the frame at the start of `buf`: the frame and its size in bytes, null when it is not
 * complete yet, or an error when it cannot be a frame or its payload exceeds maxPayload.
 */
export function readWsFrame(buf: string, maxPayload: number): WsFrameRead {
  if (buf.length < 2) return null;
  const b0 = buf.charCodeAt(0);
  const b1 = buf.charCodeAt(1);
  const opcode = b0 & 0x0f;
  if ((opcode > 2 && opcode < 8) || opcode > 10) return { error: `reserved opcode ${opcode}` };
  const masked = (b1 & 0x80) !== 0;
  let length = b1 & 0x7f;
  let at = 2;
  if (length === 126) {
    if (buf.length < 4) return null;
    length = (buf.charCodeAt(2) << 8) | buf.charCodeAt(3);
    at = 4;
  } else if (length === 127) {
    if (buf.length < 10) return null;
    // Anything beyond 32 bits is beyond any bound here: read the high word only to refuse it.
    const high =
      (buf.charCodeAt(2) << 24) | (buf.charCodeAt(3) << 16) | (buf.charCodeAt(4) << 8) | buf.charCodeAt(5);
    length = high !== 0 ? Number.POSITIVE_INFINITY : readU32(buf, 6);
    at = 10;
  }
  if (length > maxPayload) return { error: `a frame of ${length} bytes (more than ${maxPayload})` };
  const keyAt = at;
  if (masked) at += 4;
  if (buf.length < at + length) return null;
  let payload = buf.slice(at, at + length);
  if (masked) {
    const key = [0, 1, 2, 3].map((i) => buf.charCodeAt(keyAt + i));
    const out = new Array<string>(length);
    for (let i = 0; i < length; i++) out[i] = String.fromCharCode(payload.charCodeAt(i) ^ key[i & 3]!);
    payload = out.join('');
  }
  return {
    frame: { fin: (b0 & 0x80) !== 0, compressed: (b0 & 0x40) !== 0, opcode, payload },
    size: at + length,
  };
}

function readU32(s: string, i: number): number {
  return (
    ((s.charCodeAt(i) << 24) |
      (s.charCodeAt(i + 1) << 16) |
      (s.charCodeAt(i + 2) << 8) |
      s.charCodeAt(i + 3)) >>>
    0
  );
}
