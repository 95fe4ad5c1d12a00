// The collector as a Fastify app: services decorated on the root instance, one route plugin per
// resource, auth and metrics as hooks. Side effects (store, clock, InfluxDB writer) come in, so
// tests drive the app with inject() and move the clock.
import type { Socket } from 'node:net';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { CollectorConfig } from '../src/config/collector.js';
import { errorMessage } from '../src/errors.js';
import { renderReportHtml } from '../src/report/html/index.js';
import { readinessAt } from './assessment.js';
import { bearerToken, cookieToken, type Principal, RateLimiter, TokenTable } from './auth.js';
import { CutoverService } from './cases/cutovers.js';
import { CaseService } from './cases/service.js';
import type { CaseStore } from './cases/store.js';
import { IngestService } from './ingest.js';
import { lineLogger } from './log.js';
import { type CollectorMetrics, createMetrics, ingestResult } from './metrics.js';
import { assessmentRoutes } from './routes/assessments.js';
import { caseRoutes } from './routes/cases.js';
import { cutoverRoutes } from './routes/cutovers.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { pageRoutes } from './routes/pages.js';
import { REPORTS_ROUTE, reportRoutes } from './routes/reports.js';
import { siteRoutes } from './routes/sites.js';
import type { InfluxOutboxWriter } from './store/influx.js';
import { type ReportStore, StoreUnavailableError } from './store/store.js';

/**
 * Who may call a route: an agent token, a viewer token (unless reads are open), a support or
 * customer token (cases), or anyone. `page` is `read` for a browser: the viewer token may also come
 * from the session cookie (POST /login), and without one the browser is sent to the login page
 * instead of getting a 401.
 */
export type Access = 'agent' | 'read' | 'page' | 'case' | 'public';

export interface CollectorServices {
  config: CollectorConfig;
  store: ReportStore;
  ingest: IngestService;
  tokens: TokenTable;
  limiter: RateLimiter;
  metrics: CollectorMetrics;
  influx: InfluxOutboxWriter | undefined;
  /** Support cases; present when the app was given a case store. */
  cases: CaseService | undefined;
  now: () => number;
  /** Deletes what is older than `retention` (docs/collector.md, Retention); runs hourly. */
  pruneOld: () => Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    collector: CollectorServices;
  }
  interface FastifyRequest {
    principal: Principal | undefined;
  }
  interface FastifyContextConfig {
    access?: Access;
  }
}

export interface AppOptions {
  config: CollectorConfig;
  store: ReportStore;
  now?: () => number;
  influx?: InfluxOutboxWriter;
  /** Defaults to no logging. */
  logger?: FastifyBaseLogger;
  /** A clock that never steps (ms), for rate limits; defaults to performance.now. */
  monotonicNow?: () => number;
  /** Where cases live (docs/cases.md); without it there are no case routes. */
  caseStore?: CaseStore;
  /** Called when a case change queued notifications (the server wakes its webhook sender). */
  onCaseNotify?: () => void;
}

/** At most `max` open connections, `perAddress` from one client address: the rest are closed. */
function limitConnections(app: FastifyInstance, limits: CollectorConfig['connections']): void {
  app.server.maxConnections = limits.max;
  const perAddress = new Map<string, number>();
  app.server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    const open = (perAddress.get(address) ?? 0) + 1;
    if (open > limits.perAddress) {
      socket.destroy();
      return;
    }
    perAddress.set(address, open);
    socket.once('close', () => {
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
    });
  });
}

const PRUNE_EVERY_MS = 3_600_000;

/** Prunes when the app is ready, then hourly, until it closes. */
function scheduleRetention(app: FastifyInstance): void {
  let timer: NodeJS.Timeout | undefined;
  const prune = () =>
    app.collector.pruneOld().catch((err) => app.log.warn(`retention: ${errorMessage(err)}`));
  app.addHook('onReady', async () => {
    void prune();
    timer = setInterval(prune, PRUNE_EVERY_MS).unref();
  });
  app.addHook('onClose', async () => clearInterval(timer));
}

