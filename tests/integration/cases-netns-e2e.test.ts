// End to end with real parts: a real probe in network namespaces whose reverse path rewrites EF
// (nftables on the router, its counter the ground truth) posted to a real listening collector →
// a voice case opens withheld with the DSCP evidence; the rule removed → the next run passes →
// the case is released by itself with the new report attached; a real HTTP receiver that was down
// for a while gets every webhook once (signature verified, the duplicates dropped by key).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningCollector } from '../../collector/server.js';
import { REPORT_SCHEMA } from '../../src/schemas.js';
import {
  CHART_LIBRARY,
  copiesOf,
  fetchApi,
  startWebhookCollector,
  TOKENS,
  VOICE_CASE,
} from '../helpers/cases.js';
import {
  cliUnavailableReason,
  killAllCli,
  probeJson,
  type ReflectorProcess,
  realtimeWrapper,
  startReflector,
  warmUpReflector,
} from '../helpers/cli.js';
import {
  createTopology,
  DC_ADDR,
  netnsUnavailableReason,
  SITE_ADDR,
  type Topology,
} from '../helpers/netns.js';
import { freeLoopbackPort, waitUntil } from '../helpers/service.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

const unavailable = netnsUnavailableReason() ?? cliUnavailableReason();
const MEDIA_PORT = 5004;
const RTP = '@th,64,8 0x80';
const REVERSE_MEDIA = `ip saddr ${DC_ADDR} ip daddr ${SITE_ADDR} udp sport ${MEDIA_PORT} ${RTP}`;
const SECRET = 'webhook-secret-for-the-tracker-0123456789';

