// The agent's own DSCP path trace: when a probe run's dscp-rtp or dscp-sip check fails because the
// forward direction (site → reflector) delivered another mark than the one sent, the agent traces
// that port with that mark and attaches the trace to the same report, so the collector can say at
// which hop the mark changed. The reverse direction is not traced: a trace follows its own probes,
// and the reverse path can only be traced from the reflector's end. At most one trace per peer
// and check per `everyMs` (default an hour): a trace sends a few dozen probes and asks every router
// for ICMP, which is not something to repeat every five minutes while a rewrite persists.
import { parseHostPort } from '../../src/args.js';
import type { ProbeResult } from '../../src/schemas.js';
import { MAX_REPORT_TRACES, TraceEvidence, type TraceResult, traceFinding } from '../../src/trace-schema.js';
import type { Clock } from './clock.js';
import type { Log } from './log.js';

export interface TraceRequest {
  host: string;
  port: number;
  dscp: number;
  secret?: Buffer;
}

/** Runs one trace from this host (the CLI wires agent/trace/trace.ts runTrace after resolving the host). */
export type TraceFn = (request: TraceRequest) => Promise<TraceResult>;

export const AUTO_TRACE_EVERY_MS = 3_600_000;

type DscpCheck = TraceEvidence['check'];

interface Target {
  check: DscpCheck;
  port: number;
  dscp: number;
}

/** The mark was sent as asked and arrived as something else in this direction. */
function rewrittenForward(d: {
  dscpSent: number | null;
  dscpReceived: Record<string, number>;
}): number | undefined {
  if (d.dscpSent === null) return undefined;
  return Object.keys(d.dscpReceived).some((k) => Number(k) !== d.dscpSent) ? d.dscpSent : undefined;
}

/** The failing DSCP checks whose forward direction saw a rewrite, with the port and mark to trace. */
export function traceTargets(result: ProbeResult, mediaPort: number, signallingPort: number): Target[] {
  const failing = (id: DscpCheck) =>
    result.checks.some((c) => c.id === id && (c.status === 'fail' || c.status === 'warn'));
  const targets: Target[] = [];
  const media = rewrittenForward(result.forward);
  if (failing('dscp-rtp') && media !== undefined)
    targets.push({ check: 'dscp-rtp', port: mediaPort, dscp: media });
  const sip = rewrittenForward(result.signalling.forward);
  if (failing('dscp-sip') && sip !== undefined)
    targets.push({ check: 'dscp-sip', port: signallingPort, dscp: sip });
  return targets;
}

export interface AutoTraceProbe {
  /** HOST:PORT of the reflector, as configured (and as the probe result names it). */
  peer: string;
  signallingPort?: number;
  secret?: Buffer;
}

/** Returns the traces to attach to a probe's report (none when nothing failed or all were traced recently). */
export function autoTracer(trace: TraceFn, clock: Clock, log: Log, everyMs = AUTO_TRACE_EVERY_MS) {
  const lastMs = new Map<string, number>();
  return async (p: AutoTraceProbe, result: ProbeResult): Promise<TraceEvidence[]> => {
    const { host, port } = parseHostPort(p.peer, 'peer');
    const out: TraceEvidence[] = [];
    for (const t of traceTargets(result, port, p.signallingPort ?? port + 1).slice(0, MAX_REPORT_TRACES)) {
      const key = `${p.peer}|${t.check}`;
      const nowMs = clock.now();
      const last = lastMs.get(key);
      // A clock stepped back counts as due: the limit must not stick for the size of the step.
      if (last !== undefined && nowMs >= last && nowMs - last < everyMs) continue;
      lastMs.set(key, nowMs);
      try {
        const traced = await trace({
          host,
          port: t.port,
          dscp: t.dscp,
          ...(p.secret ? { secret: p.secret } : {}),
        });
        const evidence = TraceEvidence.safeParse({
          peer: result.peer,
          check: t.check,
          direction: 'forward',
          trace: traced,
        });
        // A trace the report contract refuses (an error text with a newline, say) would cost the
        // collector the whole report: it stays in the log instead.
        if (!evidence.success) {
          const issue = evidence.error.issues[0];
          log(
            'warn',
            'trace.unfit',
            `${t.check} trace towards ${p.peer} not attached: it breaks the report contract at ${issue?.path.join('.')}: ${issue?.message}`,
            {
              peer: p.peer,
              check: t.check,
            },
          );
          continue;
        }
        out.push(evidence.data);
        log('info', 'trace.done', `${t.check} failed towards ${p.peer}: ${traceFinding(traced)}`, {
          peer: p.peer,
          check: t.check,
          outcome: traced.outcome,
          firstChangeAtTtl: traced.firstChangeAtTtl,
        });
      } catch (err) {
        log('warn', 'trace.failed', `${t.check} trace towards ${p.peer} not run: ${(err as Error).message}`, {
          peer: p.peer,
          check: t.check,
        });
      }
    }
    return out;
  };
}
