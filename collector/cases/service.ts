// The case service: opening a case with its evidence, updates through the state machine, the
// handbook's clocks fired from stored timers, release of withheld cases by a passing assessment.
// Decisions are the pure functions of src/cases/; this module reads, decides and stores one
// CaseChange per step. Clock and ids are injected.
import { randomUUID } from 'node:crypto';
import type { BusinessCalendar } from '../../src/cases/calendar.js';
import { eligibility, type SiteReadiness } from '../../src/cases/eligibility.js';
import {
  type ClockState,
  decideUpdate,
  type EscalationReason,
  escalationRule,
  fireFollowUp,
  type Refusal,
  type TimerKind,
  timersFor,
  type UpdateRecord,
} from '../../src/cases/machine.js';
import { escalationMail, followUpMail, type Mail, missingLines } from '../../src/cases/mail.js';
import {
  type Actor,
  type CaseUpdateRequest,
  isVoiceCase,
  type NewCase,
  type SupportCase,
} from '../../src/cases/model.js';
import type { CollectorConfig } from '../../src/config/collector.js';
import type { Assessment } from '../assessment.js';
import {
  type CaseAttachment,
  type CaseChange,
  CaseConflictError,
  type CaseQuery,
  type CaseStore,
  type NewAttachment,
  type Notification,
  type NotificationType,
} from './store.js';

/** A refusal the routes turn into 400/403/404/409 with the rule as the message. */
export class CaseRefusal extends Error {
  override name = 'CaseRefusal';
  /** The `error` word of the answer (the app's error handler sends { error: code, message }). */
  readonly code: string;
  constructor(
    readonly statusCode: 400 | 403 | 404 | 409 | 410,
    message: string,
  ) {
    super(message);
    this.code = { 400: 'bad request', 403: 'forbidden', 404: 'not found', 409: 'conflict', 410: 'gone' }[
      statusCode
    ];
  }
}

/** Who asks: a support engineer, or a customer contact limited to its sites. */
export type CaseActor = Actor & { sites?: string[] };

export interface CaseServiceDeps {
  store: CaseStore;
  config: CollectorConfig;
  now: () => number;
  /** Sites the collector knows (configured or reported). */
  knownSites: () => string[];
  /** The site's readiness now, and the full assessment document (with measurements) to freeze. */
  readiness: (
    site: string,
    nowMs: number,
  ) => { readiness: SiteReadiness; document?: Record<string, unknown> };
  /**
   * The HTML report page of an assessment document (the report issue's renderer): when given, each
   * frozen assessment copy gets its page beside it as a `report-html` attachment.
   */
  reportHtml?: (document: Record<string, unknown>) => string;
  /** Problems that should not fail the case (an HTML page that could not be rendered). */
  onWarning?: (message: string) => void;
  /** Called after a change that queued notifications (wakes the webhook sender). */
  onNotify?: () => void;
}

/** contract: the 201 answer of POST /api/v1/cases. */
export interface OpenedCase {
  caseId: string;
  status: string;
  subStatus: string;
  withheld: boolean;
  missingChecks: SupportCase['missingChecks'];
  attachments: { kind: string; assessmentId: string }[];
}

const NO_CLOCKS: ClockState = { escalationNoticeFor: null, attachmentsPurgedAt: null };

export class CaseService {
  constructor(readonly deps: CaseServiceDeps) {}

  get store(): CaseStore {
    return this.deps.store;
  }

  calendar(site: string): BusinessCalendar {
    const { cases, sites } = this.deps.config;
    const own = sites[site];
    return {
      timeZone: own?.timeZone ?? cases.timeZone,
      holidays: [...cases.holidays, ...(own?.holidays ?? [])],
    };
  }

  /** The customer name a site belongs to (for the escalation mail), else the site itself. */
  customerName(site: string): string {
    return this.deps.config.customers.find((c) => c.sites.includes(site))?.name ?? site;
  }

  private caseLink(caseId: string): string {
    return `${this.deps.config.cases.publicUrl?.replace(/\/$/, '') ?? ''}/api/v1/cases/${caseId}`;
  }

  private notification(type: NotificationType, c: SupportCase, at: string, extra: object = {}): Notification {
    return {
      eventId: randomUUID(),
      type,
      caseId: c.caseId,
      at,
      payload: {
        case: {
          caseId: c.caseId,
          site: c.site,
          customer: this.customerName(c.site),
          status: c.status,
          subStatus: c.subStatus,
          priority: c.priority,
          subject: c.subject,
          withheld: c.withheld,
          link: this.caseLink(c.caseId),
        },
        ...extra,
      },
    };
  }

