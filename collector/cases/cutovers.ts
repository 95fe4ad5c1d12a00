// Cutover notices ("Notify Support Before Cutover"): validated against the site's calendar and
// evidence, stored with a frozen copy of the passing assessment, the checklist document rendered,
// and a notification for the trackers; the after-hours engineers list what is coming.
import { randomUUID } from 'node:crypto';
import { type CutoverRequest, cutoverTimingReasons, renderCutover } from '../../src/cases/cutover.js';
import { missingChecks } from '../../src/cases/eligibility.js';
import { type CaseActor, CaseRefusal, type CaseService } from './service.js';
import type { CutoverRecord } from './store.js';

/** 400 with every reason the notice was refused. */
export class CutoverRefusal extends CaseRefusal {
  constructor(readonly reasons: string[]) {
    super(400, reasons.join('; '));
  }
}

export class CutoverService {
  constructor(private readonly cases: CaseService) {}

  async submit(req: CutoverRequest, actor: CaseActor): Promise<CutoverRecord> {
    const { deps } = this.cases;
    const nowMs = deps.now();
    const reasons: string[] = [];
    try {
      this.cases.assertSite(req.site, actor);
    } catch (err) {
      if (err instanceof CaseRefusal && err.statusCode === 403) throw err;
      reasons.push((err as Error).message);
    }
    reasons.push(...cutoverTimingReasons(req, nowMs, this.cases.calendar(req.site)));
    const { readiness, document } = deps.readiness(req.site, nowMs);
    if (!readiness.ready || readiness.stale || !document) {
      const missing = missingChecks(readiness).map((m) => `${m.id} ${m.status}`);
      reasons.push(
        `site "${req.site}" has no passing, current readiness assessment to attach${missing.length > 0 ? ` (${missing.join(', ')})` : ''}`,
      );
    }
    if (reasons.length > 0) throw new CutoverRefusal(reasons);
    const cutoverId = randomUUID();
    const assessmentId = String(readiness.assessmentId);
    const rendered = renderCutover(req, {
      cutoverId,
      assessmentId,
      assessedAt: String(document!.assessedAt),
    });
    const submittedAt = new Date(nowMs).toISOString();
    const record: CutoverRecord = {
      cutoverId,
      site: req.site,
      cutoverAt: new Date(Date.parse(req.cutoverAt)).toISOString(),
      submittedAt,
      doc: {
        request: req,
        submittedBy: { kind: actor.kind, name: actor.name },
        assessment: document,
        document: rendered,
      },
    };
    await deps.store.saveCutover(record, {
      eventId: randomUUID(),
      type: 'cutover-notice',
      caseId: null,
      at: submittedAt,
      payload: {
        cutoverId,
        site: req.site,
        customer: this.cases.customerName(req.site),
        cutoverAt: record.cutoverAt,
        assessmentId,
        mail: { to: rendered.to, subject: rendered.subject, text: rendered.text },
      },
    });
    deps.onNotify?.();
    return record;
  }

  /** Cutovers from now on (the after-hours view); a customer contact sees its sites' only. */
  async upcoming(actor: CaseActor, site?: string): Promise<CutoverRecord[]> {
    let sites = site ? [site] : undefined;
    if (actor.sites) sites = (sites ?? actor.sites).filter((s) => actor.sites!.includes(s));
    return this.cases.deps.store.cutovers({ fromMs: this.cases.deps.now(), ...(sites ? { sites } : {}) });
  }

  async get(id: string, actor: CaseActor): Promise<CutoverRecord> {
    const found = /^[0-9a-f-]{36}$/.test(id) ? await this.cases.deps.store.cutover(id) : undefined;
    if (!found || (actor.sites && !actor.sites.includes(found.site)))
      throw new CaseRefusal(404, `no cutover notice "${id}"`);
    return found;
  }
}
