// The business-day calendar: weekends, holidays, time zones and daylight-saving changes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addBusinessDays,
  type BusinessCalendar,
  businessDaysBetween,
  fromLocalTime,
  isBusinessDay,
  localTime,
} from '../../src/cases/calendar.js';

const NY: BusinessCalendar = { timeZone: 'America/New_York', holidays: [] };
const BERLIN_HOLIDAY: BusinessCalendar = { timeZone: 'Europe/Berlin', holidays: ['2026-11-30'] };
const iso = (ms: number) => new Date(ms).toISOString();

describe('business days', () => {
  it('Friday 17:00 in New York + 2 business days is Tuesday 17:00 there', () => {
    const friday = Date.parse('2026-11-27T22:00:00Z'); // 17:00 EST
    expect(iso(addBusinessDays(friday, 2, NY))).toBe('2026-12-01T22:00:00.000Z');
    expect(iso(addBusinessDays(friday, 5, NY))).toBe('2026-12-04T22:00:00.000Z');
    expect(iso(addBusinessDays(friday, 10, NY))).toBe('2026-12-11T22:00:00.000Z');
  });

  it('the same instant is Friday 23:00 in Berlin, where a Monday holiday moves the day on', () => {
    const instant = Date.parse('2026-11-27T22:00:00Z');
    expect(localTime(instant, 'Europe/Berlin')).toMatchObject({ day: 27, hour: 23 });
    expect(iso(addBusinessDays(instant, 2, BERLIN_HOLIDAY))).toBe('2026-12-02T22:00:00.000Z');
    expect(isBusinessDay(Date.parse('2026-11-30T12:00:00Z'), BERLIN_HOLIDAY)).toBe(false);
    expect(isBusinessDay(Date.parse('2026-11-30T12:00:00Z'), NY)).toBe(true);
  });

  it('keeps the wall-clock time across the end of daylight saving time', () => {
    const friday = Date.parse('2026-10-30T21:00:00Z'); // 17:00 EDT
    expect(iso(addBusinessDays(friday, 2, NY))).toBe('2026-11-03T22:00:00.000Z'); // 17:00 EST
  });

  it('a start on a weekend counts from 00:00 of the next business day', () => {
    const saturday = Date.parse('2026-11-28T15:00:00Z'); // 10:00 EST
    expect(iso(addBusinessDays(saturday, 2, NY))).toBe('2026-12-02T05:00:00.000Z');
    expect(iso(addBusinessDays(saturday, 0, NY))).toBe('2026-11-30T05:00:00.000Z');
  });

  it('a time skipped by the spring-forward jump lands after it', () => {
    // 2027-03-14 02:30 does not exist in New York.
    const ms = fromLocalTime(
      { year: 2027, month: 3, day: 14, hour: 2, minute: 30, second: 0, ms: 0 },
      'America/New_York',
    );
    expect(localTime(ms, 'America/New_York')).toMatchObject({ hour: 3, minute: 30 });
  });

  it('n business days later is always a business day, later by at least n days, and counted back as n', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: Date.parse('2020-01-01'), max: Date.parse('2035-01-01') }),
        fc.integer({ min: 1, max: 15 }),
        fc.constantFrom('America/New_York', 'Europe/Berlin', 'Asia/Kolkata', 'Australia/Sydney', 'UTC'),
        (start, n, timeZone) => {
          const cal = { timeZone, holidays: ['2026-12-25', '2027-01-01'] };
          const due = addBusinessDays(start, n, cal);
          expect(isBusinessDay(due, cal)).toBe(true);
          expect(due - start).toBeGreaterThanOrEqual(n * 86_400_000 - 3_600_000);
          expect(businessDaysBetween(start, due, cal)).toBe(n);
        },
      ),
      { numRuns: 300 },
    );
  });
});
