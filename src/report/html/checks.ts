// The verdict and the table of handbook checks: one row per check with its status, the measured
// value against the limit, the handbook sentence it enforces, the evidence, and what to do.
import { RULES } from '../../policy.js';
import type { Check, CheckId, CheckStatus } from '../../schemas.js';
import { foldText } from './format.js';
import { type Html, html } from './markup.js';

const LABEL: Record<CheckId, string> = {
  latency: 'Latency',
  jitter: 'Jitter',
  loss: 'Packet loss',
  'dscp-rtp': 'DSCP of RTP (media)',
  'dscp-sip': 'DSCP of SIP (signalling)',
  bandwidth: 'Bandwidth for the planned calls',
  disk: 'Disk space',
  eventlog: 'System event log',
  backup: 'Backups',
  sip: 'SIP server answers OPTIONS',
  system: 'System performance',
  priority: 'EF prioritised under load',
};

export const checkLabel = (id: string): string => LABEL[id as CheckId] ?? id;

const STATUS_TEXT: Record<CheckStatus, string> = {
  pass: 'pass',
  warn: 'warning',
  fail: 'FAIL',
  unknown: 'not measured',
};

export function statusBadge(status: CheckStatus): Html {
  return html`<span class="status status-${status}">${STATUS_TEXT[status]}</span>`;
}

/** What an engineer does about a failed (or warned) check. */
const REMEDY: Record<CheckId, string> = {
  latency:
    'Shorten or unload the path to the data centre: check the route (traceroute), congested or shaped WAN links, VPN and proxy hops. ITU-T G.114 keeps one-way delay under 150 ms.',
  jitter:
    'Queue RTP in a strict-priority (EF) queue on every WAN and LAN hop; look for congested uplinks, Wi-Fi segments and deep buffers in front of the voice traffic.',
  loss: 'Find where packets drop: interface error and discard counters, congested uplinks, and EF policers sized below the calls the site carries.',
  'dscp-rtp':
    'Mark RTP as EF (46) at the phone or access switch and trust and keep the mark on every hop; the evidence names the direction that rewrote it.',
  'dscp-sip':
    'Mark SIP as CS3 (24) where it enters the network and keep the mark on every hop; the evidence names the direction that rewrote it.',
  bandwidth:
    "Provision the codec's bandwidth (see the sizing below) for the planned concurrent calls, with the voice class given that much priority, then probe again with --calls set to the planned number.",
  disk: 'Free space or add disk so that raised tracing levels cannot fill the volume before the next maintenance window.',
  eventlog: 'Read the listed errors in the system event log and fix what is system-impacting before go-live.',
  backup: 'Run a system and configuration backup now and schedule them, so a recent one always exists.',
  system:
    'Find what keeps the server busy (CPU, memory, swap or load above the site limit) and relieve it, or communicate the hardware need.',
  priority:
    'Give EF a strict-priority queue on the link that congested (HTB/LLQ class at priority 0, matching DSCP 46) and make sure the marked RTP is classified into it; the evidence gives EF and best effort side by side.',
  sip: 'Check that the SIP server is up and reachable from the site (firewall, SIP ALG, TLS certificate) and answers OPTIONS in time; the evidence gives its response or why none came.',
};

function unknownRemedy(c: Check): string {
  if (c.id === 'dscp-rtp' || c.id === 'dscp-sip') {
    return /CAP_NET_RAW|raw socket|could not mark|cannot read marks|cannot mark/i.test(c.evidence)
      ? 'Measure it: run the probe and the reflector with CAP_NET_RAW (as root, or setcap cap_net_raw+ep on node), over IPv4.'
      : 'Measure it: probe again; the evidence says why the marks could not be read.';
  }
  if (c.id === 'bandwidth' && /plans \d+ calls/.test(c.evidence))
    return 'Probe again with --calls set to the number of concurrent calls the site plans.';
  if (c.id === 'priority')
    return /never congested/.test(c.evidence)
      ? 'Run the priority test again with a higher --load (up to the link rate), or at a busy hour.'
      : 'Run `voipready probe --priority-test` against a reflector started with --accept-load.';
  if (/stale/.test(c.evidence)) return 'Measure again: the evidence is older than its validity.';
  return 'Measure it: the evidence says why it was not measured. Unknown is not a pass.';
}

