// End to end: a real `voipready agent` in the site namespace probes a real reflector three routers
// away while router 2 rewrites EF to CS0 on the way in (nftables, its counter the ground truth);
// dscp-rtp fails, the agent traces the path by itself and attaches the trace to its report, and a
// real `voipready collector` (in the data-centre namespace) names the hop in the check's readiness
// evidence and on the site's report page.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGENT_SITE,
  agentCredentials,
  agentLog,
  agentYaml,
  collectorAgentsYaml,
} from '../helpers/agent-setup.js';
import {
  type CliProcess,
  cliUnavailableReason,
  killAllCli,
  type ReflectorProcess,
  startCli,
  startReflector,
} from '../helpers/cli.js';
import { netnsUnavailableReason, run } from '../helpers/netns.js';
import { type Chain, createChain } from '../helpers/netns-chain.js';

const unavailable = netnsUnavailableReason() ?? cliUnavailableReason();
const MEDIA_PORT = 5004;
const COLLECTOR_PORT = 8090;
const TABLE = 'trace_e2e';

/** GETs a collector URL from inside a namespace (the collector is not reachable from this one). */
async function getIn(ns: string, url: string): Promise<{ status: number; body: string }> {
  const script =
    'fetch(process.argv[1]).then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })))';
  const out = await run('ip', ['netns', 'exec', ns, process.execPath, '-e', script, url]);
  return JSON.parse(out) as { status: number; body: string };
}

describe.skipIf(unavailable !== undefined)(
  `agent traces a failing DSCP check by itself ${unavailable ? `(skipped: ${unavailable})` : ''}`,
  () => {
    let chain: Chain;
    let dir: string;
    let reflector: ReflectorProcess;
    let collector: CliProcess;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'voipready-trace-e2e-'));
      chain = await createChain(3);
      reflector = await startReflector(`${chain.dcAddr}:${MEDIA_PORT}`, { ns: chain.dc });
    });
    afterAll(async () => {
      await collector?.stop();
      await reflector?.stop();
      await killAllCli();
      await chain?.destroy();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('the collector names the hop where EF became CS0', async () => {
      const { token, tokenHash } = agentCredentials();
      await writeFile(
        join(dir, 'collector.yaml'),
        `collector:\n  reads: open\n${collectorAgentsYaml(tokenHash)}`,
      );
      collector = startCli(
        [
          'collector',
          '--config',
          join(dir, 'collector.yaml'),
          '--host',
          chain.dcAddr,
          '--port',
          String(COLLECTOR_PORT),
          '--data-dir',
          join(dir, 'collector'),
        ],
        { ns: chain.dc },
      );
      const collectorUrl = `http://${chain.dcAddr}:${COLLECTOR_PORT}`;
      const started = Date.now();
      while ((await getIn(chain.dc, `${collectorUrl}/healthz`).catch(() => undefined))?.status !== 200) {
        if (Date.now() - started > 30_000) throw new Error(`collector not up: ${collector.stderr()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      await chain.nft(
        2,
        `table ip ${TABLE} {\n counter rewritten {}\n chain forward { type filter hook forward priority 0; policy accept;\n  ip daddr ${chain.dcAddr} ip dscp ef counter name "rewritten" ip dscp set cs0\n }\n}\n`,
      );
      await writeFile(
        join(dir, 'agent.yaml'),
        agentYaml({
          collectorUrl,
          collectorAuth: `token: "${token}"`,
          queueDir: join(dir, 'queue'),
          reflector: { port: MEDIA_PORT, signallingPort: MEDIA_PORT + 1 },
          reflectorHost: chain.dcAddr,
          duration: '2s',
          interval: '1h',
        }),
      );
      const agent = startCli(['agent', '--config', join(dir, 'agent.yaml')], {
        ns: chain.site,
        timeoutMs: 120_000,
      });
      const lines = () => agentLog(agent.stderr());
      const deadline = Date.now() + 90_000;
      while (!lines().some((l) => l.event === 'report.delivered')) {
        if (Date.now() > deadline) throw new Error(`no report delivered: ${agent.stderr()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      expect((await agent.stop(15_000)).code).toBe(0);
      const traced = lines().find((l) => l.event === 'trace.done') as unknown as {
        check: string;
        firstChangeAtTtl: number;
      };
      expect(traced).toMatchObject({ check: 'dscp-rtp', firstChangeAtTtl: 3 });
      // Ground truth: router 2 rewrote the probe's EF (and the trace's probes past it).
      expect(await chain.counter(2, TABLE, 'rewritten')).toBeGreaterThan(0);

      const hop = `mark first changed at hop 3 (${chain.routerAddrs[2]}): EF → CS0, on the link after ${chain.routerAddrs[1]}`;
      const readiness = await getIn(chain.dc, `${collectorUrl}/api/v1/sites/${AGENT_SITE}/readiness`);
      expect(readiness.status).toBe(200);
      const checks = (
        JSON.parse(readiness.body) as { checks: { id: string; status: string; evidence: string }[] }
      ).checks;
      const rtp = checks.find((c) => c.id === 'dscp-rtp')!;
      expect(rtp.status).toBe('fail');
      expect(rtp.evidence).toContain(`path trace (forward): ${hop}`);
      const page = await getIn(chain.dc, `${collectorUrl}/sites/${AGENT_SITE}`);
      expect(page.status).toBe(200);
      expect(page.body).toContain(hop);
    }, 180_000);
  },
);
