// A real Prometheus (Debian's `prometheus`) scraping given targets every second, on a temp TSDB
// directory and a free loopback port.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Service, startService } from './service.js';

export interface ScrapeTarget {
  job: string;
  /** host:port */
  target: string;
  /** Sent as `Authorization: Bearer <token>`. */
  bearerToken?: string;
}

export async function startPrometheus(targets: ScrapeTarget[]): Promise<Service> {
  return startService({
    name: 'prometheus',
    command(port, dir) {
      // targets of one job (several collectors) share its scrape config
      const byJob = new Map<string, ScrapeTarget[]>();
      for (const t of targets) byJob.set(t.job, [...(byJob.get(t.job) ?? []), t]);
      const jobs = [...byJob]
        .map(([job, ts]) => {
          const token = ts[0]!.bearerToken;
          const auth = token ? `\n    authorization:\n      type: Bearer\n      credentials: "${token}"` : '';
          const list = ts.map((t) => `"${t.target}"`).join(', ');
          return `  - job_name: "${job}"\n    scrape_interval: 1s\n    scrape_timeout: 900ms${auth}\n    static_configs:\n      - targets: [${list}]`;
        })
        .join('\n');
      const file = join(dir, 'prometheus.yml');
      writeFileSync(
        file,
        `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n${jobs}\n`,
      );
      return {
        binary: 'prometheus',
        args: [
          `--config.file=${file}`,
          `--storage.tsdb.path=${join(dir, 'tsdb')}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--log.level=warn',
        ],
      };
    },
    async ready(url) {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) });
      return res.status === 200;
    },
  });
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant query through the HTTP API (/api/v1/query). */
export async function promQuery(url: string, query: string): Promise<PromSample[]> {
  const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { result: PromSample[] } };
  if (body.status !== 'success') throw new Error(`PromQL ${query}: ${body.error ?? res.status}`);
  return body.data?.result ?? [];
}
