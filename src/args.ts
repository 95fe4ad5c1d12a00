// Parsers for command-line values; each throws UserError naming the flag.
import { UserError } from './errors.js';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "30s", "2m", "500ms", "1h", or a bare number of seconds → milliseconds. */
export function parseDurationMs(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new UserError(`${flag} "${text}" is not a duration (e.g. 30s, 2m, 500ms)`);
  const ms = Number(m[1]) * DURATION_UNITS[m[2] ?? 's']!;
  if (!Number.isFinite(ms) || ms <= 0) throw new UserError(`${flag} must be greater than zero`);
  return ms;
}

export function parseIntFlag(text: string, flag: string, min: number, max: number): number {
  if (!/^\d+$/.test(text.trim())) throw new UserError(`${flag} "${text}" is not a whole number`);
  const n = Number(text);
  if (n < min || n > max) throw new UserError(`${flag} must be between ${min} and ${max}`);
  return n;
}

export interface HostPort {
  host: string;
  port: number;
}

/** "host:port", "[v6addr]:port" → { host, port }. allowPortZero: port 0 (listen on a free port). */
export function parseHostPort(
  text: string,
  flag: string,
  defaultPort?: number,
  allowPortZero = false,
): HostPort {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:]+)(?::(\d+))?$/.exec(text);
  if (!m?.[1]) throw new UserError(`${flag} "${text}" is not HOST:PORT`);
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port === undefined) throw new UserError(`${flag} "${text}" needs a port (HOST:PORT)`);
  const min = allowPortZero ? 0 : 1;
  if (!Number.isInteger(port) || port < min || port > 65535)
    throw new UserError(`${flag} port must be ${min}..65535`);
  return { host: m[1], port };
}
