// Fuzzing the event-log parsers a customer's file reaches: journal JSON lines and Windows XML. No
// input throws; each finishes in bounded time; the summary stays within the schema's bounds.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventTally } from '../../agent/host/events.js';
import { tallyJournalJson } from '../../agent/host/journal.js';
import { syslogRecord } from '../../agent/host/syslog.js';
import { tallyWindowsXml } from '../../agent/host/windows-events.js';
import { HostEventLog } from '../../src/host-schema.js';
import { REPO_ROOT } from '../helpers/cli.js';

const XML = readFileSync(join(REPO_ROOT, 'tests', 'fixtures', 'wevtutil', 'system-application.xml'), 'utf8');

function summaryValid(tally: EventTally): void {
  expect(HostEventLog.safeParse(tally.summary('fuzz', null)).success).toBe(true);
}

describe('event-log parsers (fuzz)', () => {
  it('journal JSON: random lines, values and bytes never throw and stay in bounds', () => {
    const field = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.constant(null),
      fc.array(fc.integer({ min: -5, max: 300 }), { maxLength: 20 }),
      fc.array(fc.string(), { maxLength: 3 }),
    );
    const entry = fc.record(
      {
        PRIORITY: field,
        MESSAGE: field,
        SYSLOG_IDENTIFIER: field,
        MESSAGE_ID: field,
        __REALTIME_TIMESTAMP: field,
      },
      { requiredKeys: [] },
    );
    const line = fc.oneof(
      entry.map((e) => JSON.stringify(e)),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string(),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 50 }), fc.uint8Array({ maxLength: 200 }), (lines, bytes) => {
        const tally = new EventTally();
        const text = Buffer.concat([Buffer.from(lines.join('\n')), Buffer.from(bytes)]);
        const out = tallyJournalJson(text, tally);
        if (out.damagedAt !== undefined) expect(out.damagedAt).toBeLessThanOrEqual(text.length);
        summaryValid(tally);
      }),
      { numRuns: 300 },
    );
  });

  it('Windows XML: the recorded export cut, spliced and salted anywhere never throws', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: XML.length }),
        fc.nat({ max: XML.length }),
        fc.oneof(
          fc.string(),
          fc.constantFrom(
            '<',
            '</Event>',
            '<Event>',
            '&',
            '&#0;',
            ']]>',
            '<!DOCTYPE x [<!ENTITY a "aaaa">]>',
            '\u0000',
          ),
        ),
        (cut, at, salt) => {
          const tally = new EventTally();
          const text = `${XML.slice(0, at)}${salt}${XML.slice(at, Math.max(at, cut))}`;
          const out = tallyWindowsXml(text, tally);
          if (out.damagedAt !== undefined) expect(out.damagedAt).toBeLessThanOrEqual(text.length);
          summaryValid(tally);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('Windows XML: deep nesting, a huge message and an entity bomb finish quickly', () => {
    const deep = `<Event><System><Level>2</Level></System><EventData>${'<a>'.repeat(5_000)}x${'</a>'.repeat(5_000)}</EventData></Event>`;
    const huge = `<Event><System><Provider Name='P'/><EventID>1</EventID><Level>2</Level></System><RenderingInfo><Message>${'é'.repeat(1_000_000)}</Message></RenderingInfo></Event>`;
    const bomb = `<Event><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><System><Level>2</Level></System><EventData><Data>&b;&b;&b;</Data></EventData></Event>`;
    for (const text of [deep, huge, bomb]) {
      const started = performance.now();
      const tally = new EventTally();
      expect(() => tallyWindowsXml(text, tally)).not.toThrow();
      summaryValid(tally);
      // generous: a loaded 2-core machine; the point is no blow-up
      expect(performance.now() - started).toBeLessThan(20_000);
    }
    const tally = new EventTally();
    expect(tallyWindowsXml(huge, tally).records).toBe(1);
    expect(tally.summary('x', null).top[0]!.sample.length).toBeLessThanOrEqual(500);
    expect(tallyWindowsXml(bomb, new EventTally()).damagedAt).toBe(0);
  });

  it('syslog lines: random text never throws', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (line) => {
        const { record } = syslogRecord(line, Date.now());
        expect(typeof record.message).toBe('string');
      }),
      { numRuns: 500 },
    );
  });
});
