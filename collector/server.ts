// Starting and stopping a collector: open the store, start the InfluxDB writer when configured,
// listen. Used by `voipready collector` and by tests that need a real listening collector.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { CollectorConfig } from '../src/config/collector.js';
import { errorMessage, UserError } from '../src/errors.js';
import { buildApp } from './app.js';
import { PostgresCaseStore } from './cases/postgres.js';
import { startCaseWork } from './cases/run.js';
import { SqliteCaseStore } from './cases/sqlite.js';
import type { CaseStore } from './cases/store.js';
import { InfluxOutboxWriter } from './store/influx.js';
import { PostgresStore } from './store/postgres.js';
import { SqliteStore } from './store/sqlite.js';
import type { ReportStore } from './store/store.js';

export interface StartOptions {
  config: CollectorConfig;
  dataDir: string;
  host: string;
  port: number;
  now?: () => number;
  logger?: FastifyBaseLogger;
  /** How often the case clocks and the webhook outbox are looked at (default 30 s). */
  casePollMs?: number;
}

export interface RunningCollector {
  app: FastifyInstance;
  /** http://host:port the collector listens on. */
  url: string;
  port: number;
  /** Stops accepting, finishes in-flight requests, drains nothing more to InfluxDB, closes the store. */
  close(): Promise<void>;
}

/** The report and case stores the configuration names: SQLite in dataDir, or PostgreSQL. */
async function openStores(opts: StartOptions): Promise<{ store: ReportStore; caseStore: CaseStore }> {
  const { config } = opts;
  const webhooks = config.cases.webhooks.map((w) => w.name);
  if (config.store.kind === 'postgres') {
    const pgConfig = config.store;
    const where = `the PostgreSQL store at ${redactUrl(pgConfig.url)}`;
    let store: PostgresStore;
    try {
      store = await PostgresStore.open(pgConfig);
    } catch (err) {
      throw new UserError(`cannot open ${where}: ${errorMessage(err)}`);
    }
    try {
      return { store, caseStore: await PostgresCaseStore.open(pgConfig, webhooks) };
    } catch (err) {
      await store.close();
      throw new UserError(`cannot open the case tables of ${where}: ${errorMessage(err)}`);
    }
  }
  let store: SqliteStore;
  try {
    store = new SqliteStore(opts.dataDir, {
      synchronous: config.synchronous,
      headroomBytes: config.bodyLimitBytes,
    });
  } catch (err) {
    throw new UserError(`cannot open the store in ${opts.dataDir}: ${(err as Error).message}`);
  }
  try {
    return { store, caseStore: new SqliteCaseStore(opts.dataDir, webhooks) };
  } catch (err) {
    await store.close();
    throw new UserError(`cannot open the case tables in ${opts.dataDir}: ${(err as Error).message}`);
  }
}

/** A database URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the configured URL';
  }
}

export async function startCollector(opts: StartOptions): Promise<RunningCollector> {
  const { store, caseStore } = await openStores(opts);
  const influxConfig = opts.config.influxdb;
  let app: FastifyInstance | undefined;
  const influx = influxConfig
    ? new InfluxOutboxWriter({
        store,
        config: influxConfig,
        events: {
          onWrite: (n) => app?.collector.metrics.influxPointsWritten.inc(n),
          onFailure: (message) => {
            app?.collector.metrics.influxWriteFailures.inc();
            app?.log.warn(`InfluxDB write failed, points kept in the outbox: ${message}`);
          },
          onStoreUnavailable: (message) => app?.log.warn(`InfluxDB outbox not read: ${message}`),
          onRejected: (n, firstError) => {
            app?.collector.metrics.influxPointsRejected.inc(n);
            app?.log.warn(`InfluxDB refused ${n} points, set aside (table influx_rejected): ${firstError}`);
          },
        },
      })
    : undefined;
  let caseWork: ReturnType<typeof startCaseWork> | undefined;
  app = buildApp({
    config: opts.config,
    store,
    caseStore,
    onCaseNotify: () => caseWork?.poke(),
    ...(opts.now ? { now: opts.now } : {}),
    ...(influx ? { influx } : {}),
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
  app.addHook('onClose', async () => {
    await caseWork?.stop();
    await influx?.stop();
    await caseStore.close();
    await store.close();
  });
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (err) {
    await app.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UserError(`port ${opts.port} on ${opts.host} is already in use`);
    if (code === 'EADDRNOTAVAIL') throw new UserError(`address ${opts.host} is not on this machine`);
    if (code === 'EACCES')
      throw new UserError(`not allowed to listen on port ${opts.port} (ports below 1024 need privilege)`);
    throw err;
  }
  influx?.start();
  try {
    caseWork = startCaseWork(app, opts.casePollMs ?? 30_000);
  } catch (err) {
    await app.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const running = app;
  return { app: running, url: `http://${host}:${port}`, port, close: () => running.close() };
}
