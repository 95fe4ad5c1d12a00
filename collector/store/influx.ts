// InfluxDB 1.x as the time-series sink. Points are first committed to the SQLite outbox together
// with their report (so a report is never lost while InfluxDB is down), then this writer drains the
// outbox in order, retrying with exponential backoff and full jitter.
//
// Schema (docs/collector.md): measurement `voipready_rtp`, one point per direction per RTP stream
// (per direction when the probe did not list its streams), at the probe's start time; tags site,
// agent, peer, codec, direction, stream; fields the stream's measurements plus the direction's
// delay and DSCP and the probe's round trip and E-model figures. Host results: ./influx-host.ts;
// the priority test's class × phase figures: ./influx-priority.ts.
import { setTimeout as delay } from 'node:timers/promises';
import { InfluxDB, type IPoint } from 'influx';
import type { InfluxConfig } from '../../src/config/collector.js';
import { errorMessage } from '../../src/errors.js';
import { listedStreams } from '../../src/probe-evidence.js';
import type { AgentReport, DirectionStats, ProbeResult } from '../../src/schemas.js';
import { RESPONSE_STATS } from '../../src/sip/schema.js';
import type { Assessment } from '../assessment.js';
import { hostPoints } from './influx-host.js';
import { priorityPoints } from './influx-priority.js';
import { type RejectedPoint, type ReportStore, type SeriesPoint, StoreUnavailableError } from './store.js';

export const RTP_MEASUREMENT = 'voipready_rtp';

/** After writing a part batch, wait this long before the next write. */
const LINGER_MS = 100;

/** 1 when every packet that arrived carried the mark sent, 0 when some did not, undefined when unknown. */
export function dscpHonoured(d: Pick<DirectionStats, 'dscpSent' | 'dscpReceived'>): number | undefined {
  const marks = Object.entries(d.dscpReceived).filter(([, n]) => n > 0);
  if (d.dscpSent === null || marks.length === 0) return undefined;
  return marks.every(([dscp]) => Number(dscp) === d.dscpSent) ? 1 : 0;
}

function directionFields(probe: ProbeResult, direction: 'forward' | 'reverse'): SeriesPoint['fields'] {
  const d = probe[direction];
  const fields: SeriesPoint['fields'] = {
    sent: d.sent,
    received: d.received,
    lost: d.lost,
    lossPct: d.lossPct,
    duplicates: d.duplicates,
    reordered: d.reordered,
    maxBurstLoss: d.maxBurstLoss,
    jitterMs: d.jitterMs,
    jitterMaxMs: d.jitterMaxMs,
    calls: probe.calls,
    durationS: probe.durationS,
  };
  const oneWay = probe.oneWayMs[direction];
  if (oneWay !== null) {
    fields.oneWayMs = oneWay;
    fields.oneWayEstimated = probe.oneWayMs.estimated;
  }
  if (d.dscpSent !== null) fields.dscpSent = d.dscpSent;
  const honoured = dscpHonoured(d);
  if (honoured !== undefined) fields.dscpHonoured = honoured;
  if (probe.rttMs) {
    fields.rttP50Ms = probe.rttMs.p50;
    fields.rttP99Ms = probe.rttMs.p99;
  }
  if (probe.mos !== null) fields.mos = probe.mos;
  if (probe.rFactor !== null) fields.rFactor = probe.rFactor;
  return fields;
}

/**
 * The points one report becomes: per probe and direction, one per RTP stream (call) when the probe
 * listed its streams (tag `stream`: the call's index, low-cardinality; its SSRC is a field), else
 * one for the direction as a whole.
 */
export function pointsFromReport(report: AgentReport, assessment: Assessment): SeriesPoint[] {
  return [
    ...rtpPoints(report, assessment),
    ...priorityPoints(report, assessment, (i) => probeTimeMs(report, assessment, i)),
    ...sipPoints(report, assessment),
    ...hostPoints(report, assessment.maintenance),
  ];
}

/** A probe's points are at its start, never after arrival (an agent clock far ahead). */
function probeTimeMs(report: AgentReport, assessment: Assessment, probeIndex: number): number {
  const startedAt = report.probes[probeIndex]?.startedAt;
  const startMs = startedAt ? Date.parse(startedAt) : Date.parse(assessment.measuredAt);
  return Math.min(startMs, Date.parse(assessment.assessedAt));
}

