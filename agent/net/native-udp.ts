// The native UDP layer (agent/native, a Node-API addon built on install): ordinary UDP sockets
// that mark DSCP (IP_TOS / IPV6_TCLASS), read the class of each datagram on arrival
// (IP_RECVTOS / IPV6_RECVTCLASS) and its kernel receive time (SO_TIMESTAMPNS), in batches
// (recvmmsg / sendmmsg), with no privilege. Datagrams and their metadata sit in typed arrays
// allocated here once and read in place; the addon fills them and calls back with a count.
// Scheduled sends (the probe's pacing): datagrams are written here ahead of time with the time each
// is due; the addon's sender thread sends each at that time and records when it did.
// Where the addon is unavailable (not Linux, not built, disabled) `loadNativeUdp` says why and the
// caller uses Node's dgram (and raw-socket) instead.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

/** Set to 0 to measure with Node's dgram even where the addon loads (tests of the fallback). */
export const NATIVE_UDP_ENV = 'VOIPREADY_NATIVE_UDP';

/**
 * How the sender thread is scheduled (agent/native/udp.cc TakeScheduling): `fifo` — SCHED_FIFO
 * (root, CAP_SYS_NICE, RLIMIT_RTPRIO ≥ 1); `short-slice` — an ordinary user's fair-scheduler thread
 * with a 0.1 ms slice (Linux ≥ 6.12), whose wake-ups preempt; `fair` — neither.
 */
export type SenderScheduling = 'fifo' | 'short-slice' | 'fair';

export interface NativeBinding {
  UdpSet: new (
    slots: number,
    rxData: Uint8Array,
    rxMeta: Float64Array,
    rxAddr: Uint8Array,
    txData: Uint8Array,
    txMeta: Float64Array,
    txAddr: Uint8Array,
    onReceive: (count: number) => void,
  ) => UdpSetHandle;
  nowMs(): number;
  SLOT_BYTES: number;
  RX_META: number;
  TX_META: number;
  ADDR_BYTES: number;
  SCHED_META: number;
}

interface UdpSetHandle {
  open(family: 4 | 6, host: string, port: number): number;
  connect(id: number, host: string, port: number): void;
  localPort(id: number): number;
  setTos(id: number, tos: number): void;
  send(count: number): number;
  close(id: number): void;
  startSender(data: Uint8Array, meta: Float64Array, entries: number): SenderScheduling;
  enqueue(count: number): void;
  sentCount(): number;
  stopSender(): void;
}

/** The addon's build output, found from this file in the source tree (agent/net) or dist/agent/net. */
function addonPath(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 5; up++) {
    const candidate = join(dir, 'agent', 'native', 'build', 'Release', 'voipready_udp.node');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}

let loaded: NativeBinding | string | undefined;

/** The addon, or why it cannot be used (then measure with dgram and say so). */
export function loadNativeUdp(): NativeBinding | string {
  if (process.env[NATIVE_UDP_ENV] === '0') return `disabled by ${NATIVE_UDP_ENV}=0`;
  if (process.platform !== 'linux') return `no native UDP sockets on ${process.platform}`;
  if (loaded === undefined) {
    const path = addonPath();
    if (!path) loaded = 'the native addon was not built (agent/native: npm ci builds it)';
    else {
      try {
        const b = require(path) as NativeBinding;
        // A build left from older sources lacks what this code calls: measure with dgram and say so.
        loaded =
          b.RX_META === 6 && b.SCHED_META === 6 && typeof b.UdpSet.prototype.startSender === 'function'
            ? b
            : 'the native addon was built from older sources (rebuild it: npm rebuild voipready-native)';
      } catch (err) {
        loaded = `the native addon cannot be loaded (${(err as Error).message.split('\n')[0]})`;
      }
    }
  }
  return loaded;
}

