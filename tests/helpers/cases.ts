// A collector app with the case store on a real SQLite file in a temp directory, a clock the test
// moves, and tokens for an agent per site, a support engineer and two customer contacts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { sampleReport } from '../../bench/collector-report.js';
import { buildApp } from '../../collector/app.js';
import { hashToken } from '../../collector/auth.js';
import { SqliteCaseStore } from '../../collector/cases/sqlite.js';
import { type RunningCollector, startCollector } from '../../collector/server.js';
import { SqliteStore } from '../../collector/store/sqlite.js';
import { CollectorConfig, parseCollectorConfig } from '../../src/config/collector.js';
import type { AgentReport } from '../../src/schemas.js';

export const TOKENS = {
  hqAgent: 'agent-token-hq-0123456789abcdef',
  branchAgent: 'agent-token-branch-0123456789ab',
  viewer: 'viewer-token-noc-0123456789abcd',
  support: 'support-token-care-0123456789ab',
  acme: 'customer-token-acme-0123456789a',
  globex: 'customer-token-globex-012345678',
};

export function caseConfig(over: Record<string, unknown> = {}) {
  return CollectorConfig.parse({
    collector: {
      readinessValidFor: '24h',
      rateLimit: { perSecond: 100, burst: 1000 },
      agents: [
        { name: 'hq-agent-1', site: 'hq', tokenHash: hashToken(TOKENS.hqAgent) },
        { name: 'branch-agent', site: 'branch', tokenHash: hashToken(TOKENS.branchAgent) },
      ],
      viewers: [{ name: 'noc', tokenHash: hashToken(TOKENS.viewer) }],
      support: [{ name: 'care', tokenHash: hashToken(TOKENS.support) }],
      customers: [
        { name: 'Acme', sites: ['hq'], tokenHash: hashToken(TOKENS.acme) },
        { name: 'Globex', sites: ['branch'], tokenHash: hashToken(TOKENS.globex) },
      ],
      cases: { timeZone: 'America/New_York', holidays: ['2026-12-25'] },
      sites: { branch: { timeZone: 'Europe/Berlin', holidays: ['2026-11-30'] } },
      ...over,
    },
  }).collector;
}

export interface CaseCtx {
  app: FastifyInstance;
  clock: { now: number };
  dir: string;
  store: SqliteStore;
  caseStore: SqliteCaseStore;
  close(): Promise<void>;
}

/** Opens (or reopens, given the same dir) a collector app with cases. */
export function openCaseApp(
  opts: { dir?: string; now?: number; config?: ReturnType<typeof caseConfig>; webhooks?: string[] } = {},
): CaseCtx {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'voipready-cases-'));
  const clock = { now: opts.now ?? Date.parse('2026-11-27T15:00:00Z') };
  const store = new SqliteStore(dir);
  const caseStore = new SqliteCaseStore(dir, opts.webhooks ?? []);
  const app = buildApp({ config: opts.config ?? caseConfig(), store, caseStore, now: () => clock.now });
  app.addHook('onClose', async () => {
    await caseStore.close();
    await store.close();
  });
  return { app, clock, dir, store, caseStore, close: () => app.close() };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export const auth = (token: string | null) => (token === null ? {} : { authorization: `Bearer ${token}` });

