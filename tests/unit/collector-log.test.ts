import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isLogLevel, lineLogger } from '../../collector/log.js';

function capture(level: Parameters<typeof lineLogger>[0]) {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => {
    text += d.toString();
  });
  return {
    log: lineLogger(level, out),
    lines: () =>
      text
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
  };
}

describe('collector log', () => {
  it('writes JSON lines at or above its level, with the error of Fastify-style calls', () => {
    const { log, lines } = capture('warn');
    log.info('not shown');
    log.warn('InfluxDB write failed');
    log.error({ err: new Error('boom') }, 'internal error');
    expect(lines()).toEqual([
      expect.objectContaining({ level: 'warn', msg: 'InfluxDB write failed' }),
      expect.objectContaining({
        level: 'error',
        msg: 'internal error',
        err: expect.stringMatching(/^Error: boom/),
      }),
    ]);
    expect(Date.parse(lines()[0].time)).not.toBeNaN();
  });

  it('hands out itself as the per-request child, and stays quiet when silent', () => {
    const { log, lines } = capture('silent');
    expect(log.child({ reqId: 1 })).toBe(log);
    log.fatal('nothing');
    expect(lines()).toEqual([]);
    expect(isLogLevel('warn')).toBe(true);
    expect(isLogLevel('loud')).toBe(false);
  });
});
