// Shared set-up for tests and benches that run a real agent against a real collector and reflector:
// an agent token with its collector-side hash, the agent's YAML, an in-process collector with that
// agent configured, and the agent's JSON log lines.
import { createHash, randomBytes } from 'node:crypto';
import { type RunningCollector, startCollector } from '../../collector/server.js';
import { parseCollectorConfig } from '../../src/config/collector.js';

export const AGENT_NAME = 'agent-1';
export const AGENT_SITE = 'branch-01';

export interface AgentCredentials {
  token: string;
  /** What the collector's config holds: `sha256:<hex>`. */
  tokenHash: string;
}

export function agentCredentials(): AgentCredentials {
  const token = randomBytes(24).toString('hex');
  return { token, tokenHash: `sha256:${createHash('sha256').update(token).digest('hex')}` };
}

/** The collector's `agents:` entry for the test agent. */
export function collectorAgentsYaml(tokenHash: string): string {
  return `  agents:\n    - { name: ${AGENT_NAME}, site: ${AGENT_SITE}, tokenHash: "${tokenHash}" }\n`;
}

export interface AgentYamlOptions {
  collectorUrl: string;
  /** `token: "…"` or `tokenFile: …` plus any other collector keys, as YAML flow-map entries. */
  collectorAuth: string;
  queueDir: string;
  reflector: { port: number; signallingPort: number };
  /** The reflector's address (default 127.0.0.1). */
  reflectorHost?: string;
  duration: string;
  interval: string;
  /** More `agent:` keys (indented two spaces), e.g. a retry section. */
  extra?: string;
  /** The reflector's shared secret file. */
  secretFile?: string;
}

export function agentYaml(o: AgentYamlOptions): string {
  return `agent:
  name: ${AGENT_NAME}
  site: ${AGENT_SITE}
  collector: { url: "${o.collectorUrl}", ${o.collectorAuth} }
  queue: { dir: "${o.queueDir}" }
${o.extra ?? ''}  probes:
    - { peer: "${o.reflectorHost ?? '127.0.0.1'}:${o.reflector.port}", signallingPort: ${o.reflector.signallingPort}, duration: ${o.duration}, interval: ${o.interval}${o.secretFile ? `, secretFile: "${o.secretFile}"` : ''} }
`;
}

/**
 * A real collector in this process, on a free loopback port, accepting the test agent's token;
 * `extraYaml` adds keys under `collector:` (indented two spaces), e.g. a rate limit.
 */
export async function startCollectorFor(
  tokenHash: string,
  dataDir: string,
  extraYaml = '',
): Promise<RunningCollector> {
  const parsed = parseCollectorConfig(
    `collector:\n${extraYaml}${collectorAgentsYaml(tokenHash)}`,
    'collector.yaml',
  );
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return startCollector({ config: parsed.config, dataDir, host: '127.0.0.1', port: 0 });
}

export interface AgentLogLine {
  event: string;
  reportId?: string;
  code?: string;
}

/** The agent's JSON log lines (one object per stderr line). */
export function agentLog(stderr: string): AgentLogLine[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as AgentLogLine);
}
