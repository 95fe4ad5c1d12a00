// GET /metrics: Prometheus text format from the app's own registry. It reveals site readiness, so
// it follows the read rule (viewer token, or open reads).
import type { FastifyInstance } from 'fastify';

export async function metricsRoutes(app: FastifyInstance): Promise<void> {
  app.get('/metrics', { config: { access: 'read' } }, async (_request, reply) => {
    const { registry } = app.collector.metrics;
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
}
