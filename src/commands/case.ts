// `voipready case open|show|list|update|escalate`: support cases on a collector (docs/cases.md).
import type { Command, Io, Values } from '../cli.js';
import { UserError } from '../errors.js';
import { apiClient, CLIENT_OPTIONS, CLIENT_USAGE, operand, printJson } from './api-client.js';

const USAGE = `Usage: voipready case open --site SITE --subject TEXT --product NAME [options]
       voipready case show CASE-NO
       voipready case list [--site SITE] [--status STATUS] [--priority PRIORITY]
       voipready case update CASE-NO [--text TEXT] [--status STATUS [--sub-status SUB]] [--priority P]
       voipready case escalate CASE-NO --reason impact|rca [--detail TEXT]

Support cases gated on the site's evidence: a voice case gets the site's latest readiness assessment
attached, and waits as "Awaiting Info / Info required from the customer" until the site passes
(except 1-Prod Down). Statuses, sub-statuses and priorities are the handbook's words, e.g.
--status "Solution Proposed" --sub-status Replied, --priority 2-High.

Open options:
  --site SITE              the site the case is about (required)
  --subject TEXT           brief description (required)
  --product NAME           product; naming voice or telephony makes it a voice case (required)
  --description TEXT       as descriptive as possible, recent changes included (default: the subject)
  --business-impact TEXT   e.g. number of agents/calls affected (default: "not stated")
  --type Support|Admin|MAC             (default Support)
  --sub-type Problem|Inquiry           (default Problem)
  --environment dev|prod               (default prod)
  --priority 1-Prod Down|2-High|3-Medium|4-Low (default 4-Low)
  --agents-affected N, --version V, --external-ref REF, --deployment cloud|premise
  --voice                  mark it a voice case whatever the product
Update options:
  --text TEXT              a work note (support token) or customer update (customer token)
  --rca-requested          record that Customer Care was asked for a root-cause analysis

${CLIENT_USAGE}

Exit codes: 0 ok, 1 case opened but support withheld (site not VoIP-ready), 2 error.`;

const str = (values: Values, key: string) => values[key] as string | undefined;

function defined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

function caseLine(c: Record<string, unknown>): string {
  const held = c.withheld ? ' [support withheld]' : '';
  return `${c.caseId}  ${c.status} / ${c.subStatus}  ${c.priority}  ${c.site}  ${c.subject}${held}`;
}

function missingLines(missing: unknown): string[] {
  return (missing as { id: string; status: string; evidence: string; whatToDo: string }[]).map(
    (m) => `  ${m.id} ${m.status}: ${m.evidence}\n    to do: ${m.whatToDo}`,
  );
}

async function open(values: Values, io: Io): Promise<number> {
  for (const key of ['site', 'subject', 'product']) {
    if (!str(values, key)) throw new UserError(`case open needs --${key}`);
  }
  const agents = str(values, 'agents-affected');
  if (agents !== undefined && !/^\d{1,7}$/.test(agents)) {
    throw new UserError(`--agents-affected "${agents}" is not a whole number`);
  }
  const body = defined({
    site: str(values, 'site'),
    type: str(values, 'type'),
    subType: str(values, 'sub-type') ?? 'Problem',
    environment: str(values, 'environment') ?? 'prod',
    priority: str(values, 'priority'),
    subject: str(values, 'subject'),
    description: str(values, 'description') ?? str(values, 'subject'),
    businessImpact: str(values, 'business-impact') ?? 'not stated',
    agentsAffected: agents === undefined ? undefined : Number(agents),
    product: str(values, 'product'),
    version: str(values, 'version'),
    externalRef: str(values, 'external-ref'),
    deployment: str(values, 'deployment'),
    voice: values.voice ? true : undefined,
  });
  const res = await apiClient(values, io).call('POST', '/api/v1/cases', body);
  if (values.json) printJson(io, res);
  else {
    io.stdout.write(`case ${res.caseId} opened: ${res.status} / ${res.subStatus}\n`);
    const attached = res.attachments as { kind: string; assessmentId: string }[];
    for (const a of attached) io.stdout.write(`attached: ${a.kind} ${a.assessmentId}\n`);
    if (res.withheld) io.stdout.write('support withheld until the site is VoIP-ready; checks to fix:\n');
    else if ((res.missingChecks as unknown[]).length > 0)
      io.stdout.write('1-Prod Down is never blocked; the site is not VoIP-ready:\n');
    for (const line of missingLines(res.missingChecks)) io.stdout.write(`${line}\n`);
  }
  return res.withheld ? 1 : 0;
}

