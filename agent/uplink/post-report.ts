// One delivery attempt of a queued report to the collector, classified by what the agent should do
// next. Network failures are outcomes, not exceptions.
import { parseRetryAfterMs } from './backoff.js';

export type SendOutcome =
  /** 2xx: stored, or a repeat of an id the collector already stored. Remove from the queue. */
  | { kind: 'acked'; status: number }
  /** Transient (network error, timeout, 408, 429, 5xx): keep the report and retry later. */
  | { kind: 'retry'; status: number | null; retryAfterMs?: number; reason: string }
  /**
   * The answer is about the agent's configuration or the path to the collector, not this report,
   * so every report would get the same: keep them all queued and try again slowly.
   * - `token` (401/403): the collector does not accept this agent's token (or not for this site).
   * - `redirect` (3xx): not followed — a redirected POST may turn into a GET whose 200 would delete
   *   an unstored report — so `agent.collector.url` (or a proxy in front) is wrong.
   * - `endpoint` (404/405/415): a wrong base path, or a proxy answering for a collector mid-deploy.
   */
  | { kind: 'held'; problem: HeldProblem; status: number; reason: string }
  /** Any other 4xx: retrying the same bytes cannot succeed. Move to dead-letter. */
  | { kind: 'rejected'; status: number; reason: string };

export type HeldProblem = 'token' | 'redirect' | 'endpoint';

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
      redirect: 'manual',
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
  if (status >= 300 && status < 400) {
    await res.body?.cancel();
    const location = res.headers.get('location');
    const reason = `HTTP ${status} redirect${location ? ` to ${location.slice(0, 200)}` : ''}`;
    return { kind: 'held', problem: 'redirect', status, reason };
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
  if (status === 401 || status === 403) return { kind: 'held', problem: 'token', status, reason };
  if (status === 404 || status === 405 || status === 415) {
    return { kind: 'held', problem: 'endpoint', status, reason };
  }
  return { kind: 'rejected', status, reason };
}
