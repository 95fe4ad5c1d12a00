// Every status transition for each actor, against a table written from the handbook's words, and
// the clocks a case gets in each state.
import { describe, expect, it } from 'vitest';
import { decideUpdate, escalationRule, fireFollowUp, timersFor } from '../../src/cases/machine.js';
import {
  type Actor,
  type CaseStatus,
  SUB_STATUSES,
  type SubStatus,
  type SupportCase,
} from '../../src/cases/model.js';

const T0 = Date.parse('2026-11-27T22:00:00Z'); // Friday 17:00 in New York
const DAY = 86_400_000;
const NY = { timeZone: 'America/New_York', holidays: ['2026-12-25'] };
const SUPPORT: Actor = { kind: 'support', name: 'care' };
const CUSTOMER: Actor = { kind: 'customer', name: 'acme' };

function aCase(status: CaseStatus, subStatus: SubStatus, over: Partial<SupportCase> = {}): SupportCase {
  const at = new Date(T0).toISOString();
  return {
    site: 'hq',
    type: 'Support',
    subType: 'Problem',
    environment: 'prod',
    priority: '3-Medium',
    subject: 's',
    description: 'd',
    businessImpact: 'b',
    product: 'PureConnect',
    deployment: 'premise',
    caseId: '0000000001',
    status,
    subStatus,
    withheld: false,
    missingChecks: [],
    openedBy: CUSTOMER,
    createdAt: at,
    updatedAt: at,
    followUpSince: status === 'Awaiting Info' || status === 'Solution Proposed' ? at : null,
    followUpsSent: 0,
    closedAt: status === 'Closed' ? at : null,
    autoClosed: false,
    rcaRequestedAt: null,
    revision: 1,
    ...over,
  };
}

const STATES = (Object.entries(SUB_STATUSES) as [CaseStatus, readonly SubStatus[]][]).flatMap(
  ([status, subs]) => subs.map((subStatus) => ({ status, subStatus })),
);
const key = (s: { status: string; subStatus: string }) => `${s.status} / ${s.subStatus}`;

/** The handbook's transitions, per actor. */
function allowed(actor: Actor, from: (typeof STATES)[number], to: (typeof STATES)[number]): boolean {
  if (key(from) === key(to) || to.subStatus === 'New') return false;
  const live = from.status !== 'Closed';
  if (actor.kind === 'support') {
    // Customer Care moves a live case anywhere except to a re-open request; a closed case (within
    // 30 days) only reopens to Open or records the customer's request to re-open.
    if (live) return to.subStatus !== 'Customer requested to re-open';
    return to.status === 'Open' || to.subStatus === 'Customer requested to re-open';
  }
  // A customer contact: responds (Open / Customer Responded) to a case waiting on it, closes as
  // Resolved or Cancelled, and asks to re-open a closed case.
  if (live) {
    if (to.status === 'Closed') return to.subStatus === 'Resolved' || to.subStatus === 'Cancelled';
    return from.status !== 'Open' && key(to) === 'Open / Customer Responded';
  }
  return to.subStatus === 'Customer requested to re-open';
}

describe('case state machine', () => {
  for (const actor of [SUPPORT, CUSTOMER]) {
    for (const from of STATES) {
      it(`${actor.kind}: from ${key(from)}`, () => {
        const outcomes = STATES.map((to) => {
          const r = decideUpdate(
            aCase(from.status, from.subStatus),
            { status: to.status, subStatus: to.subStatus },
            actor,
            T0 + DAY,
          );
          return { to: key(to), ok: r.ok, code: r.ok ? 200 : r.code, rule: r.ok ? '' : r.rule };
        });
        const expected = STATES.map((to) => ({ to: key(to), ok: allowed(actor, from, to) }));
        expect(outcomes.map(({ to, ok }) => ({ to, ok }))).toEqual(expected);
        for (const o of outcomes.filter((x) => !x.ok)) {
          expect([403, 409]).toContain(o.code);
          expect(o.rule.length).toBeGreaterThan(10);
        }
      });
    }
  }

  it('reopening is refused after 30 days, with the reason; a case closed by the follow-ups reopens only by phone', () => {
    const closed = aCase('Closed', 'Resolved');
    const late = decideUpdate(closed, { status: 'Open' }, SUPPORT, T0 + 31 * DAY);
    expect(late).toMatchObject({ ok: false, code: 409 });
    expect(!late.ok && late.rule).toMatch(/within 30 days of closure.*open a new case/);
    const auto = decideUpdate(
      { ...closed, autoClosed: true },
      { status: 'Closed', subStatus: 'Customer requested to re-open' },
      CUSTOMER,
      T0 + DAY,
    );
    expect(!auto.ok && auto.rule).toMatch(/telephone call/);
    const byPhone = decideUpdate({ ...closed, autoClosed: true }, { status: 'Open' }, SUPPORT, T0 + DAY);
    expect(byPhone).toMatchObject({
      ok: true,
      next: { status: 'Open', subStatus: 'Investigation', closedAt: null },
    });
  });

  it('a customer update in Awaiting Info or Solution Proposed returns the case to Open / Customer Responded', () => {
    for (const [status, sub] of [
      ['Awaiting Info', 'Info required from the customer'],
      ['Solution Proposed', 'Replied'],
    ] as const) {
      const r = decideUpdate(aCase(status, sub), { text: 'here are the logs' }, CUSTOMER, T0 + DAY);
      expect(r).toMatchObject({
        ok: true,
        next: { status: 'Open', subStatus: 'Customer Responded', followUpSince: null },
      });
      const note = decideUpdate(aCase(status, sub), { text: 'internal note' }, SUPPORT, T0 + DAY);
      expect(note).toMatchObject({ ok: true, next: { status }, record: { kind: 'work-note' } });
    }
    const held = decideUpdate(
      aCase('Awaiting Info', 'Info required from the customer', { withheld: true }),
      { text: 'x' },
      CUSTOMER,
      T0,
    );
    expect(held).toMatchObject({ ok: true, next: { status: 'Awaiting Info', withheld: true } });
  });
});

