// The Windows Event Log through `wevtutil qe LOG /f:xml` (or /f:RenderedXml): a sequence of <Event>
// elements with no root element (Microsoft's event schema, "Event" in
// http://schemas.microsoft.com/win/2004/08/events/event). Each element is checked and parsed on its
// own with fast-xml-parser, so a file damaged part-way still yields the events before the damage.
// Level (System/Level): 1 Critical, 2 Error, 3 Warning, 4 Information, 0 LogAlways, 5 Verbose.
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { HostConfig } from '../../src/config/host.js';
import type { HostEventLog } from '../../src/host-schema.js';
import type { HostDeps } from './deps.js';
import { type EventRecord, type EventTally, type RecordLevel, unreadEventLog } from './events.js';
import { runToText } from './exec.js';

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  // Values stay text: an EventID "007" or a message "1e3" must not turn into numbers.
  parseTagValue: false,
  parseAttributeValue: false,
  processEntities: true,
  htmlEntities: false,
  isArray: (name) => name === 'Data',
});

const LEVELS: Record<string, RecordLevel> = { '1': 'critical', '2': 'error', '3': 'warning' };

function text(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (v && typeof v === 'object' && '#text' in v) return text((v as Record<string, unknown>)['#text']);
  return undefined;
}

function attr(v: unknown, name: string): string | undefined {
  return v && typeof v === 'object' ? text((v as Record<string, unknown>)[`@_${name}`]) : undefined;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});

/** One parsed <Event> as an EventRecord (missing fields tolerated: provider "unknown", no time). */
export function windowsRecord(event: unknown): EventRecord {
  const e = obj(event);
  const system = obj(e.System);
  const level = LEVELS[text(system.Level)?.trim() ?? ''] ?? 'info';
  const provider = attr(system.Provider, 'Name') ?? attr(system.Provider, 'EventSourceName') ?? 'unknown';
  const idText = text(system.EventID)?.trim();
  const id = idText && /^\d{1,10}$/.test(idText) ? Number(idText) : (idText ?? null);
  const time = Date.parse(attr(system.TimeCreated, 'SystemTime') ?? '');
  // RenderedXml carries the formatted message; plain xml only the insertion strings.
  const rendered = text(obj(e.RenderingInfo).Message);
  const data = obj(e.EventData).Data;
  const inserts = Array.isArray(data) ? data.map(text).filter((s): s is string => s !== undefined) : [];
  return {
    provider,
    eventId: id,
    level,
    timeMs: Number.isFinite(time) ? time : null,
    message: rendered ?? inserts.join(' '),
  };
}

/** Tokens allowed between events: whitespace, an XML declaration, an <Events> wrapper (/e:Events). */
const BETWEEN = /^(?:\s|<\?xml[^>]*\?>|<\/?Events(?:\s[^>]*)?>)*$/;
const EVENT_START = /<Event[\s>/]/g;

/**
 * Tallies every readable event of wevtutil XML text. Returns the index (in characters) where the
 * text stops being readable, if it does.
 */
export function tallyWindowsXml(xml: string, tally: EventTally): { records: number; damagedAt?: number } {
  let records = 0;
  let pos = 0;
  EVENT_START.lastIndex = 0;
  while (pos < xml.length) {
    EVENT_START.lastIndex = pos;
    const m = EVENT_START.exec(xml);
    const start = m ? m.index : xml.length;
    if (!BETWEEN.test(xml.slice(pos, start)))
      return { records, damagedAt: pos + firstNonSpace(xml.slice(pos, start)) };
    if (!m) break;
    const selfClosing = /^<Event(?:\s[^<>]*)?\/>/.exec(xml.slice(start, start + 4096));
    const end = selfClosing ? start + selfClosing[0].length : xml.indexOf('</Event>', start);
    if (end < 0) return { records, damagedAt: start };
    const stop = selfClosing ? end : end + '</Event>'.length;
    const chunk = xml.slice(start, stop);
    // wevtutil writes no DTDs; one here is not an event log (and entity tricks stay out).
    if (chunk.includes('<!') && /<!(DOCTYPE|ENTITY)/i.test(chunk)) return { records, damagedAt: start };
    if (XMLValidator.validate(chunk) !== true) return { records, damagedAt: start };
    let parsed: Obj;
    try {
      parsed = obj(parser.parse(chunk));
    } catch {
      return { records, damagedAt: start };
    }
    records++;
    tally.add(windowsRecord(parsed.Event));
    pos = stop;
  }
  return { records };
}

function firstNonSpace(s: string): number {
  const m = /\S/.exec(s);
  return m ? m.index : 0;
}

/** The XPath wevtutil filters with: Critical, Error and Warning since a time. */
export function windowsQuery(sinceMs: number): string {
  const since = new Date(sinceMs).toISOString();
  return `*[System[(Level=1 or Level=2 or Level=3) and TimeCreated[@SystemTime>='${since}']]]`;
}

/** Most events read per log and collection: a flood cannot exhaust the agent's memory. */
const MAX_EVENTS_PER_LOG = 100_000;

/** Reads each configured log with wevtutil since `sinceMs` (the last collection, or the window). */
export async function collectWindows(
  cfg: HostConfig['eventlog'],
  deps: Pick<HostDeps, 'spawn'>,
  sinceMs: number,
  tally: EventTally,
): Promise<HostEventLog> {
  const source = `windows ${cfg.channels.join(',')}`;
  const warnings: string[] = [];
  for (const channel of cfg.channels) {
    const args = ['qe', channel, `/q:${windowsQuery(sinceMs)}`, '/f:RenderedXml', `/c:${MAX_EVENTS_PER_LOG}`];
    const out = await runToText(deps, 'wevtutil', args);
    if ('error' in out) return unreadEventLog(source, `${channel}: ${out.error}`);
    const { damagedAt } = tallyWindowsXml(out.text, tally);
    if (damagedAt !== undefined) warnings.push(`${channel}: output unreadable at character ${damagedAt}`);
  }
  return tally.summary(source, sinceMs, warnings.join('; ') || undefined);
}