async function show(id: string, values: Values, io: Io): Promise<number> {
  const c = await apiClient(values, io).call('GET', `/api/v1/cases/${encodeURIComponent(id)}`);
  if (values.json) {
    printJson(io, c);
    return 0;
  }
  const lines = [
    caseLine(c),
    `type ${c.type} / ${c.subType}, ${c.environment}, product ${c.product}${c.version ? ` ${c.version}` : ''}, opened ${c.createdAt} by ${(c.openedBy as { name: string }).name}`,
    ...missingLines(c.missingChecks),
    ...(
      c.attachments as { attachmentId: number; kind: string; assessmentId: string; purgedAt: string | null }[]
    ).map(
      (a) =>
        `attachment ${a.attachmentId}: ${a.kind} ${a.assessmentId}${a.purgedAt ? ` (purged ${a.purgedAt})` : ''}`,
    ),
    ...(
      c.updates as {
        at: string;
        kind: string;
        by: { name: string };
        text: string | null;
        to: { status: string; subStatus: string };
      }[]
    ).map(
      (u) =>
        `${u.at} ${u.kind} by ${u.by.name} → ${u.to.status} / ${u.to.subStatus}${u.text ? `: ${u.text.split('\n')[0]}` : ''}`,
    ),
  ];
  io.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

async function list(values: Values, io: Io): Promise<number> {
  const q = new URLSearchParams(
    defined({
      site: str(values, 'site'),
      status: str(values, 'status'),
      priority: str(values, 'priority'),
    }) as Record<string, string>,
  );
  const res = await apiClient(values, io).call('GET', `/api/v1/cases${q.size > 0 ? `?${q}` : ''}`);
  if (values.json) printJson(io, res);
  else {
    const cases = res.cases as Record<string, unknown>[];
    io.stdout.write(cases.length === 0 ? 'no cases\n' : `${cases.map(caseLine).join('\n')}\n`);
  }
  return 0;
}

async function update(id: string, values: Values, io: Io): Promise<number> {
  const body = defined({
    text: str(values, 'text'),
    status: str(values, 'status'),
    subStatus: str(values, 'sub-status'),
    priority: str(values, 'priority'),
    rcaRequested: values['rca-requested'] ? true : undefined,
  });
  if (Object.keys(body).length === 0)
    throw new UserError('case update needs --text, --status, --priority or --rca-requested');
  const c = await apiClient(values, io).call('POST', `/api/v1/cases/${encodeURIComponent(id)}/updates`, body);
  if (values.json) printJson(io, c);
  else io.stdout.write(`${caseLine(c)}\n`);
  return 0;
}

async function escalate(id: string, values: Values, io: Io): Promise<number> {
  const reason = str(values, 'reason');
  if (reason !== 'impact' && reason !== 'rca')
    throw new UserError('case escalate needs --reason impact or --reason rca');
  const res = await apiClient(values, io).call(
    'POST',
    `/api/v1/cases/${encodeURIComponent(id)}/escalations`,
    {
      reason,
      ...(str(values, 'detail') ? { detail: str(values, 'detail') } : {}),
    },
  );
  const mail = res.mail as { to: string; subject: string; text: string };
  if (values.json) printJson(io, res);
  else io.stdout.write(`To: ${mail.to}\nSubject: ${mail.subject}\n\n${mail.text}\n`);
  return 0;
}

export const command: Command = {
  usage: USAGE,
  positionals: true,
  options: {
    ...CLIENT_OPTIONS,
    site: { type: 'string' },
    subject: { type: 'string' },
    product: { type: 'string' },
    description: { type: 'string' },
    'business-impact': { type: 'string' },
    type: { type: 'string' },
    'sub-type': { type: 'string' },
    environment: { type: 'string' },
    priority: { type: 'string' },
    'agents-affected': { type: 'string' },
    version: { type: 'string' },
    'external-ref': { type: 'string' },
    deployment: { type: 'string' },
    voice: { type: 'boolean' },
    text: { type: 'string' },
    status: { type: 'string' },
    'sub-status': { type: 'string' },
    'rca-requested': { type: 'boolean' },
    reason: { type: 'string' },
    detail: { type: 'string' },
  },
  async run(values, positionals, io) {
    const [action, ...rest] = positionals;
    const extra = (n: number) => {
      if (rest.length > n) throw new UserError(`unexpected argument "${rest[n]}"`);
    };
    switch (action) {
      case 'open':
        extra(0);
        return open(values, io);
      case 'list':
        extra(0);
        return list(values, io);
      case 'show':
        extra(1);
        return show(operand(rest, 0, 'case number (voipready case show CASE-NO)'), values, io);
      case 'update':
        extra(1);
        return update(operand(rest, 0, 'case number (voipready case update CASE-NO ...)'), values, io);
      case 'escalate':
        extra(1);
        return escalate(operand(rest, 0, 'case number (voipready case escalate CASE-NO ...)'), values, io);
      default:
        throw new UserError(
          action === undefined
            ? 'missing action: open, show, list, update or escalate'
            : `unknown action "${action}" (open, show, list, update, escalate)`,
        );
    }
  },
};
