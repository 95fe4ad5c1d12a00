// The agent's configuration file (YAML, validated with zod; unknown keys are errors, so a typo such
// as `intervall:` is reported instead of silently running with a default).
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { parseDurationMs } from '../args.js';
import { CODEC_NAMES, type CodecName } from '../codecs.js';
import { UserError } from '../errors.js';
import { parseRate } from '../priority.js';
import { PROBE_LATE_WAIT_MS, PROBE_SUMMARY_DEADLINE_MS, probeRunMaxMs } from '../probe-run.js';
import { Identifier } from '../schemas.js';
import { sipRunMaxMs } from '../sip/message.js';
import { MAX_SIP_REQUESTS } from '../sip/schema.js';
import { parseSipTarget } from '../sip/target.js';
import { HostConfig } from './host.js';

/** One problem in a configuration file: `${file}: ${path}: ${message}` when printed. */
export interface ConfigError {
  file: string;
  /** Dotted key path (e.g. `agent.probes.0.codec`), or `line:col` for YAML syntax errors. */
  path: string;
  message: string;
}

export type ConfigResult<T> = { ok: true; config: T } | { ok: false; errors: ConfigError[] };

/** "30s", "5m", "500ms" or a bare number of seconds, with the semantics of the CLI's duration flags. */
export const Duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return parseDurationMs(String(v), 'duration');
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message.replace(/^duration /, '') });
    return z.NEVER;
  }
});

/** "8mbit", "500kbit": the CLI's --load semantics (src/priority.ts parseRate). */
const Rate = z.string().transform((v, ctx) => {
  try {
    return parseRate(v, 'rate');
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message.replace(/^rate /, '') });
    return z.NEVER;
  }
});

const HostPort = z
  .string()
  .regex(/^(\[[^\]]+\]|[^:\s[\]]+):\d{1,5}$/, 'must be HOST:PORT (e.g. dc.example.net:4000)');

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

export const AgentProbeConfig = z
  .strictObject({
    /** The reflector, HOST:PORT. */
    peer: HostPort,
    signallingPort: z.number().int().min(1).max(65535).optional(),
    codec: z.enum(CODEC_NAMES as [CodecName, ...CodecName[]]).default('g711u'),
    /** Concurrent calls (the probe's own limit is 500). */
    calls: z.number().int().min(1).max(500).default(1),
    /** How long each probe run sends. */
    duration: Duration.default(10_000).refine((ms) => ms >= 20 && ms <= 3_600_000, {
      message: 'must be between 20ms (one packet) and 1h',
    }),
    /** Time between the starts of two runs of this probe. */
    interval: Duration.default(300_000),
    /** File holding the reflector's shared secret (relative to the config file). */
    secretFile: z.string().min(1).optional(),
    /**
     * The priority test (off unless present): best-effort twins and a load filling the path in the
     * middle third of each run; `load` fixes its rate, else stepped up to `maxLoad` (100mbit).
     */
    priorityTest: z
      .strictObject({ load: Rate.optional(), maxLoad: Rate.optional() })
      .refine((t) => t.load === undefined || t.maxLoad === undefined, {
        message: 'give load (a fixed rate) or maxLoad (the cap of a stepped one), not both',
      })
      .optional(),
  })
  .superRefine((p, ctx) => {
    if (p.priorityTest && p.duration < 3000) {
      ctx.addIssue({ code: 'custom', path: ['duration'], message: 'the priority test needs at least 3s' });
    }
    if (p.priorityTest && p.calls > 250) {
      ctx.addIssue({ code: 'custom', path: ['calls'], message: 'the priority test runs at most 250 calls' });
    }
    // A run lasts its duration plus the late-packet wait plus the summary requests (and the
    // priority test's load request); an interval shorter than that would overrun its slot.
    const runMs = probeRunMaxMs(p.duration) + (p.priorityTest ? PROBE_SUMMARY_DEADLINE_MS : 0);
    if (p.interval < runMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['interval'],
        message: `interval must be at least ${formatSeconds(runMs)}: a run takes the duration (${formatSeconds(p.duration)}) + ${formatSeconds(PROBE_LATE_WAIT_MS)} waiting for late packets + up to ${formatSeconds(PROBE_SUMMARY_DEADLINE_MS)} collecting the reflector's summaries`,
      });
    }
  });
export type AgentProbeConfig = z.infer<typeof AgentProbeConfig>;

/** A SIP server to ask with OPTIONS on a schedule (`voipready sip-ping`, docs/sip.md). */
export const AgentSipConfig = z
  .strictObject({
    /** sip:HOST[:PORT][;transport=udp|tcp|tls] */
    target: z
      .string()
      .max(512)
      .superRefine((v, ctx) => {
        try {
          parseSipTarget(v, 'target');
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message.replace(/^target:? /, '') });
        }
      }),
    /** Requests per run. */
    count: z.number().int().min(1).max(MAX_SIP_REQUESTS).default(5),
    /** Between the starts of two requests of a run. */
    requestInterval: Duration.default(1000),
    /** Between the starts of two runs. */
    interval: Duration.default(300_000),
    /** RFC 3261 T1 (retransmission start, Timer F = 64·T1); 500ms by default. */
    t1: Duration.optional(),
    /** Verify the TLS server's certificate. */
    tlsVerify: z.boolean().default(true),
  })
  .superRefine((s, ctx) => {
    const runMs = sipRunMaxMs(s.count, s.requestInterval, s.t1);
    if (s.interval < runMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['interval'],
        message: `a run can take ${runMs / 1000} s ((count - 1) × requestInterval + twice Timer F, 64·T1): interval must be at least that (runs never overlap)`,
      });
    }
  });
