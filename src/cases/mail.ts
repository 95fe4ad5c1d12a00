// The mail texts the case clocks send: follow-ups, the final notice, escalation, release from
// withholding. Plain text; the tracker adapter carries them (webhook) or keeps them (built-in store).
import type { EscalationReason } from './machine.js';
import type { MissingCheck, SupportCase } from './model.js';

export interface Mail {
  to: string;
  subject: string;
  text: string;
}

/** The address the handbook names for management escalations. */
export const ESCALATION_ADDRESS = 'PureConnectCCManagementAttention@genesys.com';

/**
 * "Subject: Customer Name - Case No. - Description", then Case No., Escalation Reason
 * (Impact/Urgency), Product, Version Major/Patch, Summary, Critical dates/times.
 */
export function escalationMail(
  c: SupportCase,
  customerName: string,
  reason: EscalationReason,
  detail: string,
  criticalDates: string[],
): Mail {
  const why =
    reason === 'rca'
      ? `RCA not delivered: requested ${c.rcaRequestedAt}`
      : `${c.priority}, not updated since ${c.updatedAt}`;
  const text = [
    `Case No.: ${c.caseId}`,
    `Escalation Reason (Impact/Urgency): ${why}${detail ? ` — ${detail}` : ''}`,
    `Product: ${c.product}`,
    `Version Major/Patch: ${c.version ?? 'not given'}`,
    `Summary: ${c.subject}. Business impact: ${c.businessImpact}`,
    `Critical dates/times such as go lives, follow up internal meetings: ${criticalDates.length > 0 ? criticalDates.join('; ') : 'none recorded'}`,
  ].join('\n');
  return { to: ESCALATION_ADDRESS, subject: `${customerName} - ${c.caseId} - ${c.subject}`, text };
}

/** The reminder of auto follow-up #1 or #2, and the final notice of #3. */
export function followUpMail(c: SupportCase, n: 1 | 2 | 3, caseLink: string): Mail {
  const action =
    c.status === 'Solution Proposed'
      ? 'accept or reject the proposed solution'
      : c.withheld
        ? 'send a passing readiness assessment of the site (see the checks below)'
        : 'provide the information requested';
  const lines =
    n === 3
      ? [
          `Case ${c.caseId} had no customer response within ten (10) business days and is now closed.`,
          'All information in the case remains intact for one month (including logs and attachments).',
          'The case can be reopened only by a telephone call to Customer Care.',
        ]
      : [
          `Auto Follow-Up #${n} for case ${c.caseId}: we are waiting for you to ${action}.`,
          ...missingLines(c.missingChecks),
        ];
  return {
    // "sent to the customer contact who opened the Case"
    to: c.openedBy.kind === 'customer' ? c.openedBy.name : `the customer contact of site ${c.site}`,
    subject: `${n === 3 ? 'Closed' : `Follow-up #${n}`}: case ${c.caseId} - ${c.subject}`,
    text: [...lines, `Case: ${caseLink}`].join('\n'),
  };
}

export function missingLines(missing: MissingCheck[]): string[] {
  return missing.map((m) => `- ${m.id} (${m.status}): ${m.evidence}. To do: ${m.whatToDo}`);
}
