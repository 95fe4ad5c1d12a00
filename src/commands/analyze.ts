// `voipready analyze FILE [--json] [--policy F]`: judge a pcap/pcapng capture offline.
import { once } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { analyzeCapture, type CaptureResult } from '../capture/analyze.js';
import { fileSource } from '../capture/reader.js';
import type { Command } from '../cli.js';
import { UserError } from '../errors.js';
import { DEFAULT_POLICY, loadPolicy } from '../policy.js';
import { renderCaptureTable } from '../report/capture-table.js';

const USAGE = `Usage: voipready analyze FILE [--json] [--policy FILE]

Finds the SIP calls and RTP/RTCP streams in a pcap or pcapng capture (FILE, or - for stdin) and
judges them against the handbook policy: loss and jitter per RTP stream (as tshark -z rtp,streams
computes them), RTP marked EF (video: AF41), SIP marked CS3, and latency where RTCP gives a round trip.

Options:
  --json          print the voipready.capture/1 JSON document instead of tables
  --policy FILE   YAML/JSON policy overriding the handbook defaults

Exit codes: 0 ready (no judged check fails and audio was present), 1 not ready, 2 unreadable input.
A capture damaged part-way is analysed up to the damage, with a warning.`;

/** Text handed to write() at a time: large enough for few writes, small against the document. */
const CHUNK_CHARS = 64 * 1024;

/**
 * Exactly JSON.stringify(result, null, 2) and a newline, in pieces of about CHUNK_CHARS built a few
 * streams at a time: with thousands of streams the whole document as one string, and its UTF-8
 * copy on the way out, would be the run's largest allocation (≈ 9 MB each at 10,000 streams).
 */
export function* captureJsonChunks(result: CaptureResult): Generator<string> {
  const marker = '\u0000streams';
  const [head, tail] = JSON.stringify({ ...result, streams: marker }, null, 2).split(JSON.stringify(marker));
  let out = `${head}[`;
  for (let i = 0; i < result.streams.length; i++) {
    // A stream is an array element two levels deep: its lines are indented by 4 more spaces.
    out += `${i === 0 ? '' : ','}\n    ${JSON.stringify(result.streams[i], null, 2).replaceAll('\n', '\n    ')}`;
    if (out.length >= CHUNK_CHARS) {
      yield out;
      out = '';
    }
  }
  yield `${out}${result.streams.length === 0 ? '' : '\n  '}]${tail}\n`;
}

/**
 * The analyzer makes next to no garbage (nothing per packet) and its per-stream state lives until
 * the end, so a large young generation buys nothing: V8 grows it to 2 × 16 MiB anyway while the
 * state of thousands of streams survives its first collections. Keeping it at its first size takes
 * ≈ 25 MiB off the peak RSS at 10,000 streams (≈ 10 MiB at hundreds) at no measurable CPU cost
 * (docs/analyze.md, "Memory"). V8 reads this flag each time it would grow the space, so setting it
 * now takes effect; it only concerns this short-lived process.
 */
function keepYoungGenerationSmall(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

export const command: Command = {
  usage: USAGE,
  options: {
    json: { type: 'boolean' },
    policy: { type: 'string' },
  },
  positionals: true,
  async run(values, positionals, io) {
    if (positionals.length !== 1) throw new UserError('needs exactly one FILE (or - for stdin)');
    const file = positionals[0]!;
    const policy = typeof values.policy === 'string' ? loadPolicy(values.policy) : DEFAULT_POLICY;
    keepYoungGenerationSmall();
    const result = analyzeCapture(fileSource(file), file, { policy });
    if (values.json) {
      // Waiting for 'drain' keeps a slow reader (a pipe) from queueing the whole document in memory.
      for (const chunk of captureJsonChunks(result))
        if (!io.stdout.write(chunk)) await once(io.stdout, 'drain');
    } else io.stdout.write(`${renderCaptureTable(result)}\n`);
    return result.ready ? 0 : 1;
  },
};
