// A small SIP message parser (RFC 3261 §7: start line, headers with compact forms §7.3.3, folded
// lines, Content-Length §20.14) and the part of SDP (RFC 8866 §5) that says where media flows:
// c=, m= and a=rtpmap / a=rtcp (RFC 3605). It reads only what the analyzer needs and never throws
// on malformed text: it returns null or skips the line.

export interface SipMessage {
  /** Request method, or null for a response. */
  method: string | null;
  status: number | null;
  /** A response's reason phrase (RFC 3261 §7.2), or null for a request. */
  reason: string | null;
  /** The branch parameter of the topmost Via (RFC 3261 §8.1.1.7, §17.1.3), or null. */
  viaBranch: string | null;
  callId: string | null;
  from: string | null;
  to: string | null;
  cseqMethod: string | null;
  /** The CSeq sequence number (RFC 3261 §8.1.1.5), or null when absent or not a number. */
  cseq: number | null;
  contentType: string | null;
  /** Declared Content-Length, or null when absent. */
  contentLength: number | null;
  body: string;
}

const COMPACT: Record<string, string> = {
  i: 'call-id',
  f: 'from',
  t: 'to',
  l: 'content-length',
  c: 'content-type',
  m: 'contact',
  v: 'via',
  s: 'subject',
  k: 'supported',
  e: 'content-encoding',
};

