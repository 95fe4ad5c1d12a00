// The target of a SIP probe: a SIP or SIPS URI (RFC 3261 §19.1.1) naming the server to ask, with the
// transport (§19.1.1 `transport` parameter) and port (§19.1.2 defaults: 5060, 5061 for TLS).
import { UserError } from '../errors.js';

export const SIP_TRANSPORTS = ['udp', 'tcp', 'tls'] as const;
export type SipTransport = (typeof SIP_TRANSPORTS)[number];

export interface SipTarget {
  /** The URI as it goes into the request line (scheme, optional user, host, port, parameters). */
  uri: string;
  /** Host name or address; IPv6 without brackets. */
  host: string;
  port: number;
  transport: SipTransport;
}

const MAX_URI = 512;
// scheme ":" [ user "@" ] host [ ":" port ] *( ";" param ); no headers ("?…") in a probe target.
const URI_RE =
  /^(sips?):(?:([A-Za-z0-9\-_.!~*'()&=+$,;?/%]+)@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(\d{1,5}))?((?:;[A-Za-z0-9\-_.!~*'%]+(?:=[A-Za-z0-9\-_.!~*'%[\]/:&+$]+)?)*)$/;

/** Parses `sip:HOST[:PORT][;transport=udp|tcp|tls]`; anything else is a one-line UserError. */
export function parseSipTarget(text: string, flag = '--target'): SipTarget {
  const input = text.trim();
  const shown = input.length > 80 ? `${input.slice(0, 80)}…` : input;
  if (input.length > MAX_URI) throw new UserError(`${flag} is longer than ${MAX_URI} characters`);
  const m = URI_RE.exec(input);
  if (!m) {
    throw new UserError(`${flag} "${shown}" is not a SIP URI (sip:HOST[:PORT][;transport=udp|tcp|tls])`);
  }
  const [, scheme, , hostPart, portText, paramText = ''] = m;
  const params = new Map<string, string>();
  for (const p of paramText.split(';').slice(1)) {
    const eq = p.indexOf('=');
    params.set((eq < 0 ? p : p.slice(0, eq)).toLowerCase(), eq < 0 ? '' : p.slice(eq + 1));
  }
  const secure = scheme === 'sips';
  const given = params.get('transport')?.toLowerCase();
  if (given !== undefined && !(SIP_TRANSPORTS as readonly string[]).includes(given)) {
    throw new UserError(`${flag}: transport "${given}" is not one of ${SIP_TRANSPORTS.join(', ')}`);
  }
  // A SIPS URI asks for TLS on every hop (§26.2.2); transport=udp cannot honour that.
  if (secure && given === 'udp') throw new UserError(`${flag}: a sips: URI cannot use transport=udp`);
  const transport: SipTransport = secure ? 'tls' : ((given as SipTransport | undefined) ?? 'udp');
  const port = portText === undefined ? (transport === 'tls' ? 5061 : 5060) : Number(portText);
  if (port < 1 || port > 65535) throw new UserError(`${flag}: port ${portText} is outside 1..65535`);
  const host = hostPart!.startsWith('[') ? hostPart!.slice(1, -1) : hostPart!;
  return { uri: input, host, port, transport };
}
