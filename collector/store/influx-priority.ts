// Priority-under-load points for InfluxDB (docs/probe.md, "Priority under load"): measurement
// `voipready_priority`, one point per class (ef, be) per phase (unloaded, loaded, after) of each
// probe run with --priority-test, at the probe's start; tags site, agent, peer, codec, class, phase.
import { PRIORITY_PHASES } from '../../src/priority-schema.js';
import type { AgentReport, CheckStatus } from '../../src/schemas.js';
import type { Assessment } from '../assessment.js';
import type { SeriesPoint } from './store.js';

export const PRIORITY_MEASUREMENT = 'voipready_priority';

/** The collector's `priority` check as a number: 1 EF kept its limits, 0 it degraded; unknown: absent (as dscpHonoured). */
const HONOURED: Partial<Record<CheckStatus, number>> = { pass: 1, warn: 0, fail: 0 };

export function priorityPoints(
  report: AgentReport,
  assessment: Assessment,
  timeOf: (probeIndex: number) => number,
): SeriesPoint[] {
  return report.probes.flatMap((probe, i) => {
    const p = probe.priority;
    if (!p) return [];
    const check = assessment.peers[i]?.checks.find((c) => c.id === 'priority');
    const honoured = check ? HONOURED[check.status] : undefined;
    // the run's figures, on every point (as calls and durationS on voipready_rtp)
    const run: SeriesPoint['fields'] = {
      loadMode: p.loadMode,
      loadCapBps: p.loadCapBps,
      loadTargetBps: p.loadTargetBps,
      loadSentBps: p.loadSentBps,
      loadSentPackets: p.loadSentPackets,
      ...(check ? { checkStatus: check.status } : {}),
      ...(honoured === undefined ? {} : { honoured }),
      ...(p.loadNotSentReason === null ? {} : { loadNotSentReason: p.loadNotSentReason }),
      reportId: report.reportId,
    };
    return (['ef', 'be'] as const).flatMap((cls) =>
      PRIORITY_PHASES.map((phase) => {
        const c = p[cls];
        const f = c[phase];
        const fields: SeriesPoint['fields'] = {
          ...run,
          dscp: c.dscp,
          sent: f.sent,
          returned: f.returned,
          lossPct: f.lossPct,
          phaseStartS: p.phasesS[phase][0],
          phaseEndS: p.phasesS[phase][1],
        };
        if (f.delayP50Ms !== null) fields.delayP50Ms = f.delayP50Ms;
        if (f.delayP95Ms !== null) fields.delayP95Ms = f.delayP95Ms;
        if (f.jitterMs !== null) fields.jitterMs = f.jitterMs;
        // loaded over unloaded: a figure of the loaded phase
        if (phase === 'loaded') {
          if (c.addedDelayP50Ms !== null) fields.addedDelayP50Ms = c.addedDelayP50Ms;
          if (c.addedDelayP95Ms !== null) fields.addedDelayP95Ms = c.addedDelayP95Ms;
        }
        return {
          measurement: PRIORITY_MEASUREMENT,
          tags: {
            site: report.site,
            agent: report.agent,
            peer: probe.peer,
            codec: probe.codec,
            class: cls,
            phase,
          },
          fields,
          timeMs: timeOf(i),
        };
      }),
    );
  });
}
