// The SIP OPTIONS probe: one module, the probes' outer form (config in, voipready.sip/1 document out,
// failure as data with `succeeded: false` and the reason). Each request is an RFC 3261 §17.1.2
// non-INVITE client transaction: over UDP retransmitted on Timer E (T1, doubling up to T2), given
// up on Timer F (64·T1); over TCP/TLS sent once, Timer F still bounding the wait. Responses are
// matched to their transaction by the top Via branch and the CSeq method (§17.1.3); anything else
// is counted (stray, malformed, duplicate) and otherwise ignored.
import { randomBytes } from 'node:crypto';
import { parseSipMessage } from '../../src/capture/sip.js';
import { DSCP } from '../../src/dscp.js';
import { errorMessage } from '../../src/errors.js';
import { DEFAULT_POLICY, isReady, type Policy } from '../../src/policy.js';
import { judgeSipRun } from '../../src/sip/judge.js';
import { BRANCH_COOKIE, buildOptions, DEFAULT_T1_MS, DEFAULT_T2_MS } from '../../src/sip/message.js';
import { MAX_SIP_REQUESTS, SIP_SCHEMA, type SipRequest, type SipResult } from '../../src/sip/schema.js';
import { parseSipTarget, type SipTarget } from '../../src/sip/target.js';
import { loadNativeUdp, type NativeBinding } from '../net/native-udp.js';
import { wallNowMs } from '../net/wall-clock.js';
import { summarize } from '../probe/timing.js';
import { resolveHost } from '../probe.js';
import { type OpenFailure, openSipTransport, type SipConnection, type SipHandlers } from './transport.js';

export interface SipPingConfig {
  /** sip:HOST[:PORT][;transport=udp|tcp|tls] */
  target: string;
  count: number;
  /** Between the starts of two requests. */
  intervalMs: number;
  t1Ms?: number;
  t2Ms?: number;
  /** DSCP of the requests; CS3 (the handbook's class for SIP) by default. */
  dscp?: number;
  /** Verify the TLS server's certificate (default true). */
  tlsVerify?: boolean;
  policy?: Policy;
}

export interface SipPingDeps {
  /** Milliseconds, monotonic within the run (stamps of sends and arrivals). */
  now: () => number;
  /** Wall clock for the document's startedAt. */
  wallNow: () => number;
  sleep: (ms: number) => Promise<void>;
  setTimer: (fn: () => void, ms: number) => () => void;
  lookup: (host: string) => Promise<{ address: string }>;
  open: typeof openSipTransport;
  /** Random token (hex) for branch, tag and Call-ID. */
  token: (bytes: number) => string;
  useRawSocket: boolean;
  /** The native UDP layer, or why not (tests switch it off to exercise the dgram path). */
  nativeUdp: () => NativeBinding | string;
  userAgent: string;
}

export const systemSipDeps: SipPingDeps = {
  now: () => performance.now(),
  wallNow: wallNowMs,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
  lookup: resolveHost,
  open: openSipTransport,
  token: (n) => randomBytes(n).toString('hex'),
  useRawSocket: true,
  nativeUdp: loadNativeUdp,
  userAgent: 'voipready',
};

interface Transaction {
  request: SipRequest;
  branch: string;
  text: string;
  sentAt: number;
  done: boolean;
  finish(): void;
  cancelTimers(): void;
}

interface Tally {
  strays: number;
  malformed: number;
  duplicates: number;
}

/** A SIP start line: a response's status line or a request line. */
const SIP_START = /^(SIP\/2\.0 \d{3}|[A-Z]{2,16} \S+ SIP\/2\.0\r?\n)/;

const round3 = (v: number) => Math.round(v * 1000) / 1000;