describe.skipIf(unavailable !== undefined)(
  `cases end to end over a namespace path ${unavailable ? `(skipped: ${unavailable})` : ''}`,
  () => {
    let topo: Topology;
    let reflector: ReflectorProcess;
    let collector: RunningCollector;
    let receiver: WebhookReceiver;
    let dir: string;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'vr-cases-e2e-'));
      topo = await createTopology();
      // Real-time priority where allowed, as in netns-probe: on a loaded machine a descheduled
      // reflector stamps late, which reads as jitter and could fail the passing run.
      reflector = await startReflector(`${DC_ADDR}:${MEDIA_PORT}`, {
        ns: topo.dc,
        wrapper: realtimeWrapper() ?? [],
      });
      await warmUpReflector(`${DC_ADDR}:${MEDIA_PORT}`, 2, { ns: topo.site });
      // The receiver's port is reserved but nothing listens yet: the tracker is down.
      receiver = new WebhookReceiver(await freeLoopbackPort(), SECRET);
      collector = await startWebhookCollector(dir, receiver.url, SECRET);
    });
    afterAll(async () => {
      await collector?.close();
      await receiver?.stop();
      await reflector?.stop();
      await killAllCli();
      await topo?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const api = (method: string, path: string, token: string, body?: unknown) =>
      fetchApi(collector.url, method, path, token, body);

    /** One real probe run from the site namespace, posted as the hq agent's report. */
    async function probeAndReport(reportId: string) {
      const { json } = await probeJson(`${DC_ADDR}:${MEDIA_PORT}`, {
        wrapper: realtimeWrapper() ?? [],
        ns: topo.site,
        calls: 2,
        durationS: 2,
        waitS: 1,
      });
      const report = {
        schema: REPORT_SCHEMA,
        reportId,
        site: 'hq',
        agent: 'hq-agent-1',
        createdAt: new Date().toISOString(),
        probes: [json],
      };
      const res = await api('POST', '/api/v1/reports', TOKENS.hqAgent, report);
      expect(res.status).toBe(202);
      const notPassing = json.checks
        .filter((c) => c.status !== 'pass')
        .map((c) => `${c.id} ${c.status}: ${c.evidence}`);
      return { ...(res.json as { assessmentId: string; ready: boolean }), notPassing };
    }

    it('withholds on the DSCP evidence, releases on the passing run, and the tracker gets every notice once', async () => {
      await topo.impair({
        counters: ['rev_ef_to_cs0'],
        forward: [`${REVERSE_MEDIA} ip dscp ef counter name "rev_ef_to_cs0" ip dscp set cs0`],
      });
      const failing = await probeAndReport('rep-e2e-ef-rewritten');
      const rewritten = (await topo.counters()).rev_ef_to_cs0!.packets;
      expect(rewritten).toBeGreaterThan(0);
      expect(failing.ready).toBe(false);

      const opened = await api('POST', '/api/v1/cases', TOKENS.acme, VOICE_CASE);
      expect(opened.status).toBe(201);
      expect(opened.json).toMatchObject({
        status: 'Awaiting Info',
        subStatus: 'Info required from the customer',
        withheld: true,
      });
      // The JSON copy always; its page too where the chart library is installed (CI: npm ci).
      const kinds = (opened.json.attachments as { kind: string; assessmentId: string }[]).filter(
        (a) => CHART_LIBRARY || a.kind === 'assessment',
      );
      expect(kinds).toEqual(
        CHART_LIBRARY ? copiesOf(failing.assessmentId) : copiesOf(failing.assessmentId).slice(0, 1),
      );
      const missing = opened.json.missingChecks as { id: string; status: string; evidence: string }[];
      const dscp = missing.find((m) => m.id === 'dscp-rtp');
      expect(dscp?.status).toBe('fail');
      // The evidence counts the rewritten replies: as many as the router's counter rewrote.
      expect(dscp?.evidence).toMatch(new RegExp(`CS0 \\(${rewritten} of \\d+\\)`));
      const caseId = opened.json.caseId as string;

      // The tracker is down: the notice waits in the outbox, retried with backoff.
      const cases = collector.app.collector.cases!;
      await waitUntil(
        'a failed delivery attempt',
        async () => (await cases.store.outboxDue(Date.now() + 60_000, 10)).some((i) => i.attempts > 0),
        20_000,
      );
      expect(await cases.store.outboxPending()).toBe(1);

      // The tracker comes back, swallowing its first answer: that notice arrives twice, counted once.
      receiver.dropAnswers = 1;
      await receiver.start();

      await topo.impair({ counters: [], forward: [] });
      // The path is clean now; on a machine shared with other test runs a single run can still see
      // scheduling jitter or a late reply, so up to three runs (each reported: a failing one keeps
      // the case withheld, which is checked too).
      let passing = await probeAndReport('rep-e2e-ef-kept-1');
      for (let run = 2; !passing.ready && run <= 3; run++) {
        const held = await api('GET', `/api/v1/cases/${caseId}`, TOKENS.support);
        expect(held.json).toMatchObject({ status: 'Awaiting Info', withheld: true });
        passing = await probeAndReport(`rep-e2e-ef-kept-${run}`);
      }
      expect(passing.ready, passing.notPassing.join('\n')).toBe(true);

      await waitUntil(
        'the release and its notices at the tracker',
        async () =>
          receiver.types(caseId).includes('report-attached') && (await cases.store.outboxPending()) === 0,
        30_000,
      );
      const shown = await api('GET', `/api/v1/cases/${caseId}`, TOKENS.support);
      expect(shown.json).toMatchObject({ status: 'Open', subStatus: 'Customer Responded', withheld: false });
      const attached = shown.json.attachments as {
        attachmentId: number;
        kind: string;
        assessmentId: string;
      }[];
      const copies = attached
        .filter((a) => CHART_LIBRARY || a.kind === 'assessment')
        .map(({ kind, assessmentId }) => ({ kind, assessmentId }));
      const expected = [...copiesOf(failing.assessmentId), ...copiesOf(passing.assessmentId)];
      expect(copies).toEqual(CHART_LIBRARY ? expected : expected.filter((a) => a.kind === 'assessment'));
      if (CHART_LIBRARY) {
        // The frozen page of the failing run: its verdict links the failing DSCP check.
        const page = await fetch(
          `${collector.url}/api/v1/cases/${caseId}/attachments/${attached[1]!.attachmentId}`,
          {
            headers: { authorization: `Bearer ${TOKENS.support}` },
          },
        );
        expect(page.headers.get('content-type')).toMatch(/^text\/html/);
        const text = await page.text();
        expect(text).toMatch(/^<!doctype html>/i);
        expect(text).toContain('#check-dscp-rtp');
      }
      expect(receiver.types(caseId)).toEqual(['case-opened', 'support-released', 'report-attached']);
      expect(receiver.duplicates).toBeGreaterThanOrEqual(1);
      expect(receiver.badSignatures).toBe(0);
      const opening = receiver.events[0]!.payload as {
        missingChecks: { id: string }[];
        case: { customer: string };
      };
      expect(opening.case.customer).toBe('Acme');
      expect(opening.missingChecks.map((m) => m.id)).toContain('dscp-rtp');
    });
  },
);