export function buildApp(opts: AppOptions): FastifyInstance {
  const { config, store } = opts;
  const now = opts.now ?? Date.now;
  const app = Fastify({
    loggerInstance: opts.logger ?? lineLogger('silent', process.stderr),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimitBytes,
    // A client that trickles a request (slowloris) is cut off rather than held forever, and so is
    // one that holds a connection open doing nothing.
    requestTimeout: 30_000,
    connectionTimeout: config.connections.idleTimeout,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
  });

  const ingest = new IngestService({
    store,
    config,
    now,
    timeSeries: opts.influx !== undefined,
    onPoints: () => opts.influx?.poke(),
    // A passing assessment releases the site's withheld cases (the scheduler retries what fails here).
    onStored: (a) => {
      cases
        ?.assessmentStored(a)
        .catch((err) => app.log.error(`releasing cases of ${a.site}: ${errorMessage(err)}`));
    },
  });
  const cases = opts.caseStore
    ? new CaseService({
        store: opts.caseStore,
        config,
        now,
        knownSites: () => ingest.knownSites(),
        readiness: (site, nowMs) => {
          const latest = ingest.latestFor(site);
          return {
            readiness: readinessAt(site, latest?.assessment, nowMs),
            ...(latest ? { document: { ...latest.assessment, measurements: latest.report.probes } } : {}),
          };
        },
        reportHtml: (document) =>
          renderReportHtml(document, {
            generator: 'the voipready collector (a frozen copy attached to a support case)',
            generatedAt: new Date(now()).toISOString(),
          }),
        onWarning: (message) => app.log.warn(message),
        ...(opts.onCaseNotify ? { onNotify: opts.onCaseNotify } : {}),
      })
    : undefined;
  const metrics = createMetrics({
    latest: () => ingest.latestPerSite(),
    latestHosts: () => ingest.latestHostsPerSite(),
    now,
    outboxSize: () => store.outboxSize(),
  });
  app.decorate('collector', {
    config,
    store,
    ingest,
    tokens: new TokenTable(config),
    // A wall clock stepped back would empty every bucket until it caught up again.
    limiter: new RateLimiter(
      config.rateLimit.perSecond,
      config.rateLimit.burst,
      opts.monotonicNow ?? (() => performance.now()),
    ),
    metrics,
    influx: opts.influx,
    cases,
    now,
    pruneOld: () => store.prune(now() - config.retention),
  } satisfies CollectorServices);
  app.decorateRequest('principal', undefined);
  // Every site's latest evidence, read before the app answers anything; with a store other
  // collectors write to as well, read again (at most every second) before answering from it.
  app.addHook('onReady', () => ingest.reload());
  if (store.shared) {
    app.addHook('preHandler', async (request) => {
      const access = request.routeOptions.config.access;
      if (access === 'read' || access === 'page' || access === 'case') await ingest.refresh();
    });
  }
  scheduleRetention(app);
  limitConnections(app, config.connections);
  // JSON only: any other content type is 415 (Fastify would otherwise accept text/plain).
  app.removeContentTypeParser('text/plain');

  // Authentication runs before the body is read: an unauthenticated client cannot make us parse it.
  app.addHook('onRequest', async (request, reply) => {
    const access = request.routeOptions.config.access ?? 'public';
    if (access === 'public' || ((access === 'read' || access === 'page') && config.reads === 'open')) return;
    const token =
      bearerToken(request.headers.authorization) ??
      (access === 'page' ? cookieToken(request.headers.cookie) : undefined);
    const principal = token ? app.collector.tokens.identify(token) : undefined;
    if (!principal && access === 'page') {
      return reply.redirect(`/login?next=${encodeURIComponent(request.url)}`, 303);
    }
    // Refused before the body is read: close the connection rather than read a body nobody wants
    // (a client trickling it after the answer would otherwise hold the connection forever).
    const refuse = (status: number) => reply.header('connection', 'close').code(status);
    if (!principal) {
      reply.header('www-authenticate', 'Bearer realm="voipready"');
      return refuse(401).send({
        error: 'unauthorized',
        message: token ? 'unknown token' : 'missing "Authorization: Bearer <token>" header',
      });
    }
    const wanted = access === 'agent' ? 'agent' : access === 'case' ? 'support or customer' : 'viewer';
    if (!wanted.split(' or ').includes(principal.kind)) {
      return refuse(403).send({ error: 'forbidden', message: `this needs a ${wanted} token` });
    }
    request.principal = principal;
    if (access === 'agent') {
      const retryAfterS = app.collector.limiter.take(principal.name);
      if (retryAfterS > 0) {
        reply.header('retry-after', String(retryAfterS));
        return refuse(429).send({
          error: 'rate limited',
          message: `agent ${principal.name} exceeded ${config.rateLimit.perSecond} reports/s (burst ${config.rateLimit.burst}); retry after ${retryAfterS} s`,
        });
      }
    }
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpDuration.observe(
      { method: request.method, route, status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    if (route === REPORTS_ROUTE && request.method === 'POST')
      metrics.reportsIngested.inc({ result: ingestResult(reply.statusCode) });
  });

  // Bad input is a 4xx naming the problem (malformed JSON, 413, 415 come from Fastify's parser);
  // storage trouble is 503 so agents retry; anything else is our bug: 500, logged.
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (err instanceof StoreUnavailableError) {
      request.log.error(err.message);
      reply.header('retry-after', '5');
      return reply.code(503).send({ error: 'unavailable', message: 'storage unavailable, retry later' });
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      return reply.code(status).send({ error: err.code ?? 'bad request', message: errorMessage(err) });
    }
    request.log.error({ err }, 'internal error');
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send({ error: 'not found', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );

  app.register(reportRoutes);
  app.register(siteRoutes);
  app.register(assessmentRoutes);
  app.register(healthRoutes);
  app.register(metricsRoutes);
  if (cases) {
    app.register(caseRoutes(cases));
    app.register(cutoverRoutes(new CutoverService(cases)));
  }
  app.register(pageRoutes);
  return app;
}