describe('case clocks', () => {
  it('the follow-up timer: #1 at 2, #2 at 5, closure at 10 business days; never for 1-Prod Down', () => {
    let c = aCase('Awaiting Info', 'Info required from the customer');
    const clocks = { escalationNoticeFor: null, attachmentsPurgedAt: null };
    const due: string[] = [];
    for (let i = 0; i < 3; i++) {
      const [timer] = timersFor(c, clocks, NY).filter((t) => t.kind !== 'escalation-eligible');
      due.push(`${timer!.kind}@${new Date(timer!.dueAtMs).toISOString()}`);
      c = fireFollowUp(c, timer!.kind, timer!.dueAtMs).next;
    }
    expect(due).toEqual([
      'follow-up-1@2026-12-01T22:00:00.000Z',
      'follow-up-2@2026-12-04T22:00:00.000Z',
      'auto-close@2026-12-11T22:00:00.000Z',
    ]);
    expect(c).toMatchObject({
      status: 'Closed',
      subStatus: 'Resolved',
      autoClosed: true,
      closedAt: '2026-12-11T22:00:00.000Z',
    });
    expect(timersFor(c, clocks, NY)).toEqual([
      { kind: 'purge', dueAtMs: Date.parse('2026-12-11T22:00:00Z') + 30 * DAY },
    ]);
    expect(
      timersFor(
        aCase('Awaiting Info', 'Info required from the customer', { priority: '1-Prod Down' }),
        clocks,
        NY,
      ),
    ).toEqual([]);
  });

  it('the timer stops when the customer responds and restarts when support asks again', () => {
    const waiting = aCase('Solution Proposed', 'Replied');
    const responded = decideUpdate(waiting, { text: 'does not work' }, CUSTOMER, T0 + DAY);
    if (!responded.ok) throw new Error(responded.rule);
    expect(
      timersFor(responded.next, { escalationNoticeFor: null, attachmentsPurgedAt: null }, NY).map(
        (t) => t.kind,
      ),
    ).toEqual(['escalation-eligible']);
    const asked = decideUpdate(responded.next, { status: 'Awaiting Info' }, SUPPORT, T0 + 4 * DAY); // Tuesday
    if (!asked.ok) throw new Error(asked.rule);
    const [timer] = timersFor(asked.next, { escalationNoticeFor: null, attachmentsPurgedAt: null }, NY);
    expect(timer).toEqual({ kind: 'follow-up-1', dueAtMs: T0 + 6 * DAY }); // Thursday 17:00
  });

  it('escalation: High after 24 h without update, Medium after 3 business days, Low never; RCA after 5 (cloud) / 7 (premise) business days', () => {
    const high = aCase('Open', 'Investigation', { priority: '2-High' });
    expect(escalationRule(high, 'impact', T0 + 23 * 3_600_000, NY)?.rule).toMatch(/last 24 hours/);
    expect(escalationRule(high, 'impact', T0 + 24 * 3_600_000, NY)).toBeUndefined();
    const medium = aCase('Open', 'Investigation');
    // Friday 17:00 + 3 business days = Wednesday 17:00.
    expect(escalationRule(medium, 'impact', T0 + 5 * DAY - 1, NY)?.rule).toMatch(/3 business days/);
    expect(escalationRule(medium, 'impact', T0 + 5 * DAY, NY)).toBeUndefined();
    expect(
      escalationRule(aCase('Open', 'Investigation', { priority: '4-Low' }), 'impact', T0 + 100 * DAY, NY)
        ?.rule,
    ).toMatch(/Low priority cases are not eligible/);
    const rca = { rcaRequestedAt: new Date(T0).toISOString() };
    expect(
      escalationRule(
        aCase('Open', 'Investigation', { ...rca, deployment: 'cloud' }),
        'rca',
        T0 + 7 * DAY - 1,
        NY,
      )?.rule,
    ).toMatch(/5 business days \(cloud\)/);
    expect(
      escalationRule(
        aCase('Open', 'Investigation', { ...rca, deployment: 'cloud' }),
        'rca',
        T0 + 7 * DAY,
        NY,
      ),
    ).toBeUndefined();
    expect(escalationRule(aCase('Open', 'Investigation', rca), 'rca', T0 + 9 * DAY, NY)?.rule).toMatch(
      /7 business days/,
    );
    expect(escalationRule(aCase('Open', 'Investigation', rca), 'rca', T0 + 11 * DAY, NY)).toBeUndefined();
  });
});