export const SIP_MEASUREMENT = 'voipready_sip';

/**
 * One point per SIP OPTIONS run, at its start (never after arrival): tags site, agent, target,
 * transport; fields the run's counts, response times (ms) and answered ratio, one `code_NNN` field
 * per final response code seen, and whether the run was ready.
 */
export function sipPoints(report: AgentReport, assessment: Assessment): SeriesPoint[] {
  const receivedAtMs = Date.parse(assessment.assessedAt);
  return (report.sip ?? []).map((r) => {
    const fields: SeriesPoint['fields'] = {
      sent: r.sent,
      answered: r.answered,
      succeeded: r.succeeded,
      retransmissions: r.retransmissions,
      strays: r.strays,
      malformed: r.malformed,
      ready: r.ready,
      reportId: report.reportId,
    };
    if (r.sent > 0) {
      fields.answeredRatio = r.answered / r.sent;
      fields.lossPct = (100 * (r.sent - r.answered)) / r.sent;
    }
    for (const { key, field } of RESPONSE_STATS) {
      const ms = r.responseMs[key];
      if (ms !== null) fields[field] = ms;
    }
    for (const [code, n] of Object.entries(r.codes)) fields[`code_${code}`] = n;
    if (r.reason !== undefined) fields.reason = r.reason;
    const startedMs = r.startedAt ? Date.parse(r.startedAt) : Date.parse(report.createdAt);
    return {
      measurement: SIP_MEASUREMENT,
      tags: { site: report.site, agent: report.agent, target: r.target, transport: r.transport },
      fields,
      timeMs: Math.min(startedMs, receivedAtMs),
    };
  });
}

function rtpPoints(report: AgentReport, assessment: Assessment): SeriesPoint[] {
  return report.probes.flatMap((probe, i) => {
    const timeMs = probeTimeMs(report, assessment, i);
    const peerReady = assessment.peers[i]?.ready ?? false;
    return (['forward', 'reverse'] as const).flatMap((direction) => {
      const tags = {
        site: report.site,
        agent: report.agent,
        peer: probe.peer,
        codec: probe.codec,
        direction,
      };
      const fields = directionFields(probe, direction);
      fields.peerReady = peerReady;
      fields.reportId = report.reportId;
      const streams = listedStreams(probe[direction]);
      if (!streams) return [{ measurement: RTP_MEASUREMENT, tags, fields, timeMs }];
      // the direction's longest loss burst says nothing about one stream: each carries its own
      // (documents of older agents list none)
      const { maxBurstLoss: _directionOnly, ...shared } = fields;
      return streams.map((s, index) => ({
        measurement: RTP_MEASUREMENT,
        tags: { ...tags, stream: String(index) },
        fields: {
          ...shared,
          ssrc: s.ssrc,
          sent: s.sent,
          received: s.received,
          lost: s.lost,
          lossPct: s.sent > 0 ? (100 * Math.max(0, s.lost)) / s.sent : 0,
          duplicates: s.duplicates,
          reordered: s.reordered,
          ...(s.maxBurstLoss === undefined ? {} : { maxBurstLoss: s.maxBurstLoss }),
          jitterMs: s.jitterMs,
          jitterMaxMs: s.jitterMaxMs,
        },
        timeMs,
      }));
    });
  });
}

export interface InfluxWriterEvents {
  onWrite(points: number): void;
  onFailure(message: string): void;
  /** The outbox could not be read or acknowledged (the store's database is down): not InfluxDB's
   * failure; retried with the same backoff. */
  onStoreUnavailable?(message: string): void;
  /** InfluxDB refused these points (kept aside in the store); the rest of their batch went on. */
  onRejected(points: number, firstError: string): void;
}

/**
 * InfluxDB's 4xx answers that judge the points themselves (unparsable line, field type conflict,
 * beyond the retention policy, a batch too large): retrying them can never succeed. Others (401,
 * 403: credentials; 404: no database) are configuration, retried like an outage.
 */
const VERDICT_ON_POINTS = new Set([400, 413, 422]);

function refusedPoints(err: unknown): boolean {
  const status = (err as { res?: { statusCode?: number } }).res?.statusCode;
  return status !== undefined && VERDICT_ON_POINTS.has(status);
}

export interface InfluxWriterOptions {
  store: ReportStore;
  config: InfluxConfig;
  events: InfluxWriterEvents;
  /** Idle poll period when the outbox is empty and nobody pokes. */
  idleMs?: number;
}