/** One line on stderr, once per process, when the fallback measures instead of the addon. */
let noticed = false;
export function noticeFallback(
  reason: string,
  write: (line: string) => void = (l) => process.stderr.write(l),
) {
  if (noticed) return;
  noticed = true;
  write(
    `voipready: native UDP sockets not used (${reason}); measuring with Node's dgram: arrival times taken in JavaScript, DSCP only with CAP_NET_RAW on IPv4\n`,
  );
}

/** Datagrams handed over per batch (and at most this many queued sends). */
const SLOTS = 64;

/**
 * A set of UDP sockets sharing one receive area and one send queue. `onBatch(count)` is called
 * from the event loop with datagrams 0..count-1 readable through the rx accessors until it returns.
 */
export class NativeUdp {
  readonly now: () => number;
  private readonly handle: UdpSetHandle;
  private readonly rxData: Buffer;
  private readonly rxMeta: Float64Array;
  private readonly rxAddr: Uint8Array;
  private readonly txData: Buffer;
  private readonly txMeta: Float64Array;
  private readonly txAddr: Uint8Array;
  private readonly slotBytes: number;
  private readonly rxStride: number;
  private readonly txStride: number;
  /** Per receive slot: views of its bytes by length (a few lengths recur), and its last address text. */
  private readonly views: Array<Map<number, Buffer>>;
  private readonly txViews: Buffer[];
  private readonly addrKeys: Uint8Array;
  private readonly addrText: string[];
  private queued = 0;
  private readonly schedStride: number;
  private sched: { data: Buffer; meta: Float64Array; entries: number } | undefined;
  /** Scheduled entries written, handed to the sender thread, and reported back (totals). */
  private schedWritten = 0;
  /** Where the next scheduled datagram goes in the data area. */
  private schedOffset = 0;
  private schedCommitted = 0;
  private schedCollected = 0;

  constructor(b: NativeBinding, onBatch: (count: number) => void) {
    this.schedStride = b.SCHED_META;
    this.slotBytes = b.SLOT_BYTES;
    this.rxStride = b.RX_META;
    this.txStride = b.TX_META;
    this.rxData = Buffer.alloc(SLOTS * b.SLOT_BYTES);
    this.rxMeta = new Float64Array(SLOTS * b.RX_META);
    this.rxAddr = new Uint8Array(SLOTS * b.ADDR_BYTES);
    this.txData = Buffer.alloc(SLOTS * b.SLOT_BYTES);
    this.txMeta = new Float64Array(SLOTS * b.TX_META);
    this.txAddr = new Uint8Array(SLOTS * b.ADDR_BYTES);
    this.views = Array.from({ length: SLOTS }, () => new Map());
    this.txViews = Array.from({ length: SLOTS }, (_, k) =>
      this.txData.subarray(k * b.SLOT_BYTES, (k + 1) * b.SLOT_BYTES),
    );
    this.addrKeys = new Uint8Array(SLOTS * 17);
    this.addrText = new Array(SLOTS).fill('');
    this.handle = new b.UdpSet(
      SLOTS,
      this.rxData,
      this.rxMeta,
      this.rxAddr,
      this.txData,
      this.txMeta,
      this.txAddr,
      (count) => {
        onBatch(count);
        // Replies name their receive slot (for their source address): send them before it is reused.
        this.flush();
      },
    );
    this.now = b.nowMs;
  }

  /** Binds a socket (port 0: any); throws an Error whose `code` is the errno name (EADDRINUSE …). */
  open(family: 4 | 6, host: string, port: number): number {
    return this.handle.open(family, host, port);
  }
  connect(id: number, host: string, port: number): void {
    this.handle.connect(id, host, port);
  }
  localPort(id: number): number {
    return this.handle.localPort(id);
  }
  close(id: number): void {
    this.handle.close(id);
  }

