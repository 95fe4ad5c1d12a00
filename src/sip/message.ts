// Building the OPTIONS request (RFC 3261 §11, headers per §8.1.1) and cutting SIP messages out of a
// TCP/TLS byte stream (§18.3: Content-Length frames them). Parsing itself is the analyzer's tolerant
// parser (src/capture/sip.ts), shared rather than twinned.
import { headerEnd } from '../capture/sip.js';
import type { SipTarget } from './target.js';

/** RFC 3261 §8.1.1.7: a branch starts with this magic cookie. */
export const BRANCH_COOKIE = 'z9hG4bK';
/** RFC 3261 §8.1.1.6: Max-Forwards SHOULD be 70. */
export const MAX_FORWARDS = 70;
/** RFC 3261 §17.1.1.1 timer defaults. */
export const DEFAULT_T1_MS = 500;
export const DEFAULT_T2_MS = 4000;

/**
 * The longest a run can take: its requests' starts, then the last one waiting up to Timer F
 * (64·T1), after a TCP/TLS connect bounded by Timer F as well.
 */
export function sipRunMaxMs(count: number, requestIntervalMs: number, t1Ms = DEFAULT_T1_MS): number {
  return (count - 1) * requestIntervalMs + 2 * 64 * t1Ms;
}

export interface OptionsRequest {
  target: SipTarget;
  /** Our address and port as the server should answer to (Via sent-by, Contact). */
  localHost: string;
  localPort: number;
  branch: string;
  fromTag: string;
  callId: string;
  cseq: number;
  userAgent: string;
}

const hostText = (h: string) => (h.includes(':') ? `[${h}]` : h);

/** The request text; identical bytes for every retransmission (§17.1.2.2). */
export function buildOptions(o: OptionsRequest): string {
  const via = o.target.transport.toUpperCase();
  const local = `${hostText(o.localHost)}:${o.localPort}`;
  const transportParam = o.target.transport === 'udp' ? '' : `;transport=${o.target.transport}`;
  // To carries the target without URI parameters (§8.1.1.2 allows the Request-URI's form).
  const toUri = o.target.uri.split(';')[0]!;
  return [
    `OPTIONS ${o.target.uri} SIP/2.0`,
    // rport (RFC 3581): answer to the source port even behind NAT.
    `Via: SIP/2.0/${via} ${local};branch=${o.branch};rport`,
    `Max-Forwards: ${MAX_FORWARDS}`,
    `From: <sip:voipready@${hostText(o.localHost)}>;tag=${o.fromTag}`,
    `To: <${toUri}>`,
    `Call-ID: ${o.callId}`,
    `CSeq: ${o.cseq} OPTIONS`,
    `Contact: <sip:voipready@${local}${transportParam}>`,
    'Accept: application/sdp',
    `User-Agent: ${o.userAgent}`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** Largest message accepted on a stream before the connection is judged broken. */
export const MAX_STREAM_MESSAGE = 65_535;

/**
 * Cuts whole messages out of a stream. Leading CRLFs (RFC 5626 §3.5.1 keep-alives) are skipped. A
 * header section without a usable Content-Length, or one longer than MAX_STREAM_MESSAGE, cannot be
 * framed: `broken` is set and the caller closes the connection (§18.3).
 */
export class SipStreamFramer {
  private buffer = '';
  broken = false;

  /** Appends latin1-decoded bytes; returns the complete messages now available. */
  push(text: string): string[] {
    if (this.broken) return [];
    this.buffer += text;
    const out: string[] = [];
    for (;;) {
      this.buffer = this.buffer.replace(/^(\r\n|\n)+/, '');
      const he = headerEnd(this.buffer);
      if (!he) {
        if (this.buffer.length > MAX_STREAM_MESSAGE) this.broken = true;
        return out;
      }
      const m = /^(?:content-length|l)[ \t]*:[ \t]*(\d{1,6})[ \t]*\r?$/im.exec(this.buffer.slice(0, he.end));
      if (!m || he.end + Number(m[1]) > MAX_STREAM_MESSAGE) {
        this.broken = true;
        return out;
      }
      const end = he.end + Number(m[1]);
      if (this.buffer.length < end) return out;
      out.push(this.buffer.slice(0, end));
      this.buffer = this.buffer.slice(end);
    }
  }
}
