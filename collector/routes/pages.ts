// The collector's HTML pages: the sites overview, each site's report with its history, any past
// assessment's report, and a login that keeps a viewer token in a cookie. Same access as the API's
// reads (a viewer token, or none when reads are open); the pages render through src/report/html.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { RULES } from '../../src/policy.js';
import { historyPoint, renderReportHtml } from '../../src/report/html/index.js';
import { html } from '../../src/report/html/markup.js';
import {
  pageNav,
  renderLogin,
  renderNotFound,
  renderSitesOverview,
  renderSiteWithoutEvidence,
  type SiteRow,
  SORT_KEYS,
  type SortDir,
  type SortKey,
} from '../../src/report/html/site-pages.js';
import { Identifier } from '../../src/schemas.js';
import { type Assessment, readinessAt } from '../assessment.js';
import { SESSION_COOKIE } from '../auth.js';
import type { SiteLatest } from '../store/store.js';

/** Assessments a site page draws; older ones stay in the store and the API. */
const HISTORY_LIMIT = 500;
const SESSION_MAX_AGE_S = 12 * 3600;
const RANK = { fail: 0, unknown: 1, warn: 2, pass: 3 } as const;

function sendPage(reply: FastifyReply, status: number, page: string) {
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .send(page);
}

/** A local path to go back to after login: never another origin (no open redirect). */
function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/(?![/\\])[\x21-\x7e]{0,500}$/.test(next) ? next : '/sites';
}

const sitePath = (site: string) => `/sites/${encodeURIComponent(site)}`;

export async function pageRoutes(app: FastifyInstance): Promise<void> {
  // Only the login form posts a form; the parser exists in this plugin's scope alone.
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 4096 },
    (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );

  app.get('/', { config: { access: 'public' } }, async (_request, reply) => reply.redirect('/sites', 303));

  app.get<{ Querystring: { next?: string } }>(
    '/login',
    { config: { access: 'public' } },
    async (request, reply) => sendPage(reply, 200, renderLogin({ next: safeNext(request.query.next) })),
  );

  app.post<{ Body: { token?: string; next?: string } }>(
    '/login',
    { config: { access: 'public' } },
    async (request, reply) => {
      const body = (request.body ?? {}) as { token?: unknown; next?: unknown };
      const next = safeNext(body.next);
      const token = typeof body.token === 'string' ? body.token.trim() : '';
      const principal = /^[\x21-\x7e]{1,512}$/.test(token) ? app.collector.tokens.identify(token) : undefined;
      if (principal?.kind !== 'viewer') {
        const message = principal
          ? 'That is an agent token; the pages need a viewer token.'
          : 'Unknown token.';
        return sendPage(reply, 401, renderLogin({ next, message }));
      }
      const secure = request.protocol === 'https' ? '; Secure' : '';
      reply.header(
        'set-cookie',
        `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MAX_AGE_S}${secure}`,
      );
      return reply.redirect(next, 303);
    },
  );

  app.post('/logout', { config: { access: 'public' } }, async (_request, reply) => {
    reply.header('set-cookie', `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
    return reply.redirect('/login', 303);
  });

  app.get<{ Querystring: { sort?: string; dir?: string } }>(
    '/sites',
    { config: { access: 'page' } },
    async (request, reply) => {
      const { ingest, now } = app.collector;
      const nowMs = now();
      const rows: SiteRow[] = ingest.knownSites().map((site) => {
        const latest = ingest.latestFor(site)?.assessment;
        const r = readinessAt(site, latest, nowMs);
        return {
          site,
          ready: r.ready,
          stale: r.stale,
          measuredAt: latest?.measuredAt ?? null,
          validUntil: r.validUntil,
          notPassing: r.checks
            .filter((c) => c.status !== 'pass')
            .sort((a, b) => RANK[a.status] - RANK[b.status]),
        };
      });
      const key = (SORT_KEYS as readonly string[]).includes(request.query.sort ?? '')
        ? (request.query.sort as SortKey)
        : 'readiness';
      const dir: SortDir = request.query.dir === 'desc' ? 'desc' : 'asc';
      return sendPage(reply, 200, renderSitesOverview(rows, { key, dir }, nowMs));
    },
  );

  /** The site's report: the latest assessment, or a past one, with the site's history. */
  const siteReport = async (site: string, { assessment: shown, report }: SiteLatest, latest: Assessment) => {
    const { store, now } = app.collector;
    const history = (await store.siteHistory(site, HISTORY_LIMIT)).map(historyPoint);
    const isLatest = shown.assessmentId === latest.assessmentId;
    const r = readinessAt(site, latest, now());
    const current = isLatest
      ? {
          ready: r.ready,
          checks: r.checks,
          ...(r.stale
            ? {
                note: `The evidence is stale: measured ${latest.measuredAt}, valid until ${latest.validUntil}. Stale is not ready.`,
              }
            : {}),
        }
      : {
          ready: shown.ready,
          checks: shown.checks,
          note: `This is a past assessment (${shown.measuredAt}); the site's current one is on its page.`,
        };
    return renderReportHtml(
      { ...shown, measurements: report.probes },
      {
        history,
        historyLink: (id) => `${sitePath(site)}/assessments/${encodeURIComponent(id)}`,
        current,
        nav: html`${pageNav()}<a href="${sitePath(site)}">Site ${site}</a>`,
        generator: 'the voipready collector',
        generatedAt: new Date(now()).toISOString(),
      },
    );
  };

  const siteParam = (raw: string, reply: FastifyReply): string | undefined => {
    const site = Identifier.safeParse(raw);
    if (!site.success || !app.collector.ingest.knownSites().includes(site.data)) {
      void sendPage(reply, 404, renderNotFound(`No site "${raw}" is configured or has reported.`));
      return undefined;
    }
    return site.data;
  };

  app.get<{ Params: { site: string } }>(
    '/sites/:site',
    { config: { access: 'page' } },
    async (request, reply) => {
      const site = siteParam(request.params.site, reply);
      if (site === undefined) return reply;
      const latest = app.collector.ingest.latestFor(site);
      if (!latest) {
        const checks = readinessAt(site, undefined, app.collector.now()).checks.map((c) => ({
          ...c,
          rule: c.rule ?? RULES[c.id],
        }));
        return sendPage(reply, 200, renderSiteWithoutEvidence(site, checks));
      }
      return sendPage(reply, 200, await siteReport(site, latest, latest.assessment));
    },
  );

  app.get<{ Params: { site: string; id: string } }>(
    '/sites/:site/assessments/:id',
    { config: { access: 'page' } },
    async (request, reply) => {
      const site = siteParam(request.params.site, reply);
      if (site === undefined) return reply;
      const found = /^[A-Za-z0-9-]{1,64}$/.test(request.params.id)
        ? await app.collector.store.assessment(request.params.id)
        : undefined;
      const latest = app.collector.ingest.latestFor(site)?.assessment;
      if (!found || found.assessment.site !== site || !latest) {
        return sendPage(reply, 404, renderNotFound(`No assessment "${request.params.id}" of site ${site}.`));
      }
      return sendPage(reply, 200, await siteReport(site, found, latest));
    },
  );
}
