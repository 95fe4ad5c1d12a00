// `voipready analyze FILE [--json] [--policy F]`: judge a pcap/pcapng capture offline.
import { analyzeCapture } from '../capture/analyze.js';
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
    const result = analyzeCapture(fileSource(file), file, { policy });
    io.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : `${renderCaptureTable(result)}\n`);
    return result.ready ? 0 : 1;
  },
};
