// The case state machine and the handbook's clocks, as pure functions of a case, a request, who
// asks and the time. The collector stores what these decide; nothing here does I/O.
import { addBusinessDays, type BusinessCalendar } from './calendar.js';
import {
  type Actor,
  type CaseStatus,
  type CaseUpdateRequest,
  SUB_STATUSES,
  type SubStatus,
  type SupportCase,
} from './model.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** "Cases can only be reopened within 30 days of closure." */
export const REOPEN_WINDOW_MS = 30 * DAY_MS;
/** "All attached data in a closed Case ... is purged ... one month after the case is closed" (the
 * reopening section says "30 days"). */
export const PURGE_AFTER_MS = 30 * DAY_MS;

/** Auto follow-up #1, #2 and #3 (closure), in business days after the timer starts. */
export const FOLLOW_UP_BUSINESS_DAYS = [2, 5, 10] as const;

/** A refused request: 403 (this actor may never do it) or 409 (not in this state), naming the rule. */
export interface Refusal {
  ok: false;
  code: 400 | 403 | 409;
  rule: string;
}

export type UpdateKind = 'work-note' | 'customer-update' | 'status' | 'system';

export interface UpdateRecord {
  kind: UpdateKind;
  by: Actor;
  at: string;
  text: string | null;
  from: { status: CaseStatus; subStatus: SubStatus };
  to: { status: CaseStatus; subStatus: SubStatus };
  priority?: { from: string; to: string };
}

export interface Decided {
  ok: true;
  next: SupportCase;
  record: UpdateRecord;
}

const refuse = (code: Refusal['code'], rule: string): Refusal => ({ ok: false, code, rule });

/** Statuses that wait on the customer: the follow-up timer runs in them. */
const WAITING_ON_CUSTOMER: readonly CaseStatus[] = ['Awaiting Info', 'Solution Proposed'];

function defaultSubStatus(status: CaseStatus, actor: Actor): SubStatus {
  if (status === 'Open') return actor.kind === 'customer' ? 'Customer Responded' : 'Investigation';
  if (status === 'Solution Proposed') return 'Replied';
  return SUB_STATUSES[status][0];
}

/** Why this status change is not allowed now, or undefined when it is. */
function statusRule(
  c: SupportCase,
  to: { status: CaseStatus; subStatus: SubStatus },
  actor: Actor,
  nowMs: number,
): Refusal | undefined {
  if (!(SUB_STATUSES[to.status] as readonly string[]).includes(to.subStatus)) {
    return refuse(400, `"${to.subStatus}" is not a sub-status of ${to.status}`);
  }
  if (to.status === c.status && to.subStatus === c.subStatus) {
    return refuse(409, `the case is already ${c.status} / ${c.subStatus}`);
  }
  if (to.subStatus === 'New') {
    return refuse(409, 'New is the sub-status of a case just opened; a case never returns to it');
  }
  const customer = actor.kind === 'customer';
  if (c.status === 'Closed') {
    const closedMs = Date.parse(c.closedAt ?? c.updatedAt);
    if (nowMs - closedMs >= REOPEN_WINDOW_MS) {
      return refuse(
        409,
        `cases can only be reopened within 30 days of closure (closed ${c.closedAt}); open a new case with the supporting information`,
      );
    }
    if (to.status === 'Closed' && to.subStatus !== 'Customer requested to re-open') {
      return refuse(409, 'a closed case changes only by being reopened');
    }
    if (to.status !== 'Closed' && to.status !== 'Open') {
      return refuse(409, `a closed case is reopened to Open first, not to ${to.status}`);
    }
    if (customer && c.autoClosed) {
      return refuse(
        409,
        'closed by the automated follow-ups: "The customer can reopen it only by a telephone call to Customer Care"',
      );
    }
    if (customer && to.status === 'Open') {
      return refuse(
        409,
        'a customer asks to re-open (Closed / Customer requested to re-open); Customer Care reopens the case',
      );
    }
    return undefined;
  }
  if (to.subStatus === 'Customer requested to re-open') {
    return refuse(409, 'only a closed case can be asked to re-open');
  }
  if (customer) {
    if (to.status === 'Awaiting Info' || to.status === 'Solution Proposed') {
      return refuse(
        403,
        `Customer Care ${to.status === 'Awaiting Info' ? 'requests information' : 'proposes a solution'}, not the customer contact`,
      );
    }
    if (to.status === 'Closed' && to.subStatus !== 'Resolved' && to.subStatus !== 'Cancelled') {
      return refuse(403, 'a customer closes a case as Resolved or Cancelled');
    }
    if (to.status === 'Open' && (c.status === 'Open' || to.subStatus !== 'Customer Responded')) {
      return refuse(
        403,
        'the sub-statuses of Open are set by Customer Care (a customer response is Customer Responded)',
      );
    }
  }
  if (c.withheld && to.status === 'Open' && customer) {
    return refuse(409, withheldRule(c));
  }
  return undefined;
}

