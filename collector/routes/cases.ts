// /api/v1/cases: support cases gated on the site's evidence (docs/cases.md). Support engineers see
// every case; a customer contact sees and opens cases of its own sites only.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  CASE_STATUSES,
  type CaseStatus,
  CaseUpdateRequest,
  NewCase,
  PRIORITIES,
} from '../../src/cases/model.js';
import { Identifier } from '../../src/schemas.js';
import { type CaseActor, CaseRefusal, type CaseService } from '../cases/service.js';

/** 400 listing the zod path of each problem; nothing was stored. */
export function invalid(reply: FastifyReply, message: string, issues: z.core.$ZodIssue[]) {
  return reply.code(400).send({
    error: 'bad request',
    message: `${message}: ${issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`,
    issues: issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
  });
}

/** The acting support engineer or customer contact (the onRequest hook admitted only those). */
export function actorOf(request: FastifyRequest): CaseActor {
  const p = request.principal;
  if (p?.kind === 'customer') return { kind: 'customer', name: p.name, sites: p.sites };
  if (p?.kind === 'support') return { kind: 'support', name: p.name };
  throw new CaseRefusal(403, 'this needs a support or customer token');
}

const ListQuery = z.strictObject({
  site: Identifier.optional(),
  status: z.enum(CASE_STATUSES as [CaseStatus, ...CaseStatus[]]).optional(),
  priority: z.enum(PRIORITIES).optional(),
  offset: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

const EscalationRequest = z.strictObject({
  reason: z.enum(['impact', 'rca']),
  detail: z.string().trim().max(4096).default(''),
});

type CaseParams = { Params: { caseId: string } };

export function caseRoutes(cases: CaseService) {
  return async (app: FastifyInstance): Promise<void> => {
    const access = { config: { access: 'case' as const } };

    app.post('/api/v1/cases', access, async (request, reply) => {
      const parsed = NewCase.safeParse(request.body);
      if (!parsed.success) return invalid(reply, 'invalid case', parsed.error.issues);
      return reply.code(201).send(await cases.open(parsed.data, actorOf(request)));
    });

    app.get('/api/v1/cases', access, async (request, reply) => {
      const query = ListQuery.safeParse(request.query);
      if (!query.success) return invalid(reply, 'invalid query', query.error.issues);
      const { site, ...rest } = query.data;
      return { cases: await cases.list({ ...rest, ...(site ? { site } : {}) }, actorOf(request)) };
    });

    app.get<CaseParams>('/api/v1/cases/:caseId', access, async (request) =>
      cases.show(request.params.caseId, actorOf(request)),
    );

    app.post<CaseParams>('/api/v1/cases/:caseId/updates', access, async (request, reply) => {
      const parsed = CaseUpdateRequest.safeParse(request.body);
      if (!parsed.success) return invalid(reply, 'invalid update', parsed.error.issues);
      return cases.update(request.params.caseId, parsed.data, actorOf(request));
    });

    app.post<CaseParams>('/api/v1/cases/:caseId/escalations', access, async (request, reply) => {
      const parsed = EscalationRequest.safeParse(request.body);
      if (!parsed.success) return invalid(reply, 'invalid escalation', parsed.error.issues);
      const { reason, detail } = parsed.data;
      const mail = await cases.escalate(request.params.caseId, reason, detail, actorOf(request));
      return reply.code(201).send({ mail });
    });

    app.get<{ Params: { caseId: string; attachmentId: string } }>(
      '/api/v1/cases/:caseId/attachments/:attachmentId',
      access,
      async (request, reply) => {
        const { caseId, attachmentId } = request.params;
        const id = /^\d{1,12}$/.test(attachmentId) ? Number(attachmentId) : -1;
        const a = await cases.attachment(caseId, id, actorOf(request));
        if (a.body === null) {
          throw new CaseRefusal(
            410,
            `attachment ${id} was purged ${a.purgedAt} (one month after the case was closed); resubmit the data`,
          );
        }
        return reply.type(a.contentType).send(a.body);
      },
    );
  };
}
