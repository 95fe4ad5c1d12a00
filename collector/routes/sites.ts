// GET /api/v1/sites and /api/v1/sites/:site/readiness: each site's readiness now.
import type { FastifyInstance } from 'fastify';
import { Identifier } from '../../src/schemas.js';
import { readinessAt } from '../assessment.js';
import { maintenanceAt } from '../maintenance.js';

export async function siteRoutes(app: FastifyInstance): Promise<void> {
  app.get('/api/v1/sites', { config: { access: 'read' } }, async () => {
    const { ingest, now } = app.collector;
    const nowMs = now();
    return {
      sites: ingest.knownSites().map((site) => {
        const { checks: _checks, ...summary } = readinessAt(site, ingest.latestFor(site)?.assessment, nowMs);
        const maintenance = maintenanceAt(
          ingest.hostsFor(site).map((l) => l.assessment),
          nowMs,
        );
        return { ...summary, maintenanceReady: maintenance.ready, hosts: maintenance.hosts.length };
      }),
    };
  });

  app.get<{ Params: { site: string } }>(
    '/api/v1/sites/:site/readiness',
    { config: { access: 'read' } },
    async (request, reply) => {
      const { ingest, now } = app.collector;
      const site = Identifier.safeParse(request.params.site);
      if (!site.success) {
        return reply
          .code(400)
          .send({ error: 'bad request', message: `site name: ${site.error.issues[0]?.message}` });
      }
      if (!ingest.knownSites().includes(site.data)) {
        return reply
          .code(404)
          .send({ error: 'not found', message: `no site "${site.data}" is configured or has reported` });
      }
      const nowMs = now();
      // Two verdicts side by side: VoIP readiness (network checks) and maintenance (host checks).
      return {
        ...readinessAt(site.data, ingest.latestFor(site.data)?.assessment, nowMs),
        maintenance: maintenanceAt(
          ingest.hostsFor(site.data).map((l) => l.assessment),
          nowMs,
        ),
      };
    },
  );
}