export function withheldRule(c: Pick<SupportCase, 'site'>): string {
  return `support is withheld until site "${c.site}" has a passing, current readiness assessment (handbook: "We reserve the right to withhold support for VoIP implementations until these items are completed")`;
}

/**
 * Applies a work note, customer update or status change. A customer update to a case in Awaiting
 * Info or Solution Proposed returns it to Open / Customer Responded (handbook: "this will also change
 * the Case Status to Open"), except while support is withheld for want of evidence.
 */
export function decideUpdate(
  c: SupportCase,
  req: CaseUpdateRequest,
  actor: Actor,
  nowMs: number,
): Decided | Refusal {
  const customer = actor.kind === 'customer';
  if (customer && req.priority !== undefined) {
    return refuse(
      403,
      'a customer requests a priority change through a work note (to 3-Medium) or by calling the care team (to 2-High)',
    );
  }
  if (customer && req.rcaRequested) return refuse(403, 'Customer Care records an RCA request');
  if (customer && c.status === 'Closed' && req.status === undefined) {
    return refuse(
      409,
      'the case is closed: ask to re-open it (status Closed / Customer requested to re-open)',
    );
  }
  let to = { status: c.status, subStatus: c.subStatus };
  if (req.status !== undefined) {
    to = { status: req.status, subStatus: req.subStatus ?? defaultSubStatus(req.status, actor) };
    const refused = statusRule(c, to, actor, nowMs);
    if (refused) return refused;
  } else if (customer && WAITING_ON_CUSTOMER.includes(c.status) && !c.withheld) {
    to = { status: 'Open', subStatus: 'Customer Responded' };
  }
  const at = new Date(nowMs).toISOString();
  const next: SupportCase = { ...c, status: to.status, subStatus: to.subStatus, updatedAt: at };
  if (req.priority !== undefined) next.priority = req.priority;
  if (req.rcaRequested) next.rcaRequestedAt = at;
  enterStatus(c, next, at, actor);
  const statusChanged = to.status !== c.status || to.subStatus !== c.subStatus;
  const record: UpdateRecord = {
    kind: customer ? 'customer-update' : req.text !== undefined || !statusChanged ? 'work-note' : 'status',
    by: actor,
    at,
    text: req.text ?? null,
    from: { status: c.status, subStatus: c.subStatus },
    to,
    ...(req.priority !== undefined && req.priority !== c.priority
      ? { priority: { from: c.priority, to: req.priority } }
      : {}),
  };
  return { ok: true, next, record };
}

/** The bookkeeping of entering `next.status` from `prev`: the follow-up timer, closure, release. */
export function enterStatus(prev: SupportCase, next: SupportCase, at: string, actor: Actor): void {
  const waitingBefore = WAITING_ON_CUSTOMER.includes(prev.status);
  const waitingNow = WAITING_ON_CUSTOMER.includes(next.status);
  // "The follow-up timer could start and stop several times for a given case": each request for
  // information or proposed solution starts it afresh; leaving those statuses stops it.
  if (waitingNow && (!waitingBefore || prev.status !== next.status || prev.subStatus !== next.subStatus)) {
    next.followUpSince = at;
    next.followUpsSent = 0;
  } else if (!waitingNow) {
    next.followUpSince = null;
    next.followUpsSent = 0;
  }
  if (next.status === 'Closed' && prev.status !== 'Closed') {
    next.closedAt = at;
    next.autoClosed = actor.kind === 'system';
  }
  if (next.status !== 'Closed') {
    next.closedAt = null;
    next.autoClosed = false;
  }
  // Support moving a withheld case on is support's call: the flag records evidence no longer gates it.
  if (next.status !== 'Awaiting Info') next.withheld = false;
}

export type TimerKind = 'follow-up-1' | 'follow-up-2' | 'auto-close' | 'escalation-eligible' | 'purge';

export interface Timer {
  kind: TimerKind;
  dueAtMs: number;
}

export interface ClockState {
  /** The update time for which the escalation-eligible notice was already sent. */
  escalationNoticeFor: string | null;
  attachmentsPurgedAt: string | null;
}

