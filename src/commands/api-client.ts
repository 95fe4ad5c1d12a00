// A small client for the collector's API, shared by `voipready case` and `voipready cutover`:
// where the collector is (--collector, $VOIPREADY_COLLECTOR), whose token (--token-file,
// $VOIPREADY_TOKEN), and every failure as one line (a 4xx names the collector's reason).
import { readFileSync } from 'node:fs';
import type { Io, Options, Values } from '../cli.js';
import { DEFAULT_COLLECTOR_HOST, DEFAULT_COLLECTOR_PORT } from '../config/collector.js';
import { UserError } from '../errors.js';

export const CLIENT_OPTIONS: Options = {
  collector: { type: 'string' },
  'token-file': { type: 'string' },
  json: { type: 'boolean' },
};

export const CLIENT_USAGE = `Connection:
  --collector URL    the collector (default: $VOIPREADY_COLLECTOR, else http://${DEFAULT_COLLECTOR_HOST}:${DEFAULT_COLLECTOR_PORT})
  --token-file FILE  file with a support or customer token (default: $VOIPREADY_TOKEN holds the token)
  --json             print the collector's JSON answer instead of text`;

export interface ApiClient {
  call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Record<string, unknown>>;
}

export function apiClient(values: Values, io: Io): ApiClient {
  const base = (
    (values.collector as string | undefined) ??
    io.env.VOIPREADY_COLLECTOR ??
    `http://${DEFAULT_COLLECTOR_HOST}:${DEFAULT_COLLECTOR_PORT}`
  ).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/\s]+$/.test(base))
    throw new UserError(`--collector "${base}" is not an http(s)://host:port URL`);
  let token = io.env.VOIPREADY_TOKEN;
  const file = values['token-file'] as string | undefined;
  if (file !== undefined) {
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new UserError(`cannot read --token-file ${file}: ${(err as NodeJS.ErrnoException).code}`);
    }
  }
  if (!token) throw new UserError('no token: give --token-file FILE or set VOIPREADY_TOKEN');
  return {
    async call(method, path, body) {
      let res: Response;
      try {
        res = await fetch(`${base}${path}`, {
          method,
          redirect: 'manual',
          signal: AbortSignal.timeout(30_000),
          headers: {
            authorization: `Bearer ${token}`,
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
      } catch (err) {
        const e = err as Error & { cause?: { code?: string } };
        throw new UserError(`cannot reach the collector at ${base}: ${e.cause?.code ?? e.message}`);
      }
      const text = await res.text();
      let json: Record<string, unknown> | undefined;
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {}
      if (!res.ok) {
        const why =
          json && typeof json.message === 'string' ? json.message : text.slice(0, 200) || res.statusText;
        throw new UserError(`${method} ${path}: ${res.status} ${why.split('\n')[0]}`);
      }
      if (!json) throw new UserError(`${method} ${path}: the collector answered ${res.status} without JSON`);
      return json;
    },
  };
}

/** The first positional (a sub-command's operand), or a usage error naming it. */
export function operand(positionals: string[], index: number, what: string): string {
  const v = positionals[index];
  if (v === undefined) throw new UserError(`missing ${what}`);
  return v;
}

export function printJson(io: Io, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