  /** The frozen copies of a site's assessment: its JSON (and its HTML page when that exists). */
  private freeze(document: Record<string, unknown> | undefined): NewAttachment[] {
    if (!document) return [];
    const assessmentId = String(document.assessmentId);
    const copies: NewAttachment[] = [
      { kind: 'assessment', assessmentId, contentType: 'application/json', body: JSON.stringify(document) },
    ];
    if (this.deps.reportHtml) {
      // The JSON copy is the evidence; a page that cannot be rendered must not keep the case from opening.
      try {
        const body = this.deps.reportHtml(document);
        copies.push({ kind: 'report-html', assessmentId, contentType: 'text/html; charset=utf-8', body });
      } catch (err) {
        this.deps.onWarning?.(
          `report page of assessment ${assessmentId} not attached: ${(err as Error).message}`,
        );
      }
    }
    return copies;
  }

  private async apply(change: Omit<CaseChange, 'atMs'>): Promise<void> {
    const cal = this.calendar(change.case.site);
    const timers = timersFor(change.case, change.clocks, cal);
    await this.deps.store.apply({ ...change, timers, atMs: this.deps.now() });
    if (change.notifications.length > 0) this.deps.onNotify?.();
  }

  assertSite(site: string, actor: CaseActor): void {
    if (actor.sites && !actor.sites.includes(site)) {
      throw new CaseRefusal(403, `customer contact "${actor.name}" is not a contact of site "${site}"`);
    }
    if (
      !this.deps.knownSites().includes(site) &&
      !this.deps.config.customers.some((c) => c.sites.includes(site))
    ) {
      throw new CaseRefusal(400, `unknown site "${site}": no agent, policy or customer names it`);
    }
  }

  async open(input: NewCase, actor: CaseActor): Promise<OpenedCase> {
    this.assertSite(input.site, actor);
    const nowMs = this.deps.now();
    const at = new Date(nowMs).toISOString();
    const voice = isVoiceCase(input);
    const { readiness, document } = this.deps.readiness(input.site, nowMs);
    const gate = voice ? eligibility(readiness, input.priority) : { withheld: false, missingChecks: [] };
    const c: SupportCase = {
      ...input,
      voice,
      caseId: await this.deps.store.allocateCaseId(),
      status: gate.withheld ? 'Awaiting Info' : 'Open',
      subStatus: gate.withheld ? 'Info required from the customer' : 'New',
      withheld: gate.withheld,
      missingChecks: gate.missingChecks,
      openedBy: { kind: actor.kind, name: actor.name },
      createdAt: at,
      updatedAt: at,
      // Withholding is a request for information: the follow-up timer starts with it.
      followUpSince: gate.withheld ? at : null,
      followUpsSent: 0,
      closedAt: null,
      autoClosed: false,
      rcaRequestedAt: null,
      revision: 1,
    };
    const attachments = voice ? this.freeze(document) : [];
    const record: UpdateRecord = {
      kind: 'system',
      by: { kind: actor.kind, name: actor.name },
      at,
      text: gate.withheld
        ? [
            'Support withheld until the site is VoIP-ready. Checks to fix:',
            ...missingLines(gate.missingChecks),
          ].join('\n')
        : gate.missingChecks.length > 0
          ? [
              '1-Prod Down is never blocked; the site is not VoIP-ready:',
              ...missingLines(gate.missingChecks),
            ].join('\n')
          : 'Case opened.',
      from: { status: c.status, subStatus: c.subStatus },
      to: { status: c.status, subStatus: c.subStatus },
    };
    await this.apply({
      case: c,
      baseRevision: null,
      clocks: NO_CLOCKS,
      timers: [],
      updates: [record],
      attachments,
      notifications: [
        this.notification('case-opened', c, at, {
          missingChecks: c.missingChecks,
          attachments: attachments.map((a) => ({ kind: a.kind, assessmentId: a.assessmentId })),
        }),
      ],
    });
    return {
      caseId: c.caseId,
      status: c.status,
      subStatus: c.subStatus,
      withheld: c.withheld,
      missingChecks: c.missingChecks,
      attachments: attachments.map((a) => ({ kind: a.kind, assessmentId: a.assessmentId })),
    };
  }

