// `voipready cutover submit|list|show`: the handbook's cutover notice to support (docs/cases.md).
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { Command, Io, Values } from '../cli.js';
import { UserError } from '../errors.js';
import { apiClient, CLIENT_OPTIONS, CLIENT_USAGE, operand, printJson } from './api-client.js';

const USAGE = `Usage: voipready cutover submit FILE
       voipready cutover list [--site SITE]
       voipready cutover show ID [--html]

Notifies Technical Support of a scheduled pre-production verification (handbook: "Notify Support
Before Cutover"). FILE (YAML or JSON) holds the "Scheduled Pre-Production Verification Checklist":
site, kind (new-installation, upgrade, additional-equipment), technicianName, productLine,
installationDate, cutoverAt (with its offset), siteContact, vendorContact, every checklist item
answered (verified or not-applicable) and every piece of information; see docs/cases.md for an
example. The collector refuses it, with every reason, unless the cutover is at least 5 business
days away in the site's calendar and the site has a passing readiness assessment, which it attaches.
submit prints the mail body ready to send; show --html prints the HTML checklist.

${CLIENT_USAGE}

Exit codes: 0 ok, 2 error (including a refused notice, with the collector's reasons).`;

async function submit(file: string, values: Values, io: Io): Promise<number> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`);
  }
  let body: unknown;
  try {
    body = parseYaml(text, { logLevel: 'silent' });
  } catch (err) {
    throw new UserError(`${file}: not YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  const res = await apiClient(values, io).call('POST', '/api/v1/cutovers', body);
  if (values.json) printJson(io, res);
  else {
    const doc = res.document as { to: string; subject: string; text: string };
    io.stdout.write(
      `cutover notice ${res.cutoverId} accepted\n\nTo: ${doc.to}\nSubject: ${doc.subject}\n\n${doc.text}\n`,
    );
  }
  return 0;
}

async function list(values: Values, io: Io): Promise<number> {
  const site = values.site as string | undefined;
  const res = await apiClient(values, io).call(
    'GET',
    `/api/v1/cutovers${site ? `?site=${encodeURIComponent(site)}` : ''}`,
  );
  if (values.json) {
    printJson(io, res);
    return 0;
  }
  const rows = res.cutovers as {
    cutoverId: string;
    cutoverAt: string;
    site: string;
    kind: string;
    technicianName: string;
    siteContact: { name: string; phone?: string };
  }[];
  io.stdout.write(
    rows.length === 0
      ? 'no upcoming cutovers\n'
      : `${rows.map((c) => `${c.cutoverAt}  ${c.site}  ${c.kind}  technician ${c.technicianName}  site contact ${c.siteContact.name}${c.siteContact.phone ? ` ${c.siteContact.phone}` : ''}  ${c.cutoverId}`).join('\n')}\n`,
  );
  return 0;
}

async function show(id: string, values: Values, io: Io): Promise<number> {
  const res = await apiClient(values, io).call('GET', `/api/v1/cutovers/${encodeURIComponent(id)}`);
  const doc = res.document as { html: string; text: string };
  if (values.html) io.stdout.write(doc.html);
  else if (values.json) printJson(io, res);
  else io.stdout.write(`${doc.text}\n`);
  return 0;
}

export const command: Command = {
  usage: USAGE,
  positionals: true,
  options: { ...CLIENT_OPTIONS, site: { type: 'string' }, html: { type: 'boolean' } },
  async run(values, positionals, io) {
    const [action, ...rest] = positionals;
    if (rest.length > (action === 'list' ? 0 : 1))
      throw new UserError(`unexpected argument "${rest.at(-1)}"`);
    switch (action) {
      case 'submit':
        return submit(operand(rest, 0, 'checklist file (voipready cutover submit FILE)'), values, io);
      case 'list':
        return list(values, io);
      case 'show':
        return show(operand(rest, 0, 'notice id (voipready cutover show ID)'), values, io);
      default:
        throw new UserError(
          action === undefined
            ? 'missing action: submit, list or show'
            : `unknown action "${action}" (submit, list, show)`,
        );
    }
  },
};
