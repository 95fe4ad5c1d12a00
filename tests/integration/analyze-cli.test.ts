// The real `voipready analyze` command, spawned: exit codes (0 ready, 1 not ready, 2 unreadable),
// the voipready.capture/1 JSON contract, stdin input, --policy, and one-line errors for bad input.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CaptureCall, CaptureResult, CaptureStream } from '../../src/schemas.js';
import { CLI_BIN, cliUnavailableReason, runCli } from '../helpers/cli.js';
import { frameFor, rtpPacket, sipInvite, udpPacket, writePcap, writePcapng } from '../helpers/pcap-writer.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'captures');
const unavailable = cliUnavailableReason();

function runWithStdin(
  args: string[],
  input: Buffer,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** A clean EF/CS3 G.711 call: ready. */
function readyCall(): Buffer {
  const frames = [
    {
      time: 1000,
      bytes: frameFor(
        1,
        udpPacket(
          { src: '192.0.2.1', dst: '192.0.2.2', srcPort: 5060, dstPort: 5060, dscp: 24 },
          sipInvite({
            callId: 'c1',
            from: 'sip:a@x',
            to: 'sip:b@y',
            mediaAddress: '192.0.2.1',
            mediaPort: 4000,
            payloadTypes: [0],
          }),
        ),
      ),
    },
  ];
  for (let n = 0; n < 100; n++)
    frames.push({
      time: 1000.1 + n * 0.02,
      bytes: frameFor(
        1,
        udpPacket(
          { src: '192.0.2.1', dst: '192.0.2.2', srcPort: 4000, dstPort: 4002, dscp: 46 },
          rtpPacket({ ssrc: 1, payloadType: 0, timestampStep: 160 }, n),
        ),
      ),
    });
  return writePcap(frames);
}

describe.skipIf(unavailable !== undefined)(`voipready analyze (CLI) ${unavailable ?? ''}`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'voipready-analyze-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exit 0 and a valid JSON document for a ready call; table without --json', async () => {
    const file = join(dir, 'ready.pcap');
    writeFileSync(file, readyCall());
    const r = await runCli(['analyze', '--json', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout);
    const doc = CaptureResult.parse(json);
    expect(doc.ready).toBe(true);
    expect(doc.calls[0]!.streams).toEqual(['s1']);
    // the schema names every key analyze emits (it is the one description of the document)
    expect(Object.keys(json)).toEqual(Object.keys(CaptureResult.shape));
    expect(Object.keys(json.calls[0])).toEqual(Object.keys(CaptureCall.shape));
    const streamKeys = Object.keys(CaptureStream.shape).filter((k) => k !== 'rtcp');
    expect(Object.keys(json.streams[0])).toEqual(streamKeys);
    const table = await runCli(['analyze', file]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(
      /s1\s+192\.0\.2\.1:4000 → 192\.0\.2\.2:4002\s+0x00000001\s+PCMU\s+100\s+0 \(0\.0%\)/,
    );
    expect(table.stdout).toMatch(/^READY/m);
  });

  it('exit 1 for a sample with real loss, and --policy can relax the rules', async () => {
    const file = join(FIXTURES, 'BelledonneCommunications__mediastreamer2/audio-80-75-0c60.pcapng');
    const r = await runCli(['analyze', '--json', file]);
    expect(r.code).toBe(1);
    const doc = CaptureResult.parse(JSON.parse(r.stdout));
    expect(doc.streams[0]).toMatchObject({ lost: 240, packets: 1737 });
    expect(doc.checks.find((c) => c.id === 'loss')!.status).toBe('fail');
    const policy = join(dir, 'relaxed.yaml');
    writeFileSync(policy, 'loss:\n  severity: warn\njitter:\n  maxMs: 50\n');
    const relaxed = await runCli(['analyze', '--json', '--policy', policy, file]);
    expect(relaxed.code).toBe(0);
    expect(CaptureResult.parse(JSON.parse(relaxed.stdout)).checks.find((c) => c.id === 'loss')!.status).toBe(
      'warn',
    );
  });

  it('reads a pcapng from stdin ("-")', async () => {
    const frames = [{ time: 1, bytes: readyCall().subarray(24 + 16) }];
    const ng = writePcapng(frames);
    const r = await runWithStdin(['analyze', '--json', '-'], ng);
    expect(r.code).toBe(1); // no audio stream in a lone SIP packet
    expect(CaptureResult.parse(JSON.parse(r.stdout))).toMatchObject({ format: 'pcapng', packets: 1 });
    const big = await runWithStdin(
      ['analyze', '--json', '-'],
      readFileSync(join(FIXTURES, 'NormB__sipnab/sip-rtp-g711.pcap')),
    );
    expect(CaptureResult.parse(JSON.parse(big.stdout)).streams).toHaveLength(2);
  });

  it('a truncated capture: warning, analysed up to the damage, exit by verdict', async () => {
    const r = await runCli([
      'analyze',
      '--json',
      join(FIXTURES, '_derived/sip-rtp-g711.cut-at-100000-bytes.pcap'),
    ]);
    expect(r.code).toBe(1);
    const doc = CaptureResult.parse(JSON.parse(r.stdout));
    expect(doc.packets).toBe(429);
    expect(doc.warnings[0]).toMatch(/cut short in the middle of packet 430/);
  });

  it('exit 2 with one line for what is no capture', async () => {
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'GET / HTTP/1.1\r\n\r\n');
    const empty = join(dir, 'empty.pcap');
    writeFileSync(empty, '');
    const cases: Array<[string[], RegExp]> = [
      [
        ['analyze', text],
        /^voipready analyze: .*notes\.txt: not a pcap or pcapng file \(starts with 'GET '\)\n$/,
      ],
      [['analyze', empty], /^voipready analyze: .*empty\.pcap: empty file, not a pcap or pcapng capture\n$/],
      [
        ['analyze', join(dir, 'missing.pcap')],
        /^voipready analyze: .*missing\.pcap: cannot open \(ENOENT\)\n$/,
      ],
      [['analyze', dir], /^voipready analyze: .*: is a directory\n$/],
      [
        ['analyze', join(FIXTURES, 'NormB__sipnab/c07-sip-r2.cap')],
        /not a pcap or pcapng file \(starts with 'GMBU'\)\n$/,
      ],
      // A valid pcap header, then nothing readable: damaged, not "NOT READY with every check unknown".
      [
        ['analyze', join(FIXTURES, 'aboutsip__pkts/cool.pcap')],
        /^voipready analyze: .*cool\.pcap: damaged pcap file: nothing readable after its header \(record 1 at byte 24 claims 587333632 bytes \(more than 262144\)\)\n$/,
      ],
      [['analyze'], /^voipready analyze: needs exactly one FILE/],
      [['analyze', '--policy', text, join(dir, 'x')], /^voipready analyze: policy file/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  }, 180_000); // nine CLI runs one after another: seconds each on a loaded 2-core machine
});
