// The native socket layer on loopback (skipped, with the reason, where the addon is not built):
// marks set per datagram and read back on arrival (IPv4 TOS and IPv6 traffic class), kernel
// receive times on the layer's clock, sources, batches larger than one receive call, and the
// address text matching Node's own formatting.
import { SocketAddress } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { addressText, loadNativeUdp, type NativeBinding, NativeUdp } from '../../agent/net/native-udp.js';

const binding = loadNativeUdp();
const unavailable = typeof binding === 'string' ? binding : undefined;

describe('addressText', () => {
  it('writes IPv6 addresses exactly as Node does (fuzzed, zero groups likely)', () => {
    const group = fc.oneof(fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(
      fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (groups) => {
        const bytes = new Uint8Array(16);
        groups.forEach((g, i) => {
          bytes[2 * i] = g >> 8;
          bytes[2 * i + 1] = g & 0xff;
        });
        const full = groups.map((g) => g.toString(16)).join(':');
        expect(addressText(bytes, 6)).toBe(new SocketAddress({ address: full, family: 'ipv6' }).address);
      }),
      { numRuns: 2000 },
    );
  });
});

describe.skipIf(unavailable !== undefined)(
  `native UDP sockets ${unavailable ? `(skipped: ${unavailable})` : ''}`,
  () => {
    let close: (() => void) | undefined;
    afterEach(() => close?.());

    type Got = {
      payload: string;
      tos: number;
      arrivalMs: number;
      port: number;
      from: string;
      socket: number;
    };
    function pair(family: 4 | 6) {
      const got: Got[] = [];
      const host = family === 6 ? '::1' : '127.0.0.1';
      const udp: NativeUdp = new NativeUdp(binding as NativeBinding, (count) => {
        for (let k = 0; k < count; k++) {
          got.push({
            payload: udp.rxPayload(k).toString(),
            tos: udp.rxTos(k),
            arrivalMs: udp.rxArrivalMs(k),
            port: udp.rxPort(k),
            from: udp.rxAddress(k, family),
            socket: udp.rxSocket(k),
          });
        }
      });
      const a = udp.open(family, host, 0);
      const b = udp.open(family, host, 0);
      udp.connect(a, host, udp.localPort(b));
      close = () => {
        udp.close(a);
        udp.close(b);
      };
      return { udp, a, b, got, host };
    }

    for (const family of [4, 6] as const) {
      it(`IPv${family}: each datagram arrives with the class it was sent with, its source and a kernel time`, async () => {
        const { udp, a, b, got, host } = pair(family);
        const before = udp.now();
        const classes = [0xb8, 0x60, 0x00, 0x28]; // EF, CS3, CS0, AF11 (DSCP << 2)
        for (const [i, tos] of classes.entries()) {
          const text = `datagram ${i}`;
          udp.txBuffer().write(text);
          udp.queue(a, text.length, tos);
        }
        expect(udp.flush()).toBe(classes.length);
        await new Promise((r) => setTimeout(r, 100));
        const after = udp.now();
        expect(got.map((g) => g.payload)).toEqual(classes.map((_, i) => `datagram ${i}`));
        expect(got.map((g) => g.tos)).toEqual(classes);
        for (const g of got) {
          expect(g.socket).toBe(b);
          expect(g.port).toBe(udp.localPort(a));
          expect(g.from).toBe(host);
          expect(g.arrivalMs).toBeGreaterThanOrEqual(before);
          expect(g.arrivalMs).toBeLessThanOrEqual(after);
        }
      });
    }

    it('delivers a burst larger than one receive batch, in order, and replies to a datagram’s source', async () => {
      const { udp, a, b, got } = pair(4);
      for (let i = 0; i < 300; i++) {
        const text = `n${i}`;
        udp.txBuffer().write(text);
        udp.queue(a, text.length, -1);
      }
      udp.flush();
      await new Promise((r) => setTimeout(r, 200));
      expect(got.map((g) => g.payload)).toEqual(Array.from({ length: 300 }, (_, i) => `n${i}`));
      expect(got.every((g) => g.tos === 0)).toBe(true);
      got.length = 0;
      // Reply from b to the source of a received datagram (receive slot 0 of the next batch).
      udp.txBuffer().write('ping');
      udp.queue(a, 4, -1);
      udp.flush();
      await new Promise((r) => setTimeout(r, 100));
      expect(got).toHaveLength(1);
      udp.txBuffer().write('pong');
      udp.queue(b, 4, 0xb8, 0);
      udp.flush();
      await new Promise((r) => setTimeout(r, 100));
      expect(got.map((g) => [g.payload, g.socket, g.tos])).toEqual([
        ['ping', b, 0],
        ['pong', a, 0xb8],
      ]);
    });

    it('the sender thread sends each scheduled datagram at or after its due time, in order, marked, through ring wraps', async () => {
      const { udp, a, b, got } = pair(4);
      udp.startSender(8, 64);
      const received = async (n: number) => {
        for (let waited = 0; got.length < n && waited < 5000; waited += 20)
          await new Promise((r) => setTimeout(r, 20));
      };
      const sent: Array<{ slot: number; dueMs: number; sentMs: number }> = [];
      const collect = () => udp.collectSent((slot, dueMs, sentMs) => sent.push({ slot, dueMs, sentMs }));
      const start = udp.now() + 30;
      const total = 40;
      const scratch = Buffer.alloc(20);
      let next = 0;
      // Five times the ring's 8 entries (and 64 bytes: at most 5 datagrams of 12 bytes laid end to end).
      while (sent.length < total) {
        collect();
        while (next < total && udp.scheduleFits(1, 12)) {
          const length = scratch.write(`sched ${String(next).padStart(5, '0')}`);
          expect(
            udp.schedule(a, scratch, length, next % 2 ? 0xb8 : -1, start + next * 2),
          ).toBeGreaterThanOrEqual(0);
          next++;
        }
        if (next < total) expect(udp.scheduleFits(1, 12)).toBe(false);
        udp.commitScheduled();
        await new Promise((r) => setTimeout(r, 5));
      }
      await received(total);
      expect(udp.schedulePending()).toBe(0);
      expect(sent.map((s) => s.dueMs)).toEqual(Array.from({ length: total }, (_, i) => start + i * 2));
      for (const s of sent) expect(s.sentMs).toBeGreaterThanOrEqual(s.dueMs);
      const expected = Array.from({ length: total }, (_, i) => `sched ${String(i).padStart(5, '0')}`);
      expect(got.map((g) => g.payload)).toEqual(expected);
      expect(got.map((g) => g.tos)).toEqual(expected.map((_, i) => (i % 2 ? 0xb8 : 0)));
      expect(got.every((g) => g.socket === b)).toBe(true);
      // The kernel received each no earlier than the thread handed it over.
      got.forEach((g, i) => {
        expect(g.arrivalMs).toBeGreaterThanOrEqual(sent[i]!.sentMs);
      });
      udp.stopSender();
    });

    it('waking early by the timer’s learnt lateness, the thread still never sends before a due time', async () => {
      // 100 wake-ups: past the 64 the thread learns its wake-up lead from, so the lead is in use.
      const { udp, a, got } = pair(4);
      udp.startSender(256, 256 * 16);
      const scratch = Buffer.from('early?');
      const start = udp.now() + 30;
      // In pairs 0.1 ms apart: the second of a pair is due while the thread handles the first.
      for (let i = 0; i < 200; i++)
        udp.schedule(a, scratch, scratch.length, -1, start + Math.floor(i / 2) * 3 + (i % 2) * 0.1);
      udp.commitScheduled();
      const sent: Array<{ dueMs: number; sentMs: number }> = [];
      for (let waited = 0; sent.length < 200 && waited < 10_000; waited += 20) {
        await new Promise((r) => setTimeout(r, 20));
        udp.collectSent((_slot, dueMs, sentMs) => sent.push({ dueMs, sentMs }));
      }
      expect(sent).toHaveLength(200);
      for (const s of sent) expect(s.sentMs).toBeGreaterThanOrEqual(s.dueMs);
      for (let waited = 0; got.length < 200 && waited < 5000; waited += 20)
        await new Promise((r) => setTimeout(r, 20));
      expect(got).toHaveLength(200);
      udp.stopSender();
    });

    it('an idle thread wakes for a new entry, and stop wakes one sleeping until an entry an hour away', async () => {
      const { udp, a, got } = pair(4);
      udp.startSender(4, 256);
      await new Promise((r) => setTimeout(r, 100)); // idle: nothing enqueued
      const msg = Buffer.from('after idle');
      udp.schedule(a, msg, msg.length, -1, udp.now() + 5);
      udp.commitScheduled();
      for (let waited = 0; got.length < 1 && waited < 5000; waited += 20)
        await new Promise((r) => setTimeout(r, 20));
      expect(got.map((g) => g.payload)).toEqual(['after idle']);
      udp.schedule(a, msg, msg.length, -1, udp.now() + 3_600_000);
      udp.commitScheduled();
      await new Promise((r) => setTimeout(r, 50));
      const before = performance.now();
      udp.stopSender(); // joins the thread: a missed wake would hold this call for an hour
      expect(performance.now() - before).toBeLessThan(2000);
      expect(got).toHaveLength(1);
    });

    it('a scheduled datagram whose socket closed before its time is reported refused (-1)', async () => {
      const { udp, a, b } = pair(4);
      const c = udp.open(4, '127.0.0.1', 0);
      udp.connect(c, '127.0.0.1', udp.localPort(b));
      udp.startSender(4, 256);
      const msg = Buffer.from('late');
      udp.schedule(c, msg, 4, -1, udp.now() + 50);
      udp.schedule(a, msg, 4, -1, udp.now() + 60);
      udp.commitScheduled();
      udp.close(c);
      const sent: number[] = [];
      for (let waited = 0; sent.length < 2 && waited < 5000; waited += 20) {
        await new Promise((r) => setTimeout(r, 20));
        udp.collectSent((_slot, _due, sentMs) => sent.push(sentMs));
      }
      expect(sent[0]).toBe(-1);
      expect(sent[1]).toBeGreaterThan(0);
      udp.stopSender();
    });

    it('counts what overflowed a full receive queue (SO_RXQ_OVFL): received + dropped = sent', async () => {
      const drops: number[] = [];
      let received = 0;
      const udp: NativeUdp = new NativeUdp(binding as NativeBinding, (count) => {
        received += count;
        for (let k = 0; k < count; k++) drops.push(udp.rxDrops(k));
      });
      const a = udp.open(4, '127.0.0.1', 0);
      const b = udp.open(4, '127.0.0.1', 0);
      close = () => {
        udp.close(a);
        udp.close(b);
      };
      udp.connect(a, '127.0.0.1', udp.localPort(b));
      // Nothing is read while this loop runs: far more than b's receive queue holds (≤ 4 MiB).
      let sent = 0;
      for (let i = 0; i < 30_000; i++) {
        udp.txBuffer().fill(0x55, 0, 1400);
        udp.queue(a, 1400, -1);
        if ((i + 1) % 32 === 0) sent += udp.flush();
      }
      sent += udp.flush();
      const settle = async (until: () => boolean) => {
        for (let waited = 0; waited < 5000 && !until(); waited += 20)
          await new Promise((r) => setTimeout(r, 20));
      };
      await settle(() => received > 0 && drops.length === received);
      await new Promise((r) => setTimeout(r, 100));
      // The count rides on the next datagram queued after the drops: one more, now that b has read.
      udp.txBuffer().write('after');
      udp.queue(a, 5, -1);
      sent += udp.flush();
      await settle(() => received + drops.at(-1)! >= sent);
      const dropped = drops.at(-1)!;
      expect(drops.every((d) => d >= 0)).toBe(true);
      expect(dropped).toBeGreaterThan(0);
      expect(received + dropped).toBe(sent);
    });

    it('reports a port in use by its errno name', () => {
      const { udp, b } = pair(4);
      expect(() => udp.open(4, '127.0.0.1', udp.localPort(b))).toThrow(
        expect.objectContaining({ code: 'EADDRINUSE' }),
      );
    });
  },
);