  rxSocket(k: number): number {
    return this.rxMeta[k * this.rxStride]!;
  }
  rxPort(k: number): number {
    return this.rxMeta[k * this.rxStride + 2]!;
  }
  /** The TOS / traffic class byte on arrival; -1 when the kernel did not say. */
  rxTos(k: number): number {
    return this.rxMeta[k * this.rxStride + 3]!;
  }
  /**
   * The receiving socket's datagrams dropped so far because its receive queue was full
   * (SO_RXQ_OVFL, counted since the socket opened); -1 when the kernel does not say.
   */
  rxDrops(k: number): number {
    return this.rxMeta[k * this.rxStride + 5]!;
  }
  /** Kernel receive time, wall-clock ms (the clock of `now`). */
  rxArrivalMs(k: number): number {
    return this.rxMeta[k * this.rxStride + 4]!;
  }
  /** The datagram (a view reused for later datagrams: copy to keep). */
  rxPayload(k: number): Buffer {
    const length = this.rxMeta[k * this.rxStride + 1]!;
    const views = this.views[k]!;
    let view = views.get(length);
    if (!view) {
      if (views.size >= 8) views.clear();
      const at = k * this.slotBytes;
      view = this.rxData.subarray(at, at + Math.min(length, this.slotBytes));
      views.set(length, view);
    }
    return view;
  }
  /** The source address as text (IPv4 dotted, IPv6 as Node writes it), rebuilt only when it changes. */
  rxAddress(k: number, family: 4 | 6): string {
    const at = k * 16;
    const key = k * 17;
    let same = this.addrKeys[key] === family;
    for (let j = 0; same && j < 16; j++) same = this.addrKeys[key + 1 + j] === this.rxAddr[at + j];
    if (!same) {
      this.addrKeys[key] = family;
      this.addrKeys.set(this.rxAddr.subarray(at, at + 16), key + 1);
      this.addrText[k] = addressText(this.rxAddr.subarray(at, at + 16), family);
    }
    return this.addrText[k]!;
  }

  /** The next send slot's buffer, to write a datagram into before `queue`. */
  txBuffer(): Buffer {
    if (this.queued === SLOTS) this.flush();
    return this.txViews[this.queued]!;
  }
  /**
   * Queues the datagram written into txBuffer(): on socket `id`, `length` bytes, to the source of
   * receive slot `replyTo` (or -1: the connected peer), with TOS `tos` (-1: the socket's own). A
   * reply on a socket bound to the wildcard address leaves from the address its datagram was sent to.
   */
  queue(id: number, length: number, tos: number, replyTo = -1, port = 0): void {
    const k = this.queued++;
    const m = k * this.txStride;
    this.txMeta[m] = id;
    this.txMeta[m + 1] = length;
    this.txMeta[m + 2] = replyTo >= 0 ? this.rxPort(replyTo) : port;
    this.txMeta[m + 3] = tos;
    this.txMeta[m + 4] = replyTo;
    if (replyTo >= 0) this.txAddr.set(this.rxAddr.subarray(replyTo * 16, replyTo * 16 + 16), k * 16);
    if (this.queued === SLOTS) this.flush();
  }
  /** Sends everything queued (sendmmsg per socket run); returns how many the kernel accepted. */
  flush(): number {
    if (this.queued === 0) return 0;
    const n = this.queued;
    this.queued = 0;
    return this.handle.send(n);
  }

