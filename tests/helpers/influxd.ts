// A real InfluxDB 1.x (Debian's `influxdb`) on a temp directory and a free loopback port, with the
// usage reporting and every other listener off.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeLoopbackPort, type Service, startService } from './service.js';

export async function startInfluxd(opts: { port?: number } = {}): Promise<Service> {
  const rpcPort = await freeLoopbackPort();
  return startService({
    name: 'influxd',
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    command(port, dir) {
      const config = `reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"
[meta]
  dir = "${join(dir, 'meta')}"
[data]
  dir = "${join(dir, 'data')}"
  wal-dir = "${join(dir, 'wal')}"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:${port}"
  log-enabled = false
  pprof-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
[logging]
  level = "warn"
`;
      const file = join(dir, 'influxdb.conf');
      writeFileSync(file, config);
      return { binary: 'influxd', args: ['run', '-config', file] };
    },
    async ready(url) {
      const res = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(1000) });
      return res.status === 204;
    },
  });
}

/** Runs an InfluxQL query through the HTTP API and returns the rows of the first series. */
export async function influxQuery(
  url: string,
  database: string,
  q: string,
): Promise<{ columns: string[]; values: unknown[][] }[]> {
  const res = await fetch(`${url}/query?db=${encodeURIComponent(database)}&q=${encodeURIComponent(q)}`);
  if (!res.ok) throw new Error(`InfluxQL ${q}: HTTP ${res.status} ${await res.text()}`);
  const body = (await res.json()) as {
    results: { series?: { columns: string[]; values: unknown[][] }[]; error?: string }[];
  };
  const first = body.results[0];
  if (first?.error) throw new Error(`InfluxQL ${q}: ${first.error}`);
  return first?.series ?? [];
}
