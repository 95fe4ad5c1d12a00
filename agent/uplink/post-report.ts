// One delivery attempt of a queued report to the collector, classified by what the agent should do
// next. Network failures are outcomes, not exceptions.
import { parseRetryAfterMs } from './backoff.js';

export type SendOutcome =
  /** 2xx: stored, or a repeat of an id the collector already stored. Remove from the queue. */
  | { kind: 'acked'; status: number }
  /** Transient (network error, timeout, 408, 429, 5xx): keep the report and retry later. */
  | { kind: 'retry'; status: number | null; retryAfterMs?: number; reason: string }
  /**
   * 401/403: the collector does not accept this agent's token (or not for this site). That is the
   * agent's configuration, not the report: keep every report queued and try again slowly.
   */
  | { kind: 'unauthorized'; status: number; reason: string }
  /** Any other 4xx: retrying the same bytes cannot succeed. Move to dead-letter. */
  | { kind: 'rejected'; status: number; reason: string };

export interface UplinkTarget {
  /** Collector base URL, e.g. http://collector:8470 */
  url: string;
  token: string;
  timeoutMs: number;
}

export const REPORTS_PATH = '/api/v1/reports';

/** First line of an error body, short enough for one log line (zod paths from a 400 included). */
async function bodyExcerpt(res: Response): Promise<string> {
  const text = (await res.text().catch(() => '')).replace(/\s+/g, ' ').trim();
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** The reports endpoint under the collector's base URL, keeping a path prefix (a reverse proxy's). */
export function reportsUrl(base: string): string {
  return new URL(REPORTS_PATH.slice(1), base.endsWith('/') ? base : `${base}/`).toString();
}

export async function postReport(
  target: UplinkTarget,
  body: string,
  now: () => number = Date.now,
): Promise<SendOutcome> {
  let res: Response;
  try {
    res = await fetch(reportsUrl(target.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${target.token}` },
      body,
      signal: AbortSignal.timeout(target.timeoutMs),
    });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const reason =
      e.name === 'TimeoutError'
        ? `no answer within ${target.timeoutMs} ms`
        : (e.cause?.code ?? e.cause?.message ?? e.message);
    return { kind: 'retry', status: null, reason };
  }
  const status = res.status;
  if (status >= 200 && status < 300) {
    await res.body?.cancel();
    return { kind: 'acked', status };
  }
  const detail = await bodyExcerpt(res);
  const reason = `HTTP ${status}${detail ? `: ${detail}` : ''}`;
  if (status === 408 || status === 429 || status >= 500) {
    const retryAfterMs =
      status === 429 || status === 503 ? parseRetryAfterMs(res.headers.get('retry-after'), now()) : undefined;
    return retryAfterMs === undefined
      ? { kind: 'retry', status, reason }
      : { kind: 'retry', status, retryAfterMs, reason };
  }
  if (status === 401 || status === 403) return { kind: 'unauthorized', status, reason };
  return { kind: 'rejected', status, reason };
}