export class InfluxOutboxWriter {
  private readonly influx: InfluxDB;
  private stopped = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private ready = false;
  /** The last write failed (InfluxDB unreachable or refusing): exported for /readyz and metrics. */
  failing = false;

  constructor(private readonly opts: InfluxWriterOptions) {
    const url = new URL(opts.config.url);
    this.influx = new InfluxDB({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
      protocol: url.protocol === 'https:' ? 'https' : 'http',
      database: opts.config.database,
      ...(opts.config.username !== undefined ? { username: opts.config.username } : {}),
      ...(opts.config.password !== undefined ? { password: opts.config.password } : {}),
    });
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** New points are in the outbox: write them now rather than at the next poll. */
  poke(): void {
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private async ensureDatabase(): Promise<void> {
    const { database, retentionPolicy, retentionDuration } = this.opts.config;
    const names = await this.influx.getDatabaseNames();
    if (!names.includes(database)) await this.influx.createDatabase(database);
    if (retentionPolicy !== 'autogen') {
      const policies = await this.influx.showRetentionPolicies(database);
      if (!policies.some((p) => p.name === retentionPolicy)) {
        await this.influx.createRetentionPolicy(retentionPolicy, {
          database,
          duration: retentionDuration,
          replication: 1,
        });
      }
    }
    this.ready = true;
  }

  private async write(points: SeriesPoint[]): Promise<void> {
    const { config } = this.opts;
    const iPoints: IPoint[] = points.map((p) => ({
      measurement: p.measurement,
      tags: p.tags,
      fields: p.fields,
      timestamp: p.timeMs,
    }));
    await this.influx.writePoints(iPoints, {
      database: config.database,
      retentionPolicy: config.retentionPolicy,
      precision: 'ms',
    });
  }

  /**
   * Writes the points; when InfluxDB refuses the batch, halves it until the refused points stand
   * alone (rewriting a point InfluxDB already holds is harmless: one point per series and time).
   * Returns the refused points; throws on anything that is not a verdict on the points.
   */
  private async writeOrSetAside(points: SeriesPoint[]): Promise<RejectedPoint[]> {
    try {
      await this.write(points);
      return [];
    } catch (err) {
      if (!refusedPoints(err)) throw err;
      const [point] = points;
      if (points.length === 1 && point) return [{ point, error: errorMessage(err) }];
      const half = Math.ceil(points.length / 2);
      return [
        ...(await this.writeOrSetAside(points.slice(0, half))),
        ...(await this.writeOrSetAside(points.slice(half))),
      ];
    }
  }

  /** Writes the oldest outbox points; returns how many were done with (0: the outbox is empty). */
  private async writeBatch(): Promise<number> {
    const { store, config, events } = this.opts;
    const batch = await store.outboxPeek(config.batchPoints);
    if (!batch) return 0;
    const rejected = await this.writeOrSetAside(batch.points);
    await store.outboxAck(batch, rejected);
    if (rejected.length > 0) events.onRejected(rejected.length, rejected[0]!.error);
    events.onWrite(batch.points.length - rejected.length);
    return batch.points.length;
  }

  private async run(): Promise<void> {
    const initialMs = 250;
    const maxMs = this.opts.config.retryMax;
    let failures = 0;
    while (!this.stopped) {
      try {
        if (!this.ready) await this.ensureDatabase();
        const wrote = await this.writeBatch();
        this.failing = false;
        failures = 0;
        if (wrote === 0) await this.sleep(this.opts.idleMs ?? 1000);
        // A part batch: let more points gather (fewer, larger writes; pokes do not cut this short).
        else if (wrote < this.opts.config.batchPoints) await delay(LINGER_MS);
      } catch (err) {
        // 404: the database is gone (dropped by hand?): create it again before the next write.
        if ((err as { res?: { statusCode?: number } }).res?.statusCode === 404) this.ready = false;
        failures++;
        if (err instanceof StoreUnavailableError) this.opts.events.onStoreUnavailable?.(err.message);
        else {
          this.failing = true;
          this.opts.events.onFailure(errorMessage(err));
        }
        // Exponential backoff with full jitter.
        const cap = Math.min(maxMs, initialMs * 2 ** Math.min(failures - 1, 20));
        await this.sleep(Math.random() * cap);
      }
    }
  }
}