  /**
   * Starts the sender thread with a ring of `entries` datagrams in `dataBytes` bytes. Returns
   * the scheduling the thread took (SenderScheduling).
   */
  startSender(entries: number, dataBytes: number): SenderScheduling {
    const data = Buffer.alloc(dataBytes);
    const meta = new Float64Array(entries * this.schedStride);
    const scheduling = this.handle.startSender(data, meta, entries);
    this.sched = { data, meta, entries };
    return scheduling;
  }
  /** Entries handed to the sender thread and not yet reported back by `collectSent`. */
  schedulePending(): number {
    return this.schedCommitted - this.schedCollected;
  }
  /**
   * Where a datagram of `bytes` goes in the data area (datagrams are laid end to end and never
   * wrap), or -1 when the ring has no room for it until more has been sent.
   */
  private placeFor(bytes: number): number {
    const s = this.sched!;
    if (this.schedWritten - this.schedCollected >= s.entries) return -1;
    if (this.schedWritten === this.schedCollected) return bytes <= s.data.length ? 0 : -1;
    const oldest = s.meta[(this.schedCollected % s.entries) * this.schedStride + 4]!;
    if (this.schedOffset >= oldest) {
      if (this.schedOffset + bytes <= s.data.length) return this.schedOffset;
      return bytes < oldest ? 0 : -1;
    }
    return this.schedOffset + bytes < oldest ? this.schedOffset : -1;
  }
  /** Whether `count` datagrams of `bytes` each fit in the ring now. */
  scheduleFits(count: number, bytes: number): boolean {
    const s = this.sched;
    if (!s || this.schedWritten - this.schedCollected + count > s.entries) return false;
    // Laid end to end, possibly after a wrap: room for count·bytes in one run is enough.
    return this.placeFor(count * bytes) >= 0;
  }
  /**
   * Copies `length` bytes of `datagram` into the ring, to be sent on (connected) socket `id` with
   * TOS `tos` (-1: the socket's) at `dueMs` (the clock of `now`). Returns its entry slot, or -1 when
   * there is no room (see scheduleFits).
   */
  schedule(id: number, datagram: Buffer, length: number, tos: number, dueMs: number): number {
    const s = this.sched!;
    const at = this.placeFor(length);
    if (at < 0) return -1;
    datagram.copy(s.data, at, 0, length);
    this.schedOffset = at + length;
    const slot = this.schedWritten++ % s.entries;
    const m = slot * this.schedStride;
    s.meta[m] = id;
    s.meta[m + 1] = length;
    s.meta[m + 2] = tos;
    s.meta[m + 3] = dueMs;
    s.meta[m + 4] = at;
    s.meta[m + 5] = Number.NaN;
    return slot;
  }
  /** Hands everything scheduled since the last commit to the sender thread. */
  commitScheduled(): void {
    const n = this.schedWritten - this.schedCommitted;
    if (n === 0) return;
    this.handle.enqueue(n);
    this.schedCommitted = this.schedWritten;
  }
  /**
   * Reports each entry the thread has handled since the last call, in order: its slot, due time
   * and the time it was handed to the kernel (-1: refused). Returns how many.
   */
  collectSent(onSent: (slot: number, dueMs: number, sentMs: number) => void): number {
    const s = this.sched;
    if (!s) return 0;
    const head = this.handle.sentCount();
    const n = head - this.schedCollected;
    for (; this.schedCollected < head; this.schedCollected++) {
      const slot = this.schedCollected % s.entries;
      const m = slot * this.schedStride;
      onSent(slot, s.meta[m + 3]!, s.meta[m + 5]!);
    }
    return n;
  }
  /** Stops the sender thread (what it has not sent yet is dropped). */
  stopSender(): void {
    if (this.sched) this.handle.stopSender();
  }
}

/** An address as Node writes it (libuv's inet_ntop: RFC 5952, embedded IPv4 for ::/96 and ::ffff:0:0/96). */
export function addressText(b: Uint8Array, family: 4 | 6): string {
  if (family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: string[] = [];
  for (let j = 0; j < 16; j += 2) groups.push(((b[j]! << 8) | b[j + 1]!).toString(16));
  // RFC 5952 §4.2: the first longest run of two or more zero groups becomes "::".
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  if (best === 0 && (bestLength === 6 || (bestLength === 5 && groups[5] === 'ffff'))) {
    return `::${bestLength === 5 ? 'ffff:' : ''}${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  return best < 0
    ? groups.join(':')
    : `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLength).join(':')}`;
}
