// The reference RTP analysis: capture with dumpcap inside a namespace, analyse with
// `tshark -z rtp,streams` (Wireshark's RTP stream analysis: per-stream packets, sequence loss and
// RFC 3550 jitter from the capture's own timestamps), and parse its table.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface Capture {
  readonly file: string;
  /** SIGINT, wait for dumpcap to flush and exit; returns its packet/drop summary. */
  stop(): Promise<CaptureSummary>;
}

export interface CaptureSummary {
  captured: number;
  /** Packets the kernel or dumpcap dropped: a capture with drops is not ground truth. */
  dropped: number;
}

/** Starts dumpcap on iface inside ns and resolves once it reports that it is capturing. */
export function startCapture(opts: {
  ns: string;
  iface: string;
  file: string;
  filter?: string;
}): Promise<Capture> {
  const child: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', opts.ns, 'dumpcap', '-i', opts.iface, '-f', opts.filter ?? 'udp', '-w', opts.file],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const stop = async (): Promise<CaptureSummary> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(kill);
    // "Packets received/dropped on interface 'eth0': 812/0 (pcap:0/dumpcap:0/flushed:0/ps_ifdrop:0)"
    const m =
      /received\/dropped on interface [^:]*: (\d+)\/(\d+) \(pcap:(\d+)\/dumpcap:(\d+)\/flushed:(\d+)/.exec(
        stderr,
      );
    if (!m) throw new Error(`dumpcap gave no capture summary: ${stderr.trim()}`);
    return {
      captured: Number(m[1]),
      dropped: Number(m[2]) + Number(m[3]) + Number(m[4]) + Number(m[5]),
    };
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop().catch(() => undefined);
      reject(new Error(`dumpcap did not start capturing within 10 s: ${stderr.trim()}`));
    }, 10_000);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (/Capturing on/.test(stderr)) {
        clearTimeout(timer);
        resolve({ file: opts.file, stop });
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`dumpcap exited before capturing: ${stderr.trim()}`));
    });
  });
}

/** One row of `tshark -z rtp,streams`. */
export interface RtpStreamRow {
  srcIp: string;
  srcPort: number;
  dstIp: string;
  dstPort: number;
  /** "0x0000abcd" as tshark prints it (8 hex digits, upper case). */
  ssrc: string;
  payload: string;
  packets: number;
  /** Expected (from the sequence range) minus received; tail losses are invisible to it. */
  lost: number;
  maxDeltaMs: number;
  meanJitterMs: number;
  maxJitterMs: number;
  problem: boolean;
}

/**
 * Parses the rows of tshark 4.0's `-z rtp,streams` table:
 * start end srcIp srcPort dstIp dstPort SSRC Payload... Pkts Lost (pct%) minΔ meanΔ maxΔ minJ meanJ maxJ [X]
 * The payload name may contain spaces, so the row is read from both ends.
 */
export function parseRtpStreams(text: string): RtpStreamRow[] {
  const rows: RtpStreamRow[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim().split(/\s+/);
    if (t.length < 17 || !/^0x[0-9A-Fa-f]{8}$/.test(t[6] ?? '')) continue;
    const problem = t[t.length - 1] === 'X';
    const tail = problem ? t.slice(0, -1) : t;
    const n = tail.length;
    const num = (i: number) => Number(tail[n - i]);
    rows.push({
      srcIp: t[2]!,
      srcPort: Number(t[3]),
      dstIp: t[4]!,
      dstPort: Number(t[5]),
      ssrc: t[6]!,
      payload: tail.slice(7, n - 9).join(' '),
      packets: num(9),
      lost: num(8),
      maxDeltaMs: num(4),
      meanJitterMs: num(2),
      maxJitterMs: num(1),
      problem,
    });
  }
  return rows;
}

/**
 * RTP is found heuristically (the capture has no SDP), and the heuristic runs before port-based
 * dissectors: a probe's random source port may be one Wireshark assigns to another protocol.
 */
const RTP_HEURISTICS = ['-o', 'rtp.heuristic_rtp:TRUE', '-o', 'udp.try_heuristic_first:TRUE'];

/** Runs `tshark -z rtp,streams` on a capture, with RTP found heuristically (no SDP in the capture). */
export async function rtpStreams(file: string): Promise<RtpStreamRow[]> {
  const { stdout } = await execFileP('tshark', ['-r', file, '-q', ...RTP_HEURISTICS, '-z', 'rtp,streams'], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return parseRtpStreams(stdout);
}

/** One RTP packet as the capture saw it. */
export interface RtpPacket {
  /** Capture timestamp, ms since the epoch. */
  timeMs: number;
  ssrc: number;
  sequence: number;
  timestamp: number;
}

/** Every RTP packet of a capture matching a display filter (e.g. "udp.dstport == 5004"), in capture order. */
export async function rtpPackets(file: string, displayFilter: string): Promise<RtpPacket[]> {
  const { stdout } = await execFileP(
    'tshark',
    [
      '-r',
      file,
      ...RTP_HEURISTICS,
      '-Y',
      `rtp && (${displayFilter})`,
      '-T',
      'fields',
      '-e',
      'frame.time_epoch',
      '-e',
      'rtp.ssrc',
      '-e',
      'rtp.seq',
      '-e',
      'rtp.timestamp',
    ],
    { maxBuffer: 256 * 1024 * 1024 },
  );
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [time, ssrc, seq, ts] = line.split('\t');
      return {
        timeMs: Number(time) * 1000,
        ssrc: Number(ssrc),
        sequence: Number(seq),
        timestamp: Number(ts),
      };
    });
}

/** One UDP datagram as the capture saw it. */
export interface UdpDatagram {
  /** Capture timestamp, ms since the epoch. */
  timeMs: number;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

/** Every UDP datagram of a capture matching a display filter, with its payload, in capture order. */
export async function udpDatagrams(file: string, displayFilter: string): Promise<UdpDatagram[]> {
  const { stdout } = await execFileP(
    'tshark',
    [
      '-r',
      file,
      '-Y',
      `udp && (${displayFilter})`,
      '-T',
      'fields',
      '-e',
      'frame.time_epoch',
      '-e',
      'udp.srcport',
      '-e',
      'udp.dstport',
      '-e',
      'udp.payload',
    ],
    { maxBuffer: 256 * 1024 * 1024 },
  );
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [time, src, dst, hex] = line.split('\t');
      return {
        timeMs: Number(time) * 1000,
        srcPort: Number(src),
        dstPort: Number(dst),
        payload: Buffer.from((hex ?? '').replaceAll(':', ''), 'hex'),
      };
    });
}
