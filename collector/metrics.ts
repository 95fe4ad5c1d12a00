// Prometheus metrics on the app's own registry. Path gauges are filled at scrape time from the latest
// assessment of each site (collect callbacks), so they always show the newest evidence. Labels are
// low-cardinality: site, peer, direction, traffic class — never report ids.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ProbeResult } from '../src/schemas.js';
import { RESPONSE_STATS } from '../src/sip/schema.js';
import { type Assessment, readinessAt, type SipTargetAssessment } from './assessment.js';
import { registerHostMetrics } from './metrics-host.js';
import { registerPriorityMetrics } from './metrics-priority.js';
import { dscpHonoured } from './store/influx.js';
import type { SiteLatest } from './store/store.js';

export interface MetricsSources {
  latest: () => Iterable<SiteLatest>;
  /** The latest host result of every site's hosts. */
  latestHosts?: () => Iterable<SiteLatest>;
  now: () => number;
  outboxSize: () => Promise<number>;
}

export interface CollectorMetrics {
  registry: Registry;
  reportsIngested: Counter<'result'>;
  httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  influxPointsWritten: Counter;
  influxWriteFailures: Counter;
  influxPointsRejected: Counter;
}

const DIRECTIONS = ['forward', 'reverse'] as const;

function eachDirection(
  sources: MetricsSources,
  fn: (
    labels: { site: string; peer: string; direction: string },
    probe: ProbeResult,
    dir: 'forward' | 'reverse',
  ) => void,
): void {
  for (const { report } of sources.latest()) {
    for (const probe of report.probes) {
      for (const direction of DIRECTIONS)
        fn({ site: report.site, peer: probe.peer, direction }, probe, direction);
    }
  }
}

function pacingLabel(p: NonNullable<ProbeResult['sendPacing']>): string {
  if (p.by === 'js-timer') return 'js-timer';
  return p.realtime ? 'realtime' : p.shortSlice ? 'short-slice' : 'ordinary';
}

