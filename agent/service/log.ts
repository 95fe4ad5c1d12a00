// The agent's log: one JSON object per line on stderr ({time, level, event, msg, ...fields}), so a
// service manager's journal keeps it and tools can filter on `event`.

export type Level = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Log = (level: Level, event: string, msg: string, fields?: Record<string, unknown>) => void;

export function jsonLog(
  out: NodeJS.WritableStream,
  minLevel: Level = 'info',
  now: () => number = Date.now,
): Log {
  return (level, event, msg, fields) => {
    if (LEVELS[level] < LEVELS[minLevel]) return;
    out.write(`${JSON.stringify({ time: new Date(now()).toISOString(), level, event, msg, ...fields })}\n`);
  };
}
