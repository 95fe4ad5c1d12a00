// /api/v1/cutovers: the cutover notice the handbook asks for 5 business days ahead, and the list of
// upcoming cutovers for the after-hours engineers (docs/cases.md).
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { CutoverRequest } from '../../src/cases/cutover.js';
import { Identifier } from '../../src/schemas.js';
import type { CutoverService } from '../cases/cutovers.js';
import type { CutoverRecord } from '../cases/store.js';
import { actorOf, invalid } from './cases.js';

type IdParams = { Params: { id: string } };

/** The list entry: what the after-hours engineer needs at a glance. */
function summary(c: CutoverRecord) {
  const req = c.doc.request as CutoverRequest;
  return {
    cutoverId: c.cutoverId,
    site: c.site,
    cutoverAt: c.cutoverAt,
    submittedAt: c.submittedAt,
    kind: req.kind,
    productLine: req.productLine,
    technicianName: req.technicianName,
    siteContact: req.siteContact,
    vendorContact: req.vendorContact,
  };
}

export function cutoverRoutes(cutovers: CutoverService) {
  return async (app: FastifyInstance): Promise<void> => {
    const access = { config: { access: 'case' as const } };

    app.post('/api/v1/cutovers', access, async (request, reply) => {
      const parsed = CutoverRequest.safeParse(request.body);
      if (!parsed.success) return invalid(reply, 'invalid cutover notice', parsed.error.issues);
      const record = await cutovers.submit(parsed.data, actorOf(request));
      return reply.code(201).send({ ...summary(record), document: record.doc.document });
    });

    const ListQuery = z.strictObject({ site: Identifier.optional() });
    app.get('/api/v1/cutovers', access, async (request, reply) => {
      const q = ListQuery.safeParse(request.query);
      if (!q.success) return invalid(reply, 'invalid query', q.error.issues);
      return { cutovers: (await cutovers.upcoming(actorOf(request), q.data.site)).map(summary) };
    });

    app.get<IdParams>('/api/v1/cutovers/:id', access, async (request) => {
      const c = await cutovers.get(request.params.id, actorOf(request));
      return { ...summary(c), ...c.doc };
    });

    app.get<IdParams>('/api/v1/cutovers/:id/checklist.html', access, async (request, reply) => {
      const c = await cutovers.get(request.params.id, actorOf(request));
      return reply.type('text/html; charset=utf-8').send((c.doc.document as { html: string }).html);
    });
  };
}
