// GET /api/v1/assessments/:id: one assessment with the measurements it judged.
import type { FastifyInstance } from 'fastify';

export async function assessmentRoutes(app: FastifyInstance): Promise<void> {
  app.get<{ Params: { id: string } }>(
    '/api/v1/assessments/:id',
    { config: { access: 'read' } },
    async (request, reply) => {
      const found = /^[A-Za-z0-9-]{1,64}$/.test(request.params.id)
        ? await app.collector.store.assessment(request.params.id)
        : undefined;
      if (!found) {
        return reply.code(404).send({ error: 'not found', message: `no assessment "${request.params.id}"` });
      }
      const { host } = found.report;
      return { ...found.assessment, measurements: found.report.probes, ...(host ? { host } : {}) };
    },
  );
}