export async function call(
  app: FastifyInstance,
  method: 'GET' | 'POST',
  url: string,
  token: string | null,
  body?: unknown,
) {
  const res = await app.inject({
    method,
    url,
    headers: { ...auth(token), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  let json: Record<string, unknown> = {};
  try {
    json = res.json();
  } catch {}
  return { status: res.statusCode, json, body: res.body, headers: res.headers };
}

/** A report of `site` measured a minute before `nowMs`; `rewriteEf` makes the reverse path arrive CS0. */
export function siteReport(id: string, nowMs: number, site: 'hq' | 'branch', rewriteEf = false): AgentReport {
  return sampleReport({
    reportId: id,
    site,
    agent: site === 'hq' ? 'hq-agent-1' : 'branch-agent',
    createdAt: new Date(nowMs - 60_000).toISOString(),
    ...(rewriteEf ? { reverse: { dscpReceived: { '0': 500 } } } : {}),
  });
}

export async function postReport(ctx: CaseCtx, report: AgentReport) {
  const token = report.site === 'hq' ? TOKENS.hqAgent : TOKENS.branchAgent;
  const res = await call(ctx.app, 'POST', '/api/v1/reports', token, report);
  if (res.status !== 202) throw new Error(`report not stored: ${res.status} ${res.body}`);
  return res.json as { assessmentId: string; ready: boolean };
}

export const VOICE_CASE = {
  site: 'hq',
  type: 'Support',
  subType: 'Problem',
  environment: 'prod',
  priority: '3-Medium',
  subject: 'One-way audio on outbound calls',
  description: 'Since Monday agents hear silence on about 1 in 5 outbound calls.',
  businessImpact: '40 agents affected, outbound campaign delayed',
  agentsAffected: 40,
  product: 'PureConnect Telephony',
  version: '2025 R4 Patch 2',
  externalRef: 'ACME-4711',
  voice: true,
};

/** An API call over real HTTP to a listening collector. */
export async function fetchApi(baseUrl: string, method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/**
 * Whether uPlot (the report page's chart library) is installed: a page with charts (a real probe's
 * timeline) needs it; pages without charts render regardless.
 */
export const CHART_LIBRARY = (() => {
  try {
    createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js');
    return true;
  } catch {
    return false;
  }
})();

/** The attachments a frozen copy of one assessment makes: its JSON and its HTML report page. */
export function copiesOf(assessmentId: string) {
  return [
    { kind: 'assessment', assessmentId },
    { kind: 'report-html', assessmentId },
  ];
}

/** A complete cutover checklist for site hq (every item answered), cutting over at the given time. */
export function cutoverChecklist(cutoverAtMs: number, over: Record<string, unknown> = {}) {
  const verified = { answer: 'verified' };
  return {
    site: 'hq',
    kind: 'new-installation',
    technicianName: 'Dana Field',
    productLine: 'PureConnect',
    installationDate: new Date(cutoverAtMs - 7 * 86_400_000).toISOString().slice(0, 10),
    cutoverAt: new Date(cutoverAtMs).toISOString(),
    siteContact: { name: 'Sam Site', phone: '+1 555 0100', email: 'sam@acme.example' },
    vendorContact: { name: 'Vic Vendor', phone: '+1 555 0199' },
    checklist: {
      inHouseWiring: verified,
      networkConnectivity: verified,
      networkRights: verified,
      emailServerUsers: { answer: 'not-applicable', notes: 'no e-mail integration' },
      icInstallation: verified,
      icHandlerTesting: verified,
      icIntegrations: verified,
      siteConfiguration: { answer: 'verified', notes: 'call flows in the attached design <v2>' },
    },
    information: {
      customerAndSite: 'Acme, HQ',
      coLineConfiguration: '2 x PRI',
      currentProducts: 'none',
      plannedProducts: 'PureConnect 2025 R4',
      networkTopology: 'https://acme.example/topology.pdf',
      umPlatform: 'Interaction Voicemail',
    },
    ...over,
  };
}

/**
 * A real listening collector (data in DIR/data) with the hq agent, the support engineer, Acme, and a
 * webhook "tracker" to `url` signed with `secret` (retries at most 2 s apart; clocks looked at every
 * 200 ms). Started again on the same DIR it is the same collector after a restart.
 */
export async function startWebhookCollector(
  dir: string,
  url: string,
  secret: string,
): Promise<RunningCollector> {
  writeFileSync(join(dir, 'tracker.secret'), `${secret}\n`, { mode: 0o600 });
  const yaml = `collector:
  agents: [{ name: hq-agent-1, site: hq, tokenHash: "${hashToken(TOKENS.hqAgent)}" }]
  support: [{ name: care, tokenHash: "${hashToken(TOKENS.support)}" }]
  customers: [{ name: Acme, sites: [hq], tokenHash: "${hashToken(TOKENS.acme)}" }]
  cases:
    webhooks: [{ name: tracker, url: "${url}", secretFile: tracker.secret, retryMax: 2s }]
`;
  const parsed = parseCollectorConfig(yaml, join(dir, 'collector.yaml'));
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return startCollector({
    config: parsed.config,
    dataDir: join(dir, 'data'),
    host: '127.0.0.1',
    port: 0,
    casePollMs: 200,
  });
}