  /** The case if this actor may see it; a customer asking for another customer's case gets 404. */
  async visible(caseId: string, actor: CaseActor) {
    const stored = /^\d{1,20}$/.test(caseId) ? await this.deps.store.get(caseId) : undefined;
    if (!stored || (actor.sites && !actor.sites.includes(stored.case.site))) {
      throw new CaseRefusal(404, `no case "${caseId}"`);
    }
    return stored;
  }

  async show(caseId: string, actor: CaseActor) {
    const { case: c } = await this.visible(caseId, actor);
    const { store } = this.deps;
    const [updates, attachments, notifications] = await Promise.all([
      store.updates(caseId),
      store.attachments(caseId, false),
      store.notifications(caseId),
    ]);
    return { ...c, updates, attachments: attachments.map(withoutBody), notifications };
  }

  async list(query: Omit<CaseQuery, 'sites'> & { site?: string }, actor: CaseActor): Promise<SupportCase[]> {
    const { site, ...rest } = query;
    let sites = site ? [site] : undefined;
    if (actor.sites) sites = (sites ?? actor.sites).filter((s) => actor.sites!.includes(s));
    return this.deps.store.list({ ...rest, ...(sites ? { sites } : {}) });
  }

  async attachment(caseId: string, attachmentId: number, actor: CaseActor): Promise<CaseAttachment> {
    await this.visible(caseId, actor);
    const a = await this.deps.store.attachment(caseId, attachmentId);
    if (!a) throw new CaseRefusal(404, `case ${caseId} has no attachment ${attachmentId}`);
    return a;
  }

  /** Re-reads and retries when another writer changed the case in between (optimistic concurrency). */
  private async withRetry<T>(
    caseId: string,
    actor: CaseActor,
    step: (s: { case: SupportCase; clocks: ClockState }) => Promise<T>,
  ) {
    for (let attempt = 0; ; attempt++) {
      const stored = await this.visible(caseId, actor);
      try {
        return await step(stored);
      } catch (err) {
        if (!(err instanceof CaseConflictError) || attempt >= 4) throw err;
      }
    }
  }

  async update(caseId: string, req: CaseUpdateRequest, actor: CaseActor): Promise<SupportCase> {
    return this.withRetry(caseId, actor, async ({ case: c, clocks }) => {
      const decided = decideUpdate(c, req, actor, this.deps.now());
      if (!decided.ok) throw refusal(decided);
      const { next, record } = decided;
      const notifications = [
        this.notification(
          next.status === 'Closed' && c.status !== 'Closed' ? 'case-closed' : 'case-updated',
          next,
          record.at,
          {
            update: record,
          },
        ),
      ];
      await this.apply({
        case: next,
        baseRevision: c.revision,
        clocks,
        timers: [],
        updates: [record],
        attachments: [],
        notifications,
      });
      return { ...next, revision: c.revision + 1 };
    });
  }

  /** An escalation request: the handbook's criteria, then the mail it prescribes. */
  async escalate(caseId: string, reason: EscalationReason, detail: string, actor: CaseActor): Promise<Mail> {
    return this.withRetry(caseId, actor, async ({ case: c, clocks }) => {
      const nowMs = this.deps.now();
      const refused = escalationRule(c, reason, nowMs, this.calendar(c.site));
      if (refused) throw refusal(refused);
      const cutovers = await this.deps.store.cutovers({ fromMs: nowMs, sites: [c.site] });
      const mail = escalationMail(
        c,
        this.customerName(c.site),
        reason,
        detail,
        cutovers.map((k) => `cut over ${k.cutoverAt}`),
      );
      const at = new Date(nowMs).toISOString();
      await this.apply({
        case: { ...c },
        baseRevision: c.revision,
        clocks,
        timers: [],
        updates: [
          {
            kind: 'system',
            by: actor,
            at,
            text: `Escalation requested (${reason}).\n${mail.subject}\n${mail.text}`,
            from: { status: c.status, subStatus: c.subStatus },
            to: { status: c.status, subStatus: c.subStatus },
          },
        ],
        attachments: [],
        notifications: [this.notification('escalation-requested', c, at, { mail })],
      });
      return mail;
    });
  }

