// DSCP code points and their names (RFC 2474 §3, RFC 3246 EF, RFC 4594 §3 service classes).

export const DSCP = {
  CS0: 0,
  CS1: 8,
  AF11: 10,
  AF12: 12,
  AF13: 14,
  CS2: 16,
  AF21: 18,
  AF22: 20,
  AF23: 22,
  CS3: 24,
  AF31: 26,
  AF32: 28,
  AF33: 30,
  CS4: 32,
  AF41: 34,
  AF42: 36,
  AF43: 38,
  CS5: 40,
  VA: 44,
  EF: 46,
  CS6: 48,
  CS7: 56,
} as const;

export type DscpName = keyof typeof DSCP;

const NAME_BY_VALUE = new Map<number, string>(Object.entries(DSCP).map(([name, value]) => [value, name]));

/** "EF", "CS3", or the bare number for an unnamed code point. */
export function dscpName(value: number): string {
  return NAME_BY_VALUE.get(value) ?? String(value);
}

/** Accepts a name ("EF", "cs3") or a number 0..63. */
export function parseDscp(text: string | number): number {
  if (typeof text === 'number' || /^\d+$/.test(text)) {
    const n = Number(text);
    if (Number.isInteger(n) && n >= 0 && n <= 63) return n;
    throw new RangeError(`DSCP ${text} is outside 0..63`);
  }
  const value = DSCP[text.toUpperCase() as DscpName];
  if (value === undefined) throw new RangeError(`unknown DSCP name "${text}"`);
  return value;
}

/** The TOS / traffic-class byte carries DSCP in its upper six bits (RFC 2474 §3). */
export const dscpFromTos = (tos: number): number => tos >> 2;
export const tosFromDscp = (dscp: number): number => (dscp << 2) & 0xfc;
