// The handbook's "Scheduled Pre-Production Verification Checklist" as data ("Notify Support Before
// Cutover"): what a notice must hold, the checks on it, and the document (HTML and a plain-text mail
// body) sent to Customer Care. Pure.
import { z } from 'zod';
import { Identifier } from '../schemas.js';
import { addBusinessDays, type BusinessCalendar, businessDaysBetween } from './calendar.js';

/** "Pre-production system verification includes:" */
export const VERIFICATION_KINDS = {
  'new-installation': 'New installations',
  upgrade: 'Upgrades to an IC Server (including new versions and Service Updates)',
  'additional-equipment': 'Integrating additional equipment or CO lines',
} as const;

/** "Please confirm that the following items have been reviewed and verified:" */
export const CHECKLIST_ITEMS = {
  inHouseWiring: 'In-house wiring complete',
  networkConnectivity: 'Network connectivity issues',
  networkRights: 'Network rights/privileges',
  emailServerUsers: 'Email Server User configurations',
  icInstallation: 'IC Installation, Implementation and Administration',
  icHandlerTesting: 'IC Handler testing/migration complete',
  icIntegrations:
    'IC and 3rd party integrations involved (include switch equipment, channel banks, CSUs, etc.)',
  siteConfiguration: 'Site Configuration – as much detail as possible (i.e. call flows) etc.',
} as const;

/** "Please include the following information." */
export const INFORMATION_ITEMS = {
  customerAndSite: 'Customer name and site',
  coLineConfiguration: 'CO line configuration',
  currentProducts: 'List current products and versions Installed',
  plannedProducts: 'List planned products and versions to be Installed',
  networkTopology: 'Network topology diagram (including telephony and data)',
  umPlatform: 'UM platform',
} as const;

/** "at least 5 business days prior to the scheduled date" */
export const NOTICE_BUSINESS_DAYS = 5;
export const CUSTOMER_CARE_ADDRESS = 'customercare@genesys.com';

const line = (max: number) => z.string().trim().min(1).max(max, `longer than ${max} characters`);
const Contact = z.strictObject({
  name: line(200),
  phone: line(64).optional(),
  email: z.email().max(254).optional(),
});
const Answer = z.strictObject({
  answer: z.enum(['verified', 'not-applicable']),
  notes: line(4000).optional(),
});

const record = <K extends string, V extends z.ZodType>(keys: Record<K, string>, value: V) =>
  z.strictObject(Object.fromEntries(Object.keys(keys).map((k) => [k, value])) as Record<K, V>);

/** POST /api/v1/cutovers body. */
export const CutoverRequest = z.strictObject({
  site: Identifier,
  kind: z.enum(Object.keys(VERIFICATION_KINDS) as [keyof typeof VERIFICATION_KINDS]),
  technicianName: line(200),
  productLine: line(200),
  installationDate: z.iso.date('must be a date YYYY-MM-DD'),
  cutoverAt: z.iso.datetime({
    offset: true,
    message: 'must be a date and time with its offset, e.g. 2026-12-14T22:00:00-05:00',
  }),
  siteContact: Contact,
  vendorContact: Contact,
  /** Every item answered. */
  checklist: record(CHECKLIST_ITEMS, Answer),
  /** Every piece of information given (text, or a link to the document). */
  information: record(INFORMATION_ITEMS, line(16_000)),
});
export type CutoverRequest = z.infer<typeof CutoverRequest>;

/** Why a notice cannot be accepted, beyond its shape: every reason, not only the first. */
export function cutoverTimingReasons(
  req: Pick<CutoverRequest, 'cutoverAt' | 'installationDate'>,
  submittedMs: number,
  cal: BusinessCalendar,
): string[] {
  const reasons: string[] = [];
  const cutoverMs = Date.parse(req.cutoverAt);
  if (cutoverMs <= submittedMs) {
    reasons.push(`cutoverAt ${req.cutoverAt} is in the past`);
  } else {
    const days = businessDaysBetween(submittedMs, cutoverMs, cal);
    if (days < NOTICE_BUSINESS_DAYS) {
      const earliest = new Date(addBusinessDays(submittedMs, NOTICE_BUSINESS_DAYS, cal)).toISOString();
      reasons.push(
        `cutoverAt ${req.cutoverAt} is ${days} business day(s) after submission in the site's calendar (${cal.timeZone}); notify support at least ${NOTICE_BUSINESS_DAYS} business days before (earliest ${earliest})`,
      );
    }
  }
  if (Date.parse(`${req.installationDate}T00:00:00Z`) > cutoverMs) {
    reasons.push(`installationDate ${req.installationDate} is after the cutover`);
  }
  return reasons;
}

export interface CutoverDocument {
  to: string;
  subject: string;
  text: string;
  html: string;
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const contact = (c: z.infer<typeof Contact>) => [c.name, c.phone, c.email].filter(Boolean).join(', ');

/** The checklist ready to send to Customer Care: a plain-text mail body and an HTML page. */
export function renderCutover(
  req: CutoverRequest,
  extra: { cutoverId: string; assessmentId: string; assessedAt: string },
): CutoverDocument {
  const fields: [string, string][] = [
    ['Technician Name', req.technicianName],
    ['Product Line', req.productLine],
    ['Installation Date', req.installationDate],
    ['Cut Over Date', req.cutoverAt],
    ['Site Contact Info', contact(req.siteContact)],
    ['Vendor Contact Information', contact(req.vendorContact)],
  ];
  const items = (Object.keys(CHECKLIST_ITEMS) as (keyof typeof CHECKLIST_ITEMS)[]).map((k) => {
    const a = req.checklist[k];
    return {
      label: CHECKLIST_ITEMS[k],
      answer: a.answer === 'verified' ? 'verified' : 'not applicable',
      notes: a.notes,
    };
  });
  const info = (Object.keys(INFORMATION_ITEMS) as (keyof typeof INFORMATION_ITEMS)[]).map(
    (k) => [INFORMATION_ITEMS[k], req.information[k]] as const,
  );
  const evidence = `Readiness assessment ${extra.assessmentId} of site ${req.site} (assessed ${extra.assessedAt}): passing.`;
  const subject = `Scheduled Pre-Production Verification Checklist: ${req.site} cuts over ${req.cutoverAt}`;
  const text = [
    'Scheduled Pre-Production Verification Checklist',
    `Notice ${extra.cutoverId}: ${VERIFICATION_KINDS[req.kind]}`,
    '',
    ...fields.map(([k, v]) => `${k}: ${v}`),
    '',
    'Reviewed and verified:',
    ...items.map((i) => `- ${i.label}: ${i.answer}${i.notes ? ` (${i.notes})` : ''}`),
    '',
    'Information:',
    ...info.map(([k, v]) => `- ${k}: ${v}`),
    '',
    evidence,
  ].join('\n');
  const row = (k: string, v: string) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head>
<body>
<h1>Scheduled Pre-Production Verification Checklist</h1>
<p>Notice ${escapeHtml(extra.cutoverId)}: ${escapeHtml(VERIFICATION_KINDS[req.kind])}</p>
<table>
${fields.map(([k, v]) => row(k, v)).join('\n')}
</table>
<h2>Reviewed and verified</h2>
<table>
${items.map((i) => row(i.label, `${i.answer}${i.notes ? ` (${i.notes})` : ''}`)).join('\n')}
</table>
<h2>Information</h2>
<table>
${info.map(([k, v]) => row(k, v)).join('\n')}
</table>
<p>${escapeHtml(evidence)}</p>
</body></html>
`;
  return { to: CUSTOMER_CARE_ADDRESS, subject, text, html };
}
