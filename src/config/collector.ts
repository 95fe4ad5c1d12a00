// The collector's configuration file (YAML under a top-level `collector:` key, validated with zod;
// unknown keys are errors). Agent configs have a top-level `agent:` key instead, which is how
// `voipready config check` tells the two apart.
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { isTimeZone } from '../cases/calendar.js';
import { Policy } from '../policy.js';
import { Identifier } from '../schemas.js';
import { type ConfigError, type ConfigResult, Duration, parseYamlConfig } from './agent.js';

export const DEFAULT_COLLECTOR_PORT = 8470;
export const DEFAULT_COLLECTOR_HOST = '127.0.0.1';

/** `sha256:<64 hex>`: the SHA-256 of a high-entropy token, as printed by `voipready collector --hash-token`. */
export const TokenHash = z
  .string()
  .regex(
    /^sha256:[0-9a-f]{64}$/,
    'must be "sha256:" and 64 lowercase hex digits (voipready collector --hash-token)',
  );

const AgentEntry = z.strictObject({
  name: Identifier,
  /** The one site this agent's token may report for; a report for another site gets 403. */
  site: Identifier,
  tokenHash: TokenHash,
});

const ViewerEntry = z.strictObject({
  name: Identifier,
  tokenHash: TokenHash,
});

/** A customer contact: its token sees and opens cases of its sites only. */
const CustomerEntry = z.strictObject({
  name: Identifier,
  sites: z.array(Identifier).min(1),
  tokenHash: TokenHash,
});

const LocalDate = z.iso.date('must be a date YYYY-MM-DD');
const TimeZone = z
  .string()
  .refine(isTimeZone, 'must be an IANA time zone name (e.g. Europe/Berlin, America/New_York)');

/** An outgoing webhook for an existing tracker: JSON, HMAC-SHA256 signed with the secret in secretFile. */
const WebhookEntry = z.strictObject({
  name: Identifier,
  url: z.url({ protocol: /^https?$/ }),
  /** File holding the shared secret (relative to the config file); at least 16 characters. */
  secretFile: z.string().min(1),
  /** Longest wait between retries while the receiver fails (exponential backoff with jitter). */
  retryMax: Duration.default(600_000),
});

/** Support cases: the business-day calendar of the handbook's clocks, and where notices go. */
const CasesConfig = z.strictObject({
  /** Time zone of sites that do not name their own. */
  timeZone: TimeZone.default('UTC'),
  /** Holidays of every site (local dates); sites add their own. */
  holidays: z.array(LocalDate).default([]),
  /** Base URL put in mail links to a case (e.g. https://collector.example.net). */
  publicUrl: z.url({ protocol: /^https?$/ }).optional(),
  webhooks: z.array(WebhookEntry).default([]),
});

const InfluxConfig = z.strictObject({
  /** Base URL of InfluxDB 1.x, e.g. http://127.0.0.1:8086. */
  url: z.url({ protocol: /^https?$/ }),
  database: z.string().min(1).max(64).default('voipready'),
  /** Retention policy written to; created (as the database default) when missing. */
  retentionPolicy: z.string().min(1).max(64).default('autogen'),
  /** Duration of a retention policy the collector creates, in InfluxQL form (e.g. 90d, INF). */
  retentionDuration: z
    .string()
    .regex(/^(INF|\d+[hdw])$/, 'must be INF or a number with h, d or w (e.g. 90d)')
    .default('INF'),
  username: z.string().optional(),
  password: z.string().optional(),
  /** Longest wait between retries while InfluxDB is unreachable (exponential backoff, full jitter). */
  retryMax: Duration.default(60_000),
  /** Points per write request when draining the outbox. */
  batchPoints: z.number().int().min(1).max(100_000).default(5000),
});
export type InfluxConfig = z.infer<typeof InfluxConfig>;

/**
 * Where reports, assessments and cases live: the embedded SQLite file in dataDir (default), or a
 * PostgreSQL database several collectors share (docs/collector.md, Store).
 */
const StoreConfig = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('sqlite') }),
  z.strictObject({
    kind: z.literal('postgres'),
    /** postgres://user@host:port/database (the password may come from PGPASSWORD). */
    url: z.url({ protocol: /^postgres(ql)?$/ }),
    /** Connections each collector opens for reports (cases use a quarter of it, at least 2). */
    poolSize: z.number().int().min(1).max(200).default(10),
    /** How long to wait for a connection or a query before answering 503. */
    timeout: Duration.default(10_000),
    /** How long a collector holds InfluxDB outbox rows, case timers and webhook targets it took:
     * a collector that dies holding them leaves them to the others after this. */
    claimFor: Duration.default(60_000),
  }),
]);
export type StoreConfig = z.infer<typeof StoreConfig>;
export type PostgresConfig = Extract<StoreConfig, { kind: 'postgres' }>;