export function remedy(c: Check): string {
  if (c.status === 'pass') return '—';
  if (c.status === 'unknown') return unknownRemedy(c);
  return REMEDY[c.id] ?? 'See the evidence.';
}

const fmt = (v: Check['value'], unit: string | null): string => {
  if (v === null) return '—';
  const u = unit && unit !== 'dscp' && unit !== 'calls' ? ` ${unit}` : unit === 'calls' ? ' calls' : '';
  return `${v}${u}`;
};

function limitText(c: Check): string {
  if (c.limit === null) return '—';
  switch (c.id) {
    case 'latency':
    case 'jitter':
      return `< ${fmt(c.limit, c.unit)}`;
    case 'loss':
      return `≤ ${fmt(c.limit, c.unit)}`;
    case 'dscp-rtp':
    case 'dscp-sip':
      return `${c.limit} sent and on arrival`;
    case 'bandwidth':
      return `${fmt(c.limit, c.unit)} carried`;
    default:
      return fmt(c.limit, c.unit);
  }
}

/** One check's row; `id` gives the anchor the verdict links to. */
function checkRow(c: Check, anchor: string): Html {
  return html`<tr id="${anchor}" class="row-${c.status}">
<th scope="row">${checkLabel(c.id)}<div class="muted mono">${c.id}</div></th>
<td>${statusBadge(c.status)}</td>
<td class="num">${fmt(c.value, c.unit)}</td>
<td class="num">${limitText(c)}</td>
<td><q>${c.rule ?? RULES[c.id] ?? ''}</q></td>
<td class="evidence">${foldText(c.evidence)}</td>
<td>${remedy(c)}</td>
</tr>`;
}

/** `anchors`, one per check, when check ids repeat on the page (several peers' checks in one table). */
export function checksTable(
  checks: Check[],
  caption: string,
  anchorPrefix: string,
  anchors?: string[],
): Html {
  return html`<div class="table-wrap"><table class="checks">
<caption>${caption}</caption>
<thead><tr><th scope="col">Check</th><th scope="col">Status</th><th scope="col">Measured</th><th scope="col">Limit</th><th scope="col">Handbook</th><th scope="col">Evidence</th><th scope="col">What to do</th></tr></thead>
<tbody>${checks.map((c, i) => checkRow(c, anchors?.[i] ?? `${anchorPrefix}${c.id}`))}</tbody>
</table></div>`;
}

export interface VerdictInput {
  ready: boolean;
  checks: Check[];
  /** e.g. "Site hq" or "Path to dc1:4000". */
  subject: string;
  /** Extra reason the verdict is what it is (stale evidence, no audio). */
  note?: string;
  anchorPrefix: string;
  /** One anchor per check, as checksTable was given them (else prefix + check id). */
  anchors?: string[];
  /** Word for a positive verdict ("VoIP-ready", "Healthy"). */
  readyWord?: string;
}

/** The verdict up front: ready or not, and which checks keep it from being ready. */
export function verdictBlock(v: VerdictInput): Html {
  const failing = v.checks.filter((c) => c.status === 'fail');
  const unknown = v.checks.filter((c) => c.status === 'unknown');
  const warned = v.checks.filter((c) => c.status === 'warn');
  const readyWord = v.readyWord ?? 'VoIP-ready';
  const list = (cs: Check[]) =>
    cs.map(
      (c, i) =>
        html`${i > 0 ? ', ' : ''}<a href="#${v.anchors?.[v.checks.indexOf(c)] ?? `${v.anchorPrefix}${c.id}`}">${checkLabel(c.id)}</a>`,
    );
  return html`<section class="verdict verdict-${v.ready ? 'ready' : 'not-ready'}" aria-labelledby="verdict-heading">
<h2 id="verdict-heading"><span class="verdict-word">${v.ready ? readyWord : `Not ${readyWord}`}</span> <span class="verdict-subject">— ${v.subject}</span></h2>
<p class="verdict-counts">${v.checks.length - failing.length - unknown.length - warned.length} of ${v.checks.length} checks pass${failing.length ? html`; <strong>${failing.length} fail</strong>: ${list(failing)}` : ''}${unknown.length ? html`; <strong>${unknown.length} not measured</strong> (unknown is not a pass): ${list(unknown)}` : ''}${warned.length ? html`; ${warned.length} warn: ${list(warned)}` : ''}.</p>
${v.note ? html`<p class="verdict-note">${v.note}</p>` : ''}
</section>`;
}
