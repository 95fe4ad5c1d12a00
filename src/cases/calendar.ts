// The business-day calendar the handbook's case clocks run on ("two (2) business days", "3 business
// days", "5 business days for cloud deployments or 7 business days for premise"): a site's own time
// zone, Saturday and Sunday off, plus configured holidays (local dates). Pure: Intl does the zone
// arithmetic, so daylight-saving changes come from the platform's tz database.

export interface BusinessCalendar {
  /** IANA time zone of the site, e.g. Europe/Berlin. */
  timeZone: string;
  /** Local dates (YYYY-MM-DD) that are not business days. */
  holidays: readonly string[];
}

interface LocalDateTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  ms: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Whether Intl knows this IANA zone name. */
export function isTimeZone(name: string): boolean {
  try {
    formatter(name);
    return true;
  } catch {
    return false;
  }
}

/** The wall-clock time in `timeZone` at the instant `ms`. */
export function localTime(ms: number, timeZone: string): LocalDateTime {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(ms))) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return {
    year: parts.year!,
    month: parts.month!,
    day: parts.day!,
    hour: parts.hour!,
    minute: parts.minute!,
    second: parts.second!,
    ms: ((ms % 1000) + 1000) % 1000,
  };
}

const asUtc = (t: LocalDateTime) => Date.UTC(t.year, t.month - 1, t.day, t.hour, t.minute, t.second, t.ms);

/**
 * The instant whose wall-clock time in `timeZone` is `t`. A time skipped by a daylight-saving jump
 * lands after the jump; a repeated one takes its first occurrence.
 */
export function fromLocalTime(t: LocalDateTime, timeZone: string): number {
  const wanted = asUtc(t);
  // The zone's offset at a guess, then at the corrected guess (the offset may differ across a change).
  let guess = wanted;
  for (let i = 0; i < 3; i++) {
    const offset = asUtc(localTime(guess, timeZone)) - guess;
    const next = wanted - offset;
    if (next === guess) break;
    guess = next;
  }
  const earlier = guess - 3_600_000;
  if (asUtc(localTime(earlier, timeZone)) === wanted) return earlier;
  return guess;
}

/** YYYY-MM-DD of a local date. */
export function localDate(t: Pick<LocalDateTime, 'year' | 'month' | 'day'>): string {
  return `${t.year}-${String(t.month).padStart(2, '0')}-${String(t.day).padStart(2, '0')}`;
}

/** The local date `n` days after the given one (calendar arithmetic on the date only). */
function shiftDate(t: LocalDateTime, days: number): LocalDateTime {
  const d = new Date(Date.UTC(t.year, t.month - 1, t.day + days));
  return { ...t, year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

function isBusinessDate(t: LocalDateTime, cal: BusinessCalendar): boolean {
  const weekday = new Date(Date.UTC(t.year, t.month - 1, t.day)).getUTCDay();
  return weekday !== 0 && weekday !== 6 && !cal.holidays.includes(localDate(t));
}

/** Whether the instant falls on a business day at the site. */
export function isBusinessDay(ms: number, cal: BusinessCalendar): boolean {
  return isBusinessDate(localTime(ms, cal.timeZone), cal);
}

/**
 * `n` business days after `startMs`: the same wall-clock time on the n-th business day after the
 * start's local date. A start on a weekend or holiday counts from 00:00 of the next business day
 * (Saturday 10:00 + 2 business days is Wednesday 00:00; Friday 17:00 + 2 is Tuesday 17:00).
 */
export function addBusinessDays(startMs: number, n: number, cal: BusinessCalendar): number {
  let t = localTime(startMs, cal.timeZone);
  if (!isBusinessDate(t, cal)) {
    t = { ...t, hour: 0, minute: 0, second: 0, ms: 0 };
    do t = shiftDate(t, 1);
    while (!isBusinessDate(t, cal));
  }
  for (let left = n; left > 0; ) {
    t = shiftDate(t, 1);
    if (isBusinessDate(t, cal)) left--;
  }
  return fromLocalTime(t, cal.timeZone);
}

/** Whole business days from `startMs` to `endMs` (how many addBusinessDays steps fit). */
export function businessDaysBetween(startMs: number, endMs: number, cal: BusinessCalendar): number {
  let n = 0;
  while (n < 3660 && addBusinessDays(startMs, n + 1, cal) <= endMs) n++;
  return n;
}
