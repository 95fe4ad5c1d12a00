// GET /healthz (the process answers) and GET /readyz (it can take reports; Fastify answers 503 by
// itself while closing).
import type { FastifyInstance } from 'fastify';

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async () => {
    const { influx } = app.collector;
    return {
      ready: true,
      influxdb:
        influx === undefined
          ? 'not configured'
          : influx.failing
            ? 'failing (points kept in the outbox)'
            : 'ok',
    };
  });
}
