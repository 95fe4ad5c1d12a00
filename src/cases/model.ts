// A support case as the handbook describes it ("Opening a new web Case", "Case States and
// Statuses"). contract: the request keys of POST /api/v1/cases and the status, sub-status and
// priority words, which are the handbook's exactly.
import { z } from 'zod';
import { Identifier } from '../schemas.js';

/** "Case States and Statuses": 4 statuses and their sub-statuses, in the handbook's words. */
export const SUB_STATUSES = {
  Open: ['New', 'Investigation', 'Customer Responded', 'Engineering Request', '3rd Party Pending'],
  'Awaiting Info': ['Info required from the customer'],
  'Solution Proposed': ['Fixed-Software Provided', 'Replied'],
  Closed: ['Resolved', 'Cancelled', 'Logged for Future Fix', 'Redirected', 'Customer requested to re-open'],
} as const;
export type CaseStatus = keyof typeof SUB_STATUSES;
export const CASE_STATUSES = Object.keys(SUB_STATUSES) as CaseStatus[];
export type SubStatus = (typeof SUB_STATUSES)[CaseStatus][number];
export const ALL_SUB_STATUSES = Object.values(SUB_STATUSES).flat() as SubStatus[];

/** "Priority: Choose priority of case. Automatically defaults to low". */
export const PRIORITIES = ['1-Prod Down', '2-High', '3-Medium', '4-Low'] as const;
export type Priority = (typeof PRIORITIES)[number];

export const CASE_TYPES = ['Support', 'Admin', 'MAC'] as const;
export const CASE_SUB_TYPES = ['Problem', 'Inquiry'] as const;
export const ENVIRONMENTS = ['dev', 'prod'] as const;

const MAX_TEXT = 32 * 1024;
const text = (max: number) => z.string().trim().min(1).max(max, `longer than ${max} characters`);

/** contract: POST /api/v1/cases body. */
export const NewCase = z.strictObject({
  site: Identifier,
  type: z.enum(CASE_TYPES).default('Support'),
  subType: z.enum(CASE_SUB_TYPES),
  environment: z.enum(ENVIRONMENTS),
  priority: z.enum(PRIORITIES).default('4-Low'),
  subject: text(255),
  description: text(MAX_TEXT),
  businessImpact: text(MAX_TEXT),
  agentsAffected: z.number().int().min(0).max(1_000_000).optional(),
  product: text(255),
  version: text(64).optional(),
  externalRef: text(255).optional(),
  voice: z.boolean().optional(),
  /** Which RCA target applies ("5 business days for cloud deployments or 7 business days for premise"). */
  deployment: z.enum(['cloud', 'premise']).default('premise'),
});
export type NewCase = z.infer<typeof NewCase>;

/** POST /api/v1/cases/:id/updates: a work note (support), a customer update, a status change. */
export const CaseUpdateRequest = z
  .strictObject({
    text: text(MAX_TEXT).optional(),
    status: z.enum(CASE_STATUSES as [CaseStatus, ...CaseStatus[]]).optional(),
    subStatus: z.enum(ALL_SUB_STATUSES as [SubStatus, ...SubStatus[]]).optional(),
    priority: z.enum(PRIORITIES).optional(),
    /** Customer Care asks for a root-cause analysis: starts the RCA clock for escalation. */
    rcaRequested: z.literal(true).optional(),
  })
  .refine((u) => Object.keys(u).length > 0, 'an update needs text, a status, a priority or rcaRequested')
  .refine((u) => u.subStatus === undefined || u.status !== undefined, {
    message: 'subStatus needs its status',
    path: ['subStatus'],
  });
export type CaseUpdateRequest = z.infer<typeof CaseUpdateRequest>;

/** Who acts on a case: a support engineer (every case) or a customer contact (its sites' cases);
 * `system` is the collector itself (clocks, eligibility). */
export type ActorKind = 'support' | 'customer' | 'system';
export interface Actor {
  kind: ActorKind;
  name: string;
}

export interface MissingCheck {
  id: string;
  status: 'fail' | 'unknown' | 'missing';
  evidence: string;
  /** What the customer should do so that support can proceed. */
  whatToDo: string;
}

export interface SupportCase extends NewCase {
  caseId: string;
  status: CaseStatus;
  subStatus: SubStatus;
  /** Support withheld until the site has a passing assessment (handbook: "We reserve the right to
   * withhold support for VoIP implementations until these items are completed"). */
  withheld: boolean;
  missingChecks: MissingCheck[];
  openedBy: Actor;
  createdAt: string;
  /** Last update of any kind (note, customer update, status): what the escalation clocks measure. */
  updatedAt: string;
  /** When Customer Care last proposed a solution or requested information (the follow-up timer). */
  followUpSince: string | null;
  followUpsSent: number;
  closedAt: string | null;
  /** Closed by the third automated follow-up: "The customer can reopen it only by a telephone call". */
  autoClosed: boolean;
  rcaRequestedAt: string | null;
  /** Optimistic-concurrency version: every stored change increments it. */
  revision: number;
}

/** Whether a case is about voice: the field says so, or its product names voice or telephony. */
export function isVoiceCase(c: Pick<NewCase, 'voice' | 'product'>): boolean {
  return c.voice === true || /\b(voice|voip|telephony|sip|rtp)\b/i.test(c.product);
}