/** Runs the probe; never throws for anything the network or the server does. */
export async function runSipPing(
  config: SipPingConfig,
  deps: SipPingDeps = systemSipDeps,
): Promise<SipResult> {
  const target = parseSipTarget(config.target);
  if (!Number.isInteger(config.count) || config.count < 1 || config.count > MAX_SIP_REQUESTS) {
    throw new RangeError(`count must be 1..${MAX_SIP_REQUESTS}`);
  }
  const policy = config.policy ?? DEFAULT_POLICY;
  const t1 = config.t1Ms ?? DEFAULT_T1_MS;
  const t2 = Math.max(t1, config.t2Ms ?? DEFAULT_T2_MS);
  const timerF = 64 * t1;
  const startedAt = new Date(deps.wallNow()).toISOString();
  const head = { schema: SIP_SCHEMA, target: target.uri, transport: target.transport, startedAt } as const;

  let address: string;
  try {
    address = (await deps.lookup(target.host)).address;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? errorMessage(err);
    return failed(head, policy, 'resolve', `cannot resolve ${target.host}: ${code}`);
  }

  const transactions = new Map<string, Transaction>();
  const completed = new Set<string>();
  const tally: Tally = { strays: 0, malformed: 0, duplicates: 0 };
  // Every branch of this run starts with one random prefix: a datagram without it is not an answer
  // to us, and is counted without being parsed (a flood costs a substring search per datagram).
  const branchPrefix = `${BRANCH_COOKIE}${deps.token(4)}`;
  let closedReason: string | undefined;
  const handlers: SipHandlers = {
    onMessage: (text, arrivalMs) => {
      if (!text.includes(branchPrefix)) {
        if (SIP_START.test(text)) tally.strays++;
        else tally.malformed++;
        return;
      }
      onMessage(text, arrivalMs, transactions, completed, tally);
    },
    onMalformed: () => {
      tally.malformed++;
    },
    onClosed: (reason) => {
      closedReason = reason;
      for (const tx of transactions.values()) {
        tx.request.error = reason;
        tx.finish();
      }
    },
  };
  let conn: SipConnection | OpenFailure;
  try {
    conn = await deps.open({
      target,
      address,
      dscp: config.dscp ?? DSCP.CS3,
      handlers,
      now: deps.now,
      connectTimeoutMs: timerF,
      tlsVerify: config.tlsVerify ?? true,
      useRawSocket: deps.useRawSocket,
      native: deps.nativeUdp,
    });
  } catch (err) {
    conn = { failedAt: 'socket', reason: errorMessage(err) };
  }
  if ('failedAt' in conn) return failed(head, policy, conn.failedAt, conn.reason);

  const reliable = target.transport !== 'udp';
  const requests: SipRequest[] = [];
  const pending: Promise<void>[] = [];
  let transmissions = 0;
  const transmit = (text: string) => {
    transmissions++;
    conn.send(text);
  };
  try {
    for (let i = 0; i < config.count; i++) {
      if (i > 0) await deps.sleep(config.intervalMs);
      const request: SipRequest = {
        cseq: i + 1,
        code: null,
        reason: null,
        firstResponseMs: null,
        responseMs: null,
        retransmissions: 0,
      };
      requests.push(request);
      if (closedReason !== undefined) {
        request.error = closedReason;
        continue;
      }
      pending.push(
        startTransaction(request, {
          target,
          conn,
          reliable,
          t1,
          t2,
          timerF,
          deps,
          transmit,
          transactions,
          branchPrefix,
        }),
      );
    }
    await Promise.all(pending);
  } finally {
    conn.close();
  }

  const answeredTimes = requests.flatMap((r) => (r.responseMs === null ? [] : [r.responseMs]));
  const stats = summarize(answeredTimes);
  const codes: Record<string, number> = {};
  for (const r of requests) if (r.code !== null) codes[r.code] = (codes[r.code] ?? 0) + 1;
  const answered = answeredTimes.length;
  const received = Object.values(conn.reverse.dscpReceived).reduce((a, b) => a + b, 0);
  return judged(policy, {
    ...head,
    sent: requests.length,
    answered,
    lossPct: round3((100 * (requests.length - answered)) / requests.length),
    codes,
    responseMs: {
      min: stats ? round3(stats.min) : null,
      p50: stats ? round3(stats.p50) : null,
      p95: stats ? round3(stats.p95) : null,
      max: stats ? round3(stats.max) : null,
    },
    succeeded: true,
    privileged: conn.privileged,
    ...(conn.socketPath ? { socketPath: conn.socketPath } : {}),
    retransmissions: requests.reduce((a, r) => a + r.retransmissions, 0),
    strays: tally.strays,
    malformed: tally.malformed,
    duplicates: tally.duplicates,
    dscp: {
      // forward: requests transmitted (retransmissions included); received: those known to have
      // arrived (answered); lost: requests never answered.
      forward: { sent: transmissions, received: answered, lost: requests.length - answered, ...conn.forward },
      // reverse: the server's datagrams seen (raw copies); we cannot know how many it sent.
      reverse: { sent: received, received, lost: 0, ...conn.reverse },
    },
    requests,
    checks: [],
    ready: false,
  });
}

