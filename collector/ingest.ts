// The ingest service: judge a report with its site's policy, commit it (with its time-series points
// when InfluxDB is configured), and keep each site's latest assessment at hand for readiness and
// /metrics.
import { randomUUID } from 'node:crypto';
import type { CollectorConfig } from '../src/config/collector.js';
import { DEFAULT_POLICY } from '../src/policy.js';
import type { AgentReport } from '../src/schemas.js';
import { type Assessment, assessReport } from './assessment.js';
import { pointsFromReport } from './store/influx.js';
import type { ReportStore, SaveResult, SiteLatest } from './store/store.js';

/**
 * A new assessment id in the UUID version 7 layout (RFC 9562 §5.7): 48 bits of Unix milliseconds,
 * then 74 random bits. Ids made later sort later, so SQLite appends them at the right edge of the
 * assessments' primary-key index instead of touching a random page of it for every report. The
 * random bits are a version 4 UUID's (Node draws those from a pool; randomBytes(16) costs a call
 * into OpenSSL per id).
 */
export function timeOrderedId(nowMs: number): string {
  const time = (Math.max(0, Math.trunc(nowMs)) % 2 ** 48).toString(16).padStart(12, '0');
  // randomUUID(): xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx; keep everything after the version digit.
  return `${time.slice(0, 8)}-${time.slice(8)}-7${randomUUID().slice(15)}`;
}

/** How stale what other collectors stored may be here (stores shared by several collectors). */
const REFRESH_EVERY_MS = 1000;

export interface IngestDeps {
  store: ReportStore;
  config: CollectorConfig;
  now: () => number;
  newId?: () => string;
  /** Whether points are queued for InfluxDB. */
  timeSeries: boolean;
  /** Called after a report with points was committed. */
  onPoints?: () => void;
  /** Called after a new assessment was committed. */
  onStored?: (assessment: Assessment) => void;
}

export interface IngestOutcome {
  result: SaveResult;
  assessment: Assessment;
}

export class IngestService {
  private readonly latest = new Map<string, SiteLatest>();
  /** Per site, per host: the latest assessment carrying that host's result. */
  private readonly latestHosts = new Map<string, Map<string, SiteLatest>>();

  private reloading: Promise<void> | undefined;
  private reloadedAtMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly deps: IngestDeps) {}

  /**
   * Reads every site's latest evidence from the store (on start; and before answering from it when
   * the store is shared with other collectors, which store reports this one never sees). Calls made
   * while one runs share it.
   */
  reload(): Promise<void> {
    this.reloading ??= (async () => {
      try {
        const [sites, hosts] = await Promise.all([
          this.deps.store.latestPerSite(),
          this.deps.store.latestHostsPerSite(),
        ]);
        for (const l of sites) this.keepSite(l);
        for (const l of hosts) this.keepHost(l);
        this.reloadedAtMs = performance.now();
      } finally {
        this.reloading = undefined;
      }
    })();
    return this.reloading;
  }

  /** reload(), unless one finished less than a second ago (for stores other collectors share). */
  async refresh(): Promise<void> {
    if (performance.now() - this.reloadedAtMs < REFRESH_EVERY_MS) return;
    await this.reload();
  }

  /** Keeps an assessment as its site's latest unless a newer one is held. */
  private keepSite({ assessment, report }: SiteLatest): void {
    const current = this.latest.get(report.site);
    if (current?.assessment.assessmentId === assessment.assessmentId) return;
    if (!current || Date.parse(assessment.measuredAt) >= Date.parse(current.assessment.measuredAt)) {
      // A report without RTP probes (a SIP run) keeps the site's last probe measurements at hand
      // for /metrics and documents; its own results live in the assessment.
      const measured = report.probes.length > 0 || !current ? report : current.report;
      this.latest.set(report.site, { assessment, report: measured });
    }
  }

  /** Keeps a host result as its host's latest unless a newer one is held. */
  private keepHost(l: SiteLatest): void {
    const host = l.report.host?.host;
    if (host === undefined) return;
    let hosts = this.latestHosts.get(l.report.site);
    if (!hosts) {
      hosts = new Map();
      this.latestHosts.set(l.report.site, hosts);
    }
    const current = hosts.get(host);
    if (!current || Date.parse(l.assessment.measuredAt) >= Date.parse(current.assessment.measuredAt)) {
      hosts.set(host, l);
    }
  }

  async ingest(report: AgentReport): Promise<IngestOutcome> {
    const { store, config, now, timeSeries } = this.deps;
    const body = JSON.stringify(report);
    // The evidence a report carries forward is the site's latest, which another collector on a
    // shared store may have stored a moment ago.
    if (store.shared) {
      const stored = await store.latestOf(report.site);
      if (stored) this.keepSite(stored);
    }
    const receivedAtMs = now();
    const assessment = assessReport({
      report,
      policy: config.sites[report.site]?.policy ?? DEFAULT_POLICY,
      assessmentId: this.deps.newId?.() ?? timeOrderedId(receivedAtMs),
      receivedAtMs,
      validForMs: config.readinessValidFor,
      previous: this.latest.get(report.site)?.assessment,
    });
    const points = timeSeries ? pointsFromReport(report, assessment) : [];
    const result = await store.save({
      report,
      body,
      receivedAtMs: Date.parse(assessment.assessedAt),
      assessment,
      points,
    });
    if (result === 'stored') {
      this.keepSite({ assessment, report });
      this.keepHost({ assessment, report });
      if (points.length > 0) this.deps.onPoints?.();
      this.deps.onStored?.(assessment);
    }
    return { result, assessment };
  }

  latestPerSite(): SiteLatest[] {
    return [...this.latest.values()];
  }

  latestFor(site: string): SiteLatest | undefined {
    return this.latest.get(site);
  }

  /** Every site's hosts' latest host results. */
  latestHostsPerSite(): SiteLatest[] {
    return [...this.latestHosts.values()].flatMap((hosts) => [...hosts.values()]);
  }

  /** The latest host results of one site's hosts. */
  hostsFor(site: string): SiteLatest[] {
    return [...(this.latestHosts.get(site)?.values() ?? [])];
  }

  /** Sites with evidence, and sites the configuration names (agents bound to them, policies). */
  knownSites(): string[] {
    const { config } = this.deps;
    const sites = new Set([
      ...this.latest.keys(),
      ...this.latestHosts.keys(),
      ...config.agents.map((a) => a.site),
      ...Object.keys(config.sites),
    ]);
    return [...sites].sort();
  }
}