  /**
   * Releases the site's withheld cases when its latest assessment passes and is newer than the
   * evidence the case holds: the new copy is attached and the case returns to Open / Customer
   * Responded. A site that only turns stale changes nothing here.
   */
  async release(site?: string): Promise<number> {
    const nowMs = this.deps.now();
    let released = 0;
    for (const c of await this.deps.store.withheld(site)) {
      const { readiness, document } = this.deps.readiness(c.site, nowMs);
      if (!readiness.ready || readiness.stale || !document) continue;
      const held = await this.deps.store.attachments(c.caseId, false);
      if (held.some((a) => a.assessmentId === readiness.assessmentId)) continue;
      const stored = await this.deps.store.get(c.caseId);
      if (!stored?.case.withheld) continue;
      const at = new Date(nowMs).toISOString();
      const next: SupportCase = {
        ...stored.case,
        status: 'Open',
        subStatus: 'Customer Responded',
        withheld: false,
        missingChecks: [],
        updatedAt: at,
        followUpSince: null,
        followUpsSent: 0,
      };
      const attachments = this.freeze(document);
      const refs = attachments.map((a) => ({ kind: a.kind, assessmentId: a.assessmentId }));
      try {
        await this.apply({
          case: next,
          baseRevision: stored.case.revision,
          clocks: stored.clocks,
          timers: [],
          updates: [
            {
              kind: 'system',
              by: { kind: 'system', name: 'eligibility' },
              at,
              text: `Site ${c.site} passed assessment ${readiness.assessmentId}: support released, report attached.`,
              from: { status: stored.case.status, subStatus: stored.case.subStatus },
              to: { status: next.status, subStatus: next.subStatus },
            },
          ],
          attachments,
          notifications: [
            this.notification('support-released', next, at, { attachments: refs }),
            this.notification('report-attached', next, at, { attachments: refs }),
          ],
        });
        released++;
      } catch (err) {
        if (!(err instanceof CaseConflictError)) throw err;
      }
    }
    return released;
  }

  /** Fires every stored timer that is due; each fires exactly once, even with several collectors. */
  async fireDue(limit = 500): Promise<number> {
    const nowMs = this.deps.now();
    let fired = 0;
    for (const t of await this.deps.store.dueTimers(nowMs, limit)) {
      const stored = await this.deps.store.get(t.caseId);
      if (!stored) continue;
      try {
        await this.apply(this.fire(stored.case, stored.clocks, t.kind, t.dueAtMs, nowMs));
        fired++;
      } catch (err) {
        if (!(err instanceof CaseConflictError)) throw err;
      }
    }
    return fired;
  }

  private fire(
    c: SupportCase,
    clocks: ClockState,
    kind: TimerKind,
    dueAtMs: number,
    nowMs: number,
  ): Omit<CaseChange, 'atMs'> {
    const at = new Date(nowMs).toISOString();
    const base = { baseRevision: c.revision, timers: [], attachments: [], fired: { kind, dueAtMs } };
    if (kind === 'escalation-eligible') {
      const mail = escalationMail(
        c,
        this.customerName(c.site),
        'impact',
        'eligible for escalation by the handbook',
        [],
      );
      return {
        ...base,
        case: c,
        clocks: { ...clocks, escalationNoticeFor: c.updatedAt },
        updates: [],
        notifications: [this.notification('escalation-eligible', c, at, { mail })],
      };
    }
    if (kind === 'purge') {
      return {
        ...base,
        case: c,
        clocks: { ...clocks, attachmentsPurgedAt: at },
        purgeAttachments: true,
        updates: [],
        notifications: [this.notification('attachments-purged', c, at)],
      };
    }
    const { next, record } = fireFollowUp(c, kind, nowMs);
    const n = (c.followUpsSent + 1) as 1 | 2 | 3;
    const mail = followUpMail(c, n, this.caseLink(c.caseId));
    const notifications = [this.notification('follow-up', next, at, { followUp: n, mail })];
    if (kind === 'auto-close') notifications.push(this.notification('case-closed', next, at, { auto: true }));
    return { ...base, case: next, clocks, updates: [record], notifications };
  }

  /**
   * One scheduler step: release what new evidence allows, then fire due clocks. A firing can make
   * the next timer of the case due at once (a clock stepped far ahead, a collector down for weeks):
   * rounds go on until nothing more is due, so the case ends in the state the time calls for.
   */
  async tick(): Promise<{ released: number; fired: number }> {
    const released = await this.release();
    let fired = 0;
    for (let round = 0; round < 10; round++) {
      const n = await this.fireDue();
      fired += n;
      if (n === 0) break;
    }
    return { released, fired };
  }

  /** Called when an assessment was stored: its site's withheld cases may be released. */
  async assessmentStored(a: Pick<Assessment, 'site' | 'ready'>): Promise<void> {
    if (a.ready) await this.release(a.site);
  }
}

const withoutBody = ({ body: _body, ...a }: CaseAttachment) => a;

function refusal(r: Refusal): CaseRefusal {
  return new CaseRefusal(r.code, r.rule);
}