export function createMetrics(sources: MetricsSources): CollectorMetrics {
  const registry = new Registry();
  const pathLabels = ['site', 'peer', 'direction'] as const;

  new Gauge({
    name: 'voipready_path_latency_seconds',
    help: 'Latest one-way delay per site, peer and direction (RTT/2 when the clocks are not synchronised).',
    labelNames: pathLabels,
    registers: [registry],
    collect() {
      this.reset();
      eachDirection(sources, (labels, probe, dir) => {
        const ms = probe.oneWayMs[dir];
        if (ms !== null) this.set(labels, ms / 1000);
      });
    },
  });
  new Gauge({
    name: 'voipready_path_jitter_seconds',
    help: 'Latest RFC 3550 interarrival jitter per site, peer and direction.',
    labelNames: pathLabels,
    registers: [registry],
    collect() {
      this.reset();
      eachDirection(sources, (labels, probe, dir) => {
        if (probe[dir].received > 0) this.set(labels, probe[dir].jitterMs / 1000);
      });
    },
  });
  new Gauge({
    name: 'voipready_path_loss_ratio',
    help: 'Latest RTP packet loss (lost / sent) per site, peer and direction.',
    labelNames: pathLabels,
    registers: [registry],
    collect() {
      this.reset();
      eachDirection(sources, (labels, probe, dir) => {
        const d = probe[dir];
        if (d.sent > 0) this.set(labels, Math.max(0, d.lost) / d.sent);
      });
    },
  });
  new Gauge({
    name: 'voipready_path_dscp_honoured',
    help: '1 when every packet arrived with the DSCP it was sent with, 0 when the mark was rewritten, -1 when unknown (not measured).',
    labelNames: [...pathLabels, 'traffic'] as const,
    registers: [registry],
    collect() {
      this.reset();
      eachDirection(sources, (labels, probe, dir) => {
        this.set({ ...labels, traffic: 'rtp' }, dscpHonoured(probe[dir]) ?? -1);
        this.set({ ...labels, traffic: 'signalling' }, dscpHonoured(probe.signalling[dir]) ?? -1);
      });
    },
  });
  new Gauge({
    name: 'voipready_path_mos',
    help: 'Latest E-model (ITU-T G.107) MOS estimate per site and peer.',
    labelNames: ['site', 'peer'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { report } of sources.latest()) {
        for (const probe of report.probes) {
          if (probe.mos !== null) this.set({ site: report.site, peer: probe.peer }, probe.mos);
        }
      }
    },
  });
  new Gauge({
    name: 'voipready_probe_send_lateness_seconds',
    help: "How late the agent's packets left against their due time in the latest probe per site and peer (quantile 0.5, 0.99, 1); on the native layer part of the forward jitter. pacing: realtime (sender thread at SCHED_FIFO), short-slice or ordinary (thread not real-time), js-timer.",
    labelNames: ['site', 'peer', 'quantile', 'pacing'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { report } of sources.latest()) {
        for (const probe of report.probes) {
          const t = probe.sendTiming;
          if (!t || !probe.sendPacing) continue;
          const pacing = pacingLabel(probe.sendPacing);
          for (const [quantile, ms] of [
            ['0.5', t.p50Ms],
            ['0.99', t.p99Ms],
            ['1', t.maxMs],
          ] as const) {
            // Microseconds are the figures' precision: no float tail in the exposition.
            if (ms !== null)
              this.set(
                { site: report.site, peer: probe.peer, quantile, pacing },
                Math.round(ms * 1000) / 1e6,
              );
          }
        }
      }
    },
  });
  // SIP OPTIONS (voipready.sip/1): per SIP server asked, from the site's latest assessment.
  const sipLabels = ['site', 'target', 'transport'] as const;
  const eachSipTarget = (
    fn: (labels: Record<(typeof sipLabels)[number], string>, t: SipTargetAssessment) => void,
  ) => {
    for (const { assessment } of sources.latest()) {
      for (const t of assessment.sip ?? [])
        fn({ site: assessment.site, target: t.target, transport: t.transport }, t);
    }
  };
  new Gauge({
    name: 'voipready_sip_response_seconds',
    help: 'Latest SIP OPTIONS time to the final response per site and SIP server: quantile 0 (min), 0.5, 0.95, 1 (max) over the run.',
    labelNames: [...sipLabels, 'quantile'] as const,
    registers: [registry],
    collect() {
      this.reset();
      eachSipTarget((labels, t) => {
        for (const { key, quantile } of RESPONSE_STATS) {
          const ms = t.responseMs[key];
          if (ms !== null) this.set({ ...labels, quantile }, ms / 1000);
        }
      });
    },
  });
  new Gauge({
    name: 'voipready_sip_answered_ratio',
    help: 'Latest share of SIP OPTIONS requests answered with a final response (any code) per site and SIP server.',
    labelNames: sipLabels,
    registers: [registry],
    collect() {
      this.reset();
      eachSipTarget((labels, t) => {
        if (t.sent > 0) this.set(labels, t.answered / t.sent);
      });
    },
  });
  const siteGauge = (name: string, help: string, value: (a: Assessment, nowMs: number) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['site'] as const,
      registers: [registry],
      collect() {
        this.reset();
        const now = sources.now();
        for (const { assessment } of sources.latest())
          this.set({ site: assessment.site }, value(assessment, now));
      },
    });
  siteGauge(
    'voipready_site_ready',
    '1 when the site is VoIP-ready now (latest assessment passes and is not stale), else 0.',
    (a, now) => (readinessAt(a.site, a, now).ready ? 1 : 0),
  );
  siteGauge(
    'voipready_site_evidence_age_seconds',
    'Age of the evidence behind each site’s latest assessment.',
    (a, now) => Math.max(0, now - Date.parse(a.measuredAt)) / 1000,
  );
  registerPriorityMetrics(registry, sources.latest);
  if (sources.latestHosts)
    registerHostMetrics(registry, { latestHosts: sources.latestHosts, now: sources.now });
  new Gauge({
    name: 'voipready_influx_outbox_points',
    help: 'Points committed locally and not yet written to InfluxDB.',
    registers: [registry],
    async collect() {
      this.set(await sources.outboxSize());
    },
  });

  return {
    registry,
    reportsIngested: new Counter({
      name: 'voipready_reports_ingested_total',
      help: 'Report posts by result: stored, duplicate, conflict, invalid, unauthorized, forbidden, too_large, unsupported_media_type, rate_limited, unavailable, error.',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'voipready_http_request_duration_seconds',
      help: 'HTTP request duration by method, route and status code.',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    influxPointsWritten: new Counter({
      name: 'voipready_influx_points_written_total',
      help: 'Points written to InfluxDB.',
      registers: [registry],
    }),
    influxWriteFailures: new Counter({
      name: 'voipready_influx_write_failures_total',
      help: 'Failed InfluxDB writes (retried with backoff).',
      registers: [registry],
    }),
    influxPointsRejected: new Counter({
      name: 'voipready_influx_points_rejected_total',
      help: 'Points InfluxDB refused (4xx), set aside in the store for inspection; the rest went on.',
      registers: [registry],
    }),
  };
}

const RESULT_BY_STATUS: Record<number, string> = {
  200: 'duplicate',
  202: 'stored',
  400: 'invalid',
  401: 'unauthorized',
  403: 'forbidden',
  409: 'conflict',
  413: 'too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  503: 'unavailable',
};

/** The `result` label for a report post's HTTP status. */
export function ingestResult(status: number): string {
  return RESULT_BY_STATUS[status] ?? (status >= 500 ? 'error' : 'invalid');
}
