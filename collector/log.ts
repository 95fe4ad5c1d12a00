// The collector's log: JSON lines (time, level, msg, and an error's message) on a stream, in the
// shape of Fastify's logger interface. Fastify makes a child logger for every request; pino's
// children cost ~100 µs of CPU per request here, so children are this same object.
import type { FastifyBaseLogger } from 'fastify';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LEVELS)[number] | 'silent';

export function isLogLevel(text: string): text is LogLevel {
  return text === 'silent' || (LEVELS as readonly string[]).includes(text);
}

export function lineLogger(level: LogLevel, out: NodeJS.WritableStream): FastifyBaseLogger {
  const threshold = level === 'silent' ? LEVELS.length : LEVELS.indexOf(level);
  const write =
    (at: (typeof LEVELS)[number]) =>
    (first?: unknown, ...rest: unknown[]): void => {
      if (LEVELS.indexOf(at) < threshold) return;
      const fields = typeof first === 'object' && first !== null ? (first as Record<string, unknown>) : {};
      const msg = typeof first === 'string' ? first : typeof rest[0] === 'string' ? rest[0] : '';
      const err = fields.err instanceof Error ? fields.err : first instanceof Error ? first : undefined;
      const line: Record<string, unknown> = { time: new Date().toISOString(), level: at, msg };
      if (err) line.err = err.stack ?? err.message;
      out.write(`${JSON.stringify(line)}\n`);
    };
  const logger = {
    level,
    trace: write('trace'),
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    fatal: write('fatal'),
    silent: () => {},
    child: () => logger,
  };
  return logger as unknown as FastifyBaseLogger;
}
