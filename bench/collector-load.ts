// The load generator of bench/collector.ts, run as its own process so it does not share a core's
// event loop with the collector: autocannon's API with a setupRequest that gives every request a
// unique id (autocannon's own `-I` id replacement miscounts Content-Length). Usage:
//   node dist/bench/collector-load.js '{"url":..., "headers":{...}, "body":"...[<id>]...", "connections":32, "seconds":10}'
// Prints autocannon's result as JSON on stdout, with `cpuS`: the CPU time (user + system) this load
// generator spent while it ran, which shares the machine's cores with the collector.
import { createRequire } from 'node:module';

interface LoadSpec {
  url: string;
  headers: Record<string, string>;
  /**
   * Per request: `[<id>]` becomes a fresh id, `[<time>]` an ISO time and `[<ms>]` epoch milliseconds,
   * one millisecond apart per request (so InfluxDB points, keyed by series and time, stay distinct).
   */
  body: string;
  connections: number;
  seconds: number;
}

type Autocannon = (opts: Record<string, unknown>) => Promise<unknown>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
const prefix = `${process.pid.toString(36)}.${Date.now().toString(36)}`;
const baseMs = Date.now() - 3_600_000;
let n = 0;
const cpuBefore = process.cpuUsage();
const result = await autocannon({
  url: spec.url,
  connections: spec.connections,
  duration: spec.seconds,
  requests: [
    {
      method: 'POST',
      headers: spec.headers,
      setupRequest: (req: Record<string, unknown>) => {
        const i = n++;
        const ms = baseMs + i;
        const body = spec.body
          .replaceAll('[<id>]', `${prefix}.${i.toString(36)}`)
          .replaceAll('[<time>]', new Date(ms).toISOString())
          .replaceAll('[<ms>]', String(ms));
        return { ...req, body };
      },
    },
  ],
});
const cpu = process.cpuUsage(cpuBefore);
process.stdout.write(`${JSON.stringify({ ...(result as object), cpuS: (cpu.user + cpu.system) / 1e6 })}\n`);