export type AgentSipConfig = z.infer<typeof AgentSipConfig>;

export const AgentConfig = z.strictObject({
  agent: z
    .strictObject({
      name: Identifier,
      site: Identifier,
      collector: z
        .strictObject({
          url: z.url({ protocol: /^https?$/ }),
          token: z.string().min(1).optional(),
          /** File holding the bearer token (relative to the config file); preferred over `token`. */
          tokenFile: z.string().min(1).optional(),
          /** Per-request timeout. */
          timeout: Duration.default(10_000),
        })
        .refine((c) => (c.token === undefined) !== (c.tokenFile === undefined), {
          message: 'give exactly one of token or tokenFile',
        }),
      queue: z.strictObject({
        dir: z.string().min(1),
        /** Bound on queued reports; when exceeded the oldest are dropped (logged). */
        maxReports: z.number().int().min(1).max(10_000_000).default(10_000),
        /** Bound on queued bytes; when exceeded the oldest are dropped (logged). */
        maxBytes: z
          .number()
          .int()
          .min(4096)
          .default(256 * 1024 * 1024),
      }),
      /** Retry backoff: exponential with full jitter, between initial and max. */
      retry: z
        .strictObject({ initial: Duration.default(1000), max: Duration.default(300_000) })
        .prefault({})
        .refine((r) => r.initial <= r.max, { message: 'initial must not be longer than max' }),
      probes: z
        .array(AgentProbeConfig)
        .max(64)
        .default([])
        .superRefine((probes, ctx) => {
          // Probes run one at a time (agent/service/scheduler.ts): together they must fit the clock.
          // (A probe that does not fit its own interval is reported on its own key.)
          if (probes.some((p) => p.interval < probeRunMaxMs(p.duration))) return;
          const busy = probes.reduce((sum, p) => sum + probeRunMaxMs(p.duration) / p.interval, 0);
          if (probes.length > 1 && busy > 1) {
            ctx.addIssue({
              code: 'custom',
              message: `the probes run one at a time and together need ${(busy * 100).toFixed(0)} % of the time (each run's duration + ${formatSeconds(PROBE_LATE_WAIT_MS + PROBE_SUMMARY_DEADLINE_MS)} per interval): lengthen intervals or shorten durations`,
            });
          }
        }),
      /** SIP servers asked with OPTIONS, each on its own interval, in the same loop as the probes. */
      sip: z.array(AgentSipConfig).max(64).optional(),
      /** Host health (src/config/host.ts), in the same loop; lazy: host.ts uses Duration from here. */
      host: z.lazy(() => HostConfig).optional(),
      /**
       * The DSCP path trace the agent runs by itself when a probe's DSCP check fails on the way
       * out (docs/trace.md): on by default, at most once per peer and check per `every`.
       */
      autoTrace: z
        .strictObject({ enabled: z.boolean().default(true), every: Duration.default(3_600_000) })
        .prefault({}),
    })
    .refine(
      (a) =>
        !Array.isArray(a.probes) || a.probes.length > 0 || (a.sip?.length ?? 0) > 0 || a.host !== undefined,
      {
        message: 'configure at least one probe, a sip entry or a host section',
        path: ['probes'],
        // Said beside the section's other problems, not only once they are fixed.
        when: (payload) => typeof payload.value === 'object' && payload.value !== null,
      },
    ),
});
export type AgentConfig = z.infer<typeof AgentConfig>;

/**
 * Parses YAML text and validates it with a zod schema; every problem comes back with the file and key
 * path (YAML syntax errors with line:col), none is thrown.
 */
export function parseYamlConfig<S extends z.ZodType>(
  text: string,
  file: string,
  schema: S,
): ConfigResult<z.infer<S>> {
  const lineCounter = new LineCounter();
  // logLevel silent: no process warnings on stderr; warnings (e.g. an unknown !tag) are errors here.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, logLevel: 'silent' });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    return {
      ok: false,
      errors: problems.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { file, path: `${pos.line}:${pos.col}`, message: e.message.split('\n')[0]! };
      }),
    };
  }
  let value: unknown;
  try {
    // Throws for aliases to missing anchors and for alias expansion bombs (maxAliasCount).
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, errors: [{ file, path: '(root)', message: (err as Error).message.split('\n')[0]! }] };
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, config: parsed.data };
  return {
    ok: false,
    errors: parsed.error.issues.map((i) => ({
      file,
      path: i.path.length ? i.path.join('.') : '(root)',
      message: i.message,
    })),
  };
}

/** Validates an agent config; relative paths (queue dir, tokenFile, secretFile) resolve against the file. */
export function parseAgentConfig(text: string, file: string): ConfigResult<AgentConfig> {
  const result = parseYamlConfig(text, file, AgentConfig);
  if (!result.ok) return result;
  const base = dirname(resolve(file));
  const a = result.config.agent;
  a.queue.dir = resolve(base, a.queue.dir);
  if (a.collector.tokenFile) a.collector.tokenFile = resolve(base, a.collector.tokenFile);
  for (const p of a.probes) if (p.secretFile) p.secretFile = resolve(base, p.secretFile);
  return result;
}

/** Reads a config file and validates it with `parse`; an unreadable file is a UserError naming it. */
export async function loadConfigFile<T>(
  file: string,
  parse: (text: string, file: string) => ConfigResult<T>,
): Promise<ConfigResult<T>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  return parse(text, file);
}

export function formatConfigError(e: ConfigError): string {
  return `${e.file}: ${e.path}: ${e.message}`;
}