/** Fills in the document's checks and readiness from its own evidence (the judges of src/sip/judge.ts). */
function judged(policy: Policy, result: SipResult): SipResult {
  result.checks = judgeSipRun(result, policy);
  result.ready = isReady(result.checks);
  return result;
}

interface TransactionContext {
  target: SipTarget;
  conn: SipConnection;
  reliable: boolean;
  t1: number;
  t2: number;
  timerF: number;
  deps: SipPingDeps;
  transmit: (text: string) => void;
  transactions: Map<string, Transaction>;
  branchPrefix: string;
}

/** Sends one OPTIONS and resolves when it completes or Timer F fires. */
function startTransaction(request: SipRequest, c: TransactionContext): Promise<void> {
  const { deps } = c;
  const branch = `${c.branchPrefix}${deps.token(8)}`;
  const text = buildOptions({
    target: c.target,
    localHost: c.conn.localHost,
    localPort: c.conn.localPort,
    branch,
    fromTag: deps.token(6),
    callId: `${deps.token(12)}@voipready`,
    cseq: request.cseq,
    userAgent: deps.userAgent,
  });
  return new Promise<void>((resolve) => {
    const cancels: (() => void)[] = [];
    const tx: Transaction = {
      request,
      branch,
      text,
      sentAt: deps.now(),
      done: false,
      cancelTimers: () => {
        for (const cancel of cancels.splice(0)) cancel();
      },
      finish: () => {
        if (tx.done) return;
        tx.done = true;
        tx.cancelTimers();
        c.transactions.delete(branch);
        resolve();
      },
    };
    c.transactions.set(branch, tx);
    c.transmit(text);
    // Timer E (§17.1.2.2): UDP only; T1, doubling to T2; once a provisional response came, T2.
    if (!c.reliable) {
      let intervalE = c.t1;
      const armE = () => {
        cancels.push(
          deps.setTimer(() => {
            if (tx.done) return;
            c.transmit(text);
            request.retransmissions++;
            intervalE = request.firstResponseMs !== null ? c.t2 : Math.min(2 * intervalE, c.t2);
            armE();
          }, intervalE),
        );
      };
      armE();
    }
    cancels.push(
      deps.setTimer(() => {
        request.error = `no final response before Timer F (${c.timerF} ms)`;
        tx.finish();
      }, c.timerF),
    );
  });
}

function onMessage(
  text: string,
  arrivalMs: number,
  transactions: Map<string, Transaction>,
  completed: Set<string>,
  tally: Tally,
): void {
  const msg = parseSipMessage(text);
  if (!msg) {
    tally.malformed++;
    return;
  }
  // §17.1.3: a response matches a client transaction by the top Via branch and the CSeq method.
  if (msg.status === null || msg.viaBranch === null || msg.cseqMethod?.toUpperCase() !== 'OPTIONS') {
    tally.strays++;
    return;
  }
  const tx = transactions.get(msg.viaBranch);
  if (!tx) {
    if (completed.has(msg.viaBranch)) tally.duplicates++;
    else tally.strays++;
    return;
  }
  const elapsed = round3(Math.max(0, arrivalMs - tx.sentAt));
  if (tx.request.firstResponseMs === null) tx.request.firstResponseMs = elapsed;
  if (msg.status < 200) return; // provisional: Proceeding (§17.1.2.2); Timer E continues at T2
  tx.request.code = msg.status;
  tx.request.reason = (msg.reason ?? '').slice(0, 200);
  tx.request.responseMs = elapsed;
  // Completed: later copies of this response (answers to our retransmissions) are duplicates.
  completed.add(tx.branch);
  tx.finish();
}

function failed(
  head: Pick<SipResult, 'schema' | 'target' | 'transport' | 'startedAt'>,
  policy: Policy,
  failedAt: NonNullable<SipResult['failedAt']>,
  reason: string,
): SipResult {
  const none = { dscpSent: null, dscpReceived: {}, dscpUnknownReason: `the probe did not run: ${reason}` };
  return judged(policy, {
    ...head,
    sent: 0,
    answered: 0,
    lossPct: 0,
    codes: {},
    responseMs: { min: null, p50: null, p95: null, max: null },
    succeeded: false,
    reason: reason.slice(0, 300),
    failedAt,
    privileged: false,
    retransmissions: 0,
    strays: 0,
    malformed: 0,
    duplicates: 0,
    dscp: {
      forward: { sent: 0, received: 0, lost: 0, ...none },
      reverse: { sent: 0, received: 0, lost: 0, ...none },
    },
    requests: [],
    checks: [],
    ready: false,
  });
}