const METHOD = /^[A-Z][A-Z0-9._!%*+`'~-]{1,31}$/;
const MAX_SIP_BYTES = 65535;

/** Fast test on the first bytes: could this UDP/TCP payload start a SIP message? */
export function looksLikeSip(b: Uint8Array, off: number, len: number): boolean {
  if (len < 12) return false;
  const c = b[off]!;
  if (c < 0x41 || c > 0x5a) return false;
  // "SIP/2.0 " (a response) or a method token followed by a space and a URI scheme letter.
  if (c === 0x53 && b[off + 1] === 0x49 && b[off + 2] === 0x50 && b[off + 3] === 0x2f) return true;
  const n = Math.min(len, 64);
  for (let i = 1; i < n; i++) {
    const x = b[off + i]!;
    if (x === 0x20) return i >= 2 && i + 1 < len && (b[off + i + 1]! | 0x20) >= 0x61;
    if (!((x >= 0x41 && x <= 0x5a) || x === 0x2d || x === 0x5f)) return false;
  }
  return false;
}

/** Where the header section ends (index after the blank line), or -1 if not yet complete. */
export function headerEnd(text: string): { end: number } | null {
  const crlf = text.indexOf('\r\n\r\n');
  const lf = text.indexOf('\n\n');
  if (crlf < 0 && lf < 0) return null;
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return { end: crlf + 4 };
  return { end: lf + 2 };
}

/**
 * Parses one SIP message from text (latin1-decoded bytes). For datagrams the body is the rest of
 * the text when Content-Length is absent (RFC 3261 §18.3).
 */
export function parseSipMessage(text: string): SipMessage | null {
  if (text.length > MAX_SIP_BYTES) text = text.slice(0, MAX_SIP_BYTES);
  const he = headerEnd(text);
  const head = he ? text.slice(0, he.end) : text;
  // A start line without its line end is a message cut short (e.g. by the snapshot length).
  if (!head.includes('\n')) return null;
  const lines = head.split(/\r?\n/);
  const start = lines[0] ?? '';
  let method: string | null = null;
  let status: number | null = null;
  let reason: string | null = null;
  if (start.startsWith('SIP/2.0 ')) {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2); the phrase may be empty.
    const code = Number(start.slice(8, 11));
    if (!Number.isInteger(code) || code < 100 || code > 699) return null;
    status = code;
    reason = start.slice(11).trim();
  } else {
    const parts = start.split(' ');
    if (parts.length !== 3 || parts[2] !== 'SIP/2.0' || !METHOD.test(parts[0]!)) return null;
    method = parts[0]!;
  }
  const headers = new Map<string, string>();
  let last: string | null = null;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') break;
    if ((line[0] === ' ' || line[0] === '\t') && last !== null) {
      headers.set(last, `${headers.get(last) ?? ''} ${line.trim()}`); // folded line (§7.3.1)
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    let name = line.slice(0, colon).trim().toLowerCase();
    name = COMPACT[name] ?? name;
    last = name;
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  const lengthText = headers.get('content-length');
  const declared = lengthText !== undefined && /^\d{1,6}$/.test(lengthText) ? Number(lengthText) : null;
  const rest = he ? text.slice(he.end) : '';
  const body = declared === null ? rest : rest.slice(0, declared);
  const [cseqNumber, cseq = null] = headers.get('cseq')?.split(/\s+/) ?? [];
  return {
    method,
    status,
    reason,
    viaBranch: topViaBranch(headers.get('via')),
    callId: headers.get('call-id') ?? null,
    from: headers.get('from') ?? null,
    to: headers.get('to') ?? null,
    cseqMethod: cseq,
    cseq: cseqNumber !== undefined && /^\d{1,10}$/.test(cseqNumber) ? Number(cseqNumber) : null,
    contentType: headers.get('content-type')?.toLowerCase() ?? null,
    contentLength: declared,
    body,
  };
}

/** The branch of the first Via value ("SIP/2.0/UDP h:p;branch=z9hG4bK1, SIP/2.0/UDP …"). */
function topViaBranch(via: string | undefined): string | null {
  if (via === undefined) return null;
  const first = via.split(',')[0]!;
  return /;\s*branch\s*=\s*([^;,\s]+)/i.exec(first)?.[1] ?? null;
}

/** The URI of a From/To header value: "Alice <sip:a@x>;tag=1" → "sip:a@x". */
export function nameAddrUri(value: string | null): string | null {
  if (!value) return null;
  const lt = value.indexOf('<');
  if (lt >= 0) {
    const gt = value.indexOf('>', lt);
    return value.slice(lt + 1, gt > lt ? gt : undefined);
  }
  return value.split(';')[0]!.trim();
}

export interface SdpMedia {
  media: string;
  /** Connection address (c= at media or session level). */
  address: string;
  port: number;
  rtcpPort: number;
  rtcpAddress: string;
  /** Payload types in m= order, and what a=rtpmap (or the static table) says they are. */
  payloadTypes: number[];
  rtpmap: Map<number, { encoding: string; clockRate: number }>;
}

/** Media descriptions of an SDP body with a usable address and a non-zero port. */
export function parseSdp(body: string): SdpMedia[] {
  const out: SdpMedia[] = [];
  let sessionAddress = '';
  let current: SdpMedia | null = null;
  const finish = () => {
    if (current && current.port > 0 && current.address) {
      if (!current.rtcpAddress) current.rtcpAddress = current.address;
      out.push(current);
    }
  };
  for (const raw of body.split(/\r?\n/)) {
    const line = raw.trimEnd();
    if (line.length < 2 || line[1] !== '=') continue;
    const type = line[0];
    const value = line.slice(2);
    if (type === 'm') {
      finish();
      if (out.length >= 16) return out;
      const [media = '', portText = '', , ...fmts] = value.split(' ');
      const port = Number(portText.split('/')[0]);
      current = {
        media: media.toLowerCase(),
        address: sessionAddress,
        port: Number.isInteger(port) && port >= 0 && port < 65536 ? port : 0,
        rtcpPort: Number.isInteger(port) && port > 0 && port < 65535 ? port + 1 : 0,
        rtcpAddress: '',
        payloadTypes: fmts.map(Number).filter((n) => Number.isInteger(n) && n >= 0 && n < 128),
        rtpmap: new Map(),
      };
    } else if (type === 'c') {
      // c=IN IP4 192.0.2.1 or c=IN IP6 2001:db8::1 (a TTL/count suffix after '/' is dropped).
      const parts = value.split(' ');
      const address = (parts[2] ?? '').split('/')[0]!.toLowerCase();
      if (current) current.address = address;
      else sessionAddress = address;
    } else if (type === 'a' && current) {
      const rtpmap = /^rtpmap:(\d{1,3}) ([^/\s]+)\/(\d{1,6})/.exec(value);
      if (rtpmap) {
        const pt = Number(rtpmap[1]);
        if (pt < 128 && current.rtpmap.size < 64)
          current.rtpmap.set(pt, { encoding: rtpmap[2]!, clockRate: Number(rtpmap[3]) });
        continue;
      }
      const rtcp = /^rtcp:(\d{1,5})(?: IN IP[46] (\S+))?/.exec(value);
      if (rtcp) {
        const port = Number(rtcp[1]);
        if (port > 0 && port < 65536) current.rtcpPort = port;
        if (rtcp[2]) current.rtcpAddress = rtcp[2].toLowerCase();
      }
    }
  }
  finish();
  return out;
}