export const CollectorConfig = z.strictObject({
  collector: z.strictObject({
    listen: z
      .strictObject({
        host: z.string().min(1).default(DEFAULT_COLLECTOR_HOST),
        port: z.number().int().min(0).max(65535).default(DEFAULT_COLLECTOR_PORT),
      })
      .prefault({}),
    /** Where the embedded SQLite store lives (relative to the config file). */
    dataDir: z.string().min(1).optional(),
    store: StoreConfig.default({ kind: 'sqlite' }),
    /**
     * SQLite durability before 202: `full` (default) fsyncs every commit, so an acknowledged report
     * survives power loss; `normal` commits to the WAL without fsync: it survives the collector
     * process crashing or being killed, not the machine losing power, and ingests faster.
     */
    synchronous: z.enum(['full', 'normal']).default('full'),
    /** `token` (default): reading sites/assessments needs a viewer token; `open`: anyone may read. */
    reads: z.enum(['token', 'open']).default('token'),
    /** Readiness expires this long after the evidence was measured: stale is not ready. */
    readinessValidFor: Duration.default(24 * 3_600_000),
    /** Largest accepted request body; larger gets 413. */
    bodyLimitBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(1024 * 1024),
    /** Per-token limit on report posts: a token bucket (429 with Retry-After when empty). */
    rateLimit: z
      .strictObject({
        perSecond: z.number().positive().default(10),
        burst: z.number().int().min(1).default(100),
      })
      .prefault({}),
    /** Reports and assessments that arrived longer ago than this are deleted (hourly), except each
     * site's latest assessment and its report; so is what InfluxDB refused. */
    retention: Duration.default(90 * 86_400_000),
    /** Open TCP connections: beyond `max` in all or `perAddress` from one address, a new one is
     * closed at once; a connection idle for `idleTimeout` is closed. */
    connections: z
      .strictObject({
        max: z.number().int().min(1).default(1024),
        perAddress: z.number().int().min(1).default(64),
        idleTimeout: Duration.default(60_000),
      })
      .prefault({}),
    agents: z.array(AgentEntry).default([]),
    viewers: z.array(ViewerEntry).default([]),
    /** Support engineers: every case. */
    support: z.array(ViewerEntry).default([]),
    /** Customer contacts: their sites' cases only. */
    customers: z.array(CustomerEntry).default([]),
    cases: CasesConfig.prefault({}),
    /**
     * Per-site policy (same keys as a `--policy` file; sites not listed use the handbook defaults),
     * and the site's calendar for the case clocks.
     */
    sites: z
      .record(
        Identifier,
        z.strictObject({
          policy: Policy.prefault({}),
          timeZone: TimeZone.optional(),
          holidays: z.array(LocalDate).default([]),
        }),
      )
      .default({}),
    influxdb: InfluxConfig.optional(),
  }),
});
export type CollectorConfig = z.infer<typeof CollectorConfig>['collector'];

/** Validates a collector config; every problem comes back with file, key path and message. */
export function parseCollectorConfig(text: string, fileName: string): ConfigResult<CollectorConfig> {
  const result = parseYamlConfig(text, fileName, CollectorConfig);
  if (!result.ok) return result;
  const c = result.config.collector;
  const errors: ConfigError[] = [];
  const seen = new Map<string, string>();
  for (const [kind, list] of [
    ['agents', c.agents],
    ['viewers', c.viewers],
    ['support', c.support],
    ['customers', c.customers],
  ] as const) {
    list.forEach((entry, i) => {
      const other = seen.get(entry.tokenHash);
      if (other) {
        errors.push({
          file: fileName,
          path: `collector.${kind}.${i}.tokenHash`,
          message: `same token as ${other}: every agent, viewer, support engineer and customer needs its own token`,
        });
      }
      seen.set(entry.tokenHash, `collector.${kind}.${i}`);
    });
  }
  // A report's `agent` must be its token's name, and the rate limit is per agent name.
  const agentNames = new Map<string, number>();
  c.agents.forEach((a, i) => {
    const first = agentNames.get(a.name);
    if (first !== undefined) {
      errors.push({
        file: fileName,
        path: `collector.agents.${i}.name`,
        message: `same name as collector.agents.${first}: every agent needs its own name`,
      });
    } else agentNames.set(a.name, i);
  });
  if (errors.length > 0) return { ok: false, errors };
  if (c.dataDir) c.dataDir = resolve(dirname(resolve(fileName)), c.dataDir);
  for (const w of c.cases.webhooks) w.secretFile = resolve(dirname(resolve(fileName)), w.secretFile);
  return { ok: true, config: c };
}

/**
 * Default data directory: /var/lib/voipready when run as root (a service), else
 * $XDG_DATA_HOME/voipready, else ~/.local/share/voipready.
 */
export function defaultDataDir(env: NodeJS.ProcessEnv, isRoot: boolean): string {
  if (isRoot) return '/var/lib/voipready';
  const xdg = env.XDG_DATA_HOME;
  if (xdg?.startsWith('/')) return join(xdg, 'voipready');
  return join(env.HOME || homedir(), '.local', 'share', 'voipready');
}
