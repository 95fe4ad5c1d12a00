// GET /healthz (the process answers) and GET /readyz (it can take reports: 503 while the store cannot
// write, e.g. a full disk; Fastify answers 503 by itself while closing).
import type { FastifyInstance } from 'fastify';

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async (_request, reply) => {
    const { influx, store } = app.collector;
    // Not ready while reports would get 503 (a full disk): a balancer sends agents elsewhere.
    const trouble = await store.writeTrouble();
    return reply.code(trouble ? 503 : 200).send({
      ready: trouble === undefined,
      store: trouble ? `cannot store reports: ${trouble}` : 'ok',
      influxdb:
        influx === undefined
          ? 'not configured'
          : influx.failing
            ? 'failing (points kept in the outbox)'
            : 'ok',
    });
  });
}
