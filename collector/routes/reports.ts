// POST /api/v1/reports: an agent's report, judged and durably stored before 202.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { Identifier } from '../../src/schemas.js';
import { issuesAnswer, readReport } from '../report-input.js';

export const REPORTS_ROUTE = '/api/v1/reports';

/** 400 listing the path of each problem (the first few). */
function badRequest(
  reply: FastifyReply,
  error: string,
  message: string,
  issues: { path: string; message: string }[],
) {
  return reply.code(400).send({ error, message, ...issuesAnswer(issues) });
}

export async function reportRoutes(app: FastifyInstance): Promise<void> {
  app.post(REPORTS_ROUTE, { config: { access: 'agent' } }, async (request, reply) => {
    const input = readReport(request.body);
    if (!input.ok) return badRequest(reply, input.error, input.message, input.issues);
    const report = input.report;
    const principal = request.principal;
    if (principal?.kind !== 'agent' || principal.site !== report.site) {
      return reply.code(403).send({
        error: 'forbidden',
        message: `this token reports for site "${principal?.kind === 'agent' ? principal.site : '?'}", not "${report.site}"`,
      });
    }
    if (principal.name !== report.agent) {
      return reply.code(403).send({
        error: 'forbidden',
        message: `this token is agent "${principal.name}"'s, the report names "${report.agent}"`,
      });
    }
    const { result, assessment } = await app.collector.ingest.ingest(report);
    if (result === 'duplicate') return reply.code(200).send({ reportId: report.reportId, duplicate: true });
    if (result === 'conflict') {
      return reply.code(409).send({
        error: 'conflict',
        message: `report id ${report.reportId} was already stored with different content`,
      });
    }
    return reply.code(202).send({
      reportId: report.reportId,
      assessmentId: assessment.assessmentId,
      ready: assessment.ready,
      ...(assessment.maintenance ? { maintenanceReady: assessment.maintenance.ready } : {}),
    });
  });

  const ListQuery = z.strictObject({
    site: Identifier.optional(),
    offset: z.coerce.number().int().min(0).default(0),
    limit: z.coerce.number().int().min(1).max(10_000).default(1000),
  });
  // The stored reports in arrival order: what an operator (or a delivery test) counts.
  app.get(REPORTS_ROUTE, { config: { access: 'read' } }, async (request, reply) => {
    const query = ListQuery.safeParse(request.query);
    if (!query.success) {
      const issues = query.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
      return badRequest(reply, 'bad request', 'invalid query', issues);
    }
    const { site, offset, limit } = query.data;
    return {
      reports: await app.collector.store.listReports({ ...(site ? { site } : {}), offset, limit }),
    };
  });
}