/** When a case becomes eligible for escalation, or null when it never does (Low). */
export function escalationEligibleAt(c: SupportCase, cal: BusinessCalendar): number | null {
  const since = Date.parse(c.updatedAt);
  // "If a high priority case has not been updated in the last 24 hours"; Prod Down is at least high.
  if (c.priority === '1-Prod Down' || c.priority === '2-High') return since + 24 * HOUR_MS;
  // "If a medium case has not been updated for 3 business days, it is eligible for escalation".
  if (c.priority === '3-Medium') return addBusinessDays(since, 3, cal);
  // "Low priority cases are not eligible for escalation".
  return null;
}

/** The timers a case in this state has: derived from the case, so storing them is idempotent. */
export function timersFor(c: SupportCase, clocks: ClockState, cal: BusinessCalendar): Timer[] {
  const timers: Timer[] = [];
  // "Automated follow-ups are not used for Critical - Production Down cases."
  if (c.followUpSince !== null && c.priority !== '1-Prod Down' && c.followUpsSent < 3) {
    const start = Date.parse(c.followUpSince);
    const kind = (['follow-up-1', 'follow-up-2', 'auto-close'] as const)[c.followUpsSent]!;
    timers.push({ kind, dueAtMs: addBusinessDays(start, FOLLOW_UP_BUSINESS_DAYS[c.followUpsSent]!, cal) });
  }
  // Escalation is about Customer Care not updating a case that waits on it (Open).
  if (c.status === 'Open' && clocks.escalationNoticeFor !== c.updatedAt) {
    const due = escalationEligibleAt(c, cal);
    if (due !== null) timers.push({ kind: 'escalation-eligible', dueAtMs: due });
  }
  if (c.status === 'Closed' && c.closedAt && clocks.attachmentsPurgedAt === null) {
    timers.push({ kind: 'purge', dueAtMs: Date.parse(c.closedAt) + PURGE_AFTER_MS });
  }
  return timers;
}

/** A follow-up timer firing: #1 and #2 send a reminder, #3 closes the case (as Resolved). */
export function fireFollowUp(c: SupportCase, kind: TimerKind, nowMs: number): Decided {
  const at = new Date(nowMs).toISOString();
  const system: Actor = { kind: 'system', name: 'auto-follow-up' };
  const next: SupportCase = { ...c, followUpsSent: c.followUpsSent + 1 };
  let text: string;
  if (kind === 'auto-close') {
    next.status = 'Closed';
    next.subStatus = 'Resolved';
    next.updatedAt = at;
    enterStatus(c, next, at, system);
    text = 'Auto Follow-Up #3: no customer response within 10 business days; the case is closed.';
  } else {
    text = `Auto Follow-Up #${c.followUpsSent + 1}: reminder of the customer action requested.`;
  }
  return {
    ok: true,
    next,
    record: {
      kind: 'system',
      by: system,
      at,
      text,
      from: { status: c.status, subStatus: c.subStatus },
      to: { status: next.status, subStatus: next.subStatus },
    },
  };
}

export type EscalationReason = 'impact' | 'rca';

/** Whether an escalation may be requested now, per "Contacting Technical Support Management". */
export function escalationRule(
  c: SupportCase,
  reason: EscalationReason,
  nowMs: number,
  cal: BusinessCalendar,
): Refusal | undefined {
  if (c.status === 'Closed') return refuse(409, 'a closed case cannot be escalated');
  if (reason === 'rca') {
    if (c.rcaRequestedAt === null) return refuse(409, 'no RCA was requested on this case');
    const days = c.deployment === 'cloud' ? 5 : 7;
    const due = addBusinessDays(Date.parse(c.rcaRequestedAt), days, cal);
    if (nowMs < due) {
      return refuse(
        409,
        `an escalation should not be requested for an RCA before ${days} business days (${c.deployment}); eligible from ${new Date(due).toISOString()}`,
      );
    }
    return undefined;
  }
  const due = escalationEligibleAt(c, cal);
  if (due === null) {
    return refuse(
      409,
      'Low priority cases are not eligible for escalation; request a change to medium through a work note',
    );
  }
  if (nowMs < due) {
    const rule =
      c.priority === '3-Medium'
        ? 'a medium case is eligible for escalation when it has not been updated for 3 business days'
        : 'a high priority case can be escalated when it has not been updated in the last 24 hours';
    return refuse(409, `${rule}; eligible from ${new Date(due).toISOString()}`);
  }
  return undefined;
}
