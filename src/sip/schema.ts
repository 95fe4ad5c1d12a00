// contract: the `voipready sip-ping --json` document, schema `voipready.sip/1` (docs/sip.md). The
// issue's keys (schema, target, transport, sent, answered, codes, responseMs, checks, ready) are kept
// exactly; the others are additions. Every array is bounded, like the rest of the report.
import { z } from 'zod';
// Lazy references to ../schemas.js: that module's AgentReport carries SipResult (an import cycle).
import { CHECK_IDS, Check, SignallingDirection, TagText } from '../schemas.js';
import { SIP_TRANSPORTS } from './target.js';

export const SIP_SCHEMA = 'voipready.sip/1';
/** Requests per run: the CLI's --count and the agent's `count` share this bound. */
export const MAX_SIP_REQUESTS = 1000;

const Ms = z.number().nonnegative();

/** One OPTIONS transaction (RFC 3261 §17.1.2 non-INVITE client transaction). */
export const SipRequest = z.strictObject({
  /** CSeq number; one per request of the run. */
  cseq: z.number().int().positive(),
  /** Final response code, or null when none came before Timer F (or the connection failed). */
  code: z.number().int().min(100).max(699).nullable(),
  reason: z.string().max(200).nullable(),
  /** From the first transmission to the first response of any kind (1xx included). */
  firstResponseMs: Ms.nullable(),
  /** From the first transmission to the final response. */
  responseMs: Ms.nullable(),
  /** Retransmissions sent (UDP: Timer E); 0 over TCP and TLS. */
  retransmissions: z.number().int().nonnegative(),
  /** Why there is no final response ("Timer F fired after 32000 ms", "connection reset"). */
  error: z.string().max(300).optional(),
});
export type SipRequest = z.infer<typeof SipRequest>;

const ResponseStat = Ms.nullable();

/** The responseMs statistics, each with its quantile (Prometheus label) and InfluxDB field name. */
export const RESPONSE_STATS = [
  { key: 'min', quantile: '0', field: 'responseMinMs' },
  { key: 'p50', quantile: '0.5', field: 'responseP50Ms' },
  { key: 'p95', quantile: '0.95', field: 'responseP95Ms' },
  { key: 'max', quantile: '1', field: 'responseMaxMs' },
] as const;

export const SipResult = z.looseObject({
  schema: z.literal(SIP_SCHEMA),
  target: z.lazy(() => TagText(512)),
  transport: z.enum(SIP_TRANSPORTS),
  /** OPTIONS requests sent (transactions started; retransmissions not counted). */
  sent: z.number().int().nonnegative(),
  /** Requests that got a final response. */
  answered: z.number().int().nonnegative(),
  /** Requests without a final response, % of sent (0 when nothing was sent). */
  lossPct: z.number().min(0).max(100).optional(),
  /** Final response codes seen, code → count. */
  codes: z.record(z.string().regex(/^[1-6]\d\d$/), z.number().int().nonnegative()),
  /** Time to the final response over the answered requests; null when none was answered. */
  responseMs: z.strictObject({ min: ResponseStat, p50: ResponseStat, p95: ResponseStat, max: ResponseStat }),
  checks: z.lazy(() => z.array(Check).max(CHECK_IDS.length)),
  ready: z.boolean(),
  /** false: the probe could not run or could not reach the server at all; `reason` says why. */
  succeeded: z.boolean(),
  reason: z.string().max(300).optional(),
  /** Where a failed run stopped: the target (resolve, connect, tls) or this machine (socket). */
  failedAt: z.enum(['resolve', 'connect', 'tls', 'socket']).optional(),
  startedAt: z.iso.datetime({ offset: true }).optional(),
  /** Whether DSCP could be set and read (native socket options, or a raw socket with CAP_NET_RAW). */
  privileged: z.boolean(),
  /** UDP: the socket layer that carried the run (native, or dgram with the reason). */
  socketPath: z
    .strictObject({ path: z.enum(['native', 'dgram']), reason: z.string().max(300).optional() })
    .optional(),
  retransmissions: z.number().int().nonnegative(),
  /** Well-formed SIP messages that matched no request of this run (wrong branch, requests to us). */
  strays: z.number().int().nonnegative(),
  /** Datagrams or stream data that did not parse as SIP. */
  malformed: z.number().int().nonnegative(),
  /** Repeated final responses to a transaction already completed (answers to retransmissions). */
  duplicates: z.number().int().nonnegative(),
  /** CS3 marking: forward = our requests on the way to the server, reverse = its responses to us. */
  dscp: z.lazy(() => z.strictObject({ forward: SignallingDirection, reverse: SignallingDirection })),
  requests: z.array(SipRequest).max(MAX_SIP_REQUESTS),
});
export type SipResult = z.infer<typeof SipResult>;
