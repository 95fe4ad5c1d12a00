// An open-addressing hash table keyed by a packet's address/port tuple, read straight from the
// decoder's scratch words, so that finding a packet's flow allocates nothing.
import type { Decoded } from './decode.js';

const WORDS = 10; // version, src[4], dst[4], ports

export class FlowTable<T> {
  private capacity = 1024;
  private keys = new Uint32Array(this.capacity * WORDS);
  private values: (T | undefined)[] = new Array(this.capacity);
  size = 0;

  constructor(readonly maxSize: number) {}

  private static hash(p: Decoded): number {
    let h = 0x811c9dc5 ^ p.ipVersion;
    for (let i = 0; i < 4; i++) {
      h = Math.imul(h ^ p.src[i]!, 0x01000193);
      h = Math.imul(h ^ p.dst[i]!, 0x01000193);
    }
    h = Math.imul(h ^ ((p.srcPort << 16) | p.dstPort), 0x01000193);
    // 30 bits: a small integer, which a call returns without boxing it on the heap.
    return (h ^ (h >>> 15)) & 0x3fffffff;
  }

  private matches(slot: number, p: Decoded): boolean {
    const k = this.keys;
    const o = slot * WORDS;
    return (
      k[o] === p.ipVersion &&
      k[o + 1] === p.src[0] &&
      k[o + 5] === p.dst[0] &&
      k[o + 9] === ((p.srcPort << 16) | p.dstPort) >>> 0 &&
      k[o + 2] === p.src[1] &&
      k[o + 3] === p.src[2] &&
      k[o + 4] === p.src[3] &&
      k[o + 6] === p.dst[1] &&
      k[o + 7] === p.dst[2] &&
      k[o + 8] === p.dst[3]
    );
  }

  get(p: Decoded): T | undefined {
    const mask = this.capacity - 1;
    for (let slot = FlowTable.hash(p) & mask; ; slot = (slot + 1) & mask) {
      const v = this.values[slot];
      if (v === undefined) return undefined;
      if (this.matches(slot, p)) return v;
    }
  }

  /** Adds a flow for p (which must not be present); false when the table is full. */
  set(p: Decoded, value: T): boolean {
    if (this.size >= this.maxSize) return false;
    if ((this.size + 1) * 2 > this.capacity) this.grow();
    this.place(p.ipVersion, p.src, p.dst, ((p.srcPort << 16) | p.dstPort) >>> 0, value, FlowTable.hash(p));
    this.size++;
    return true;
  }

  private place(
    version: number,
    src: ArrayLike<number>,
    dst: ArrayLike<number>,
    ports: number,
    value: T,
    hash: number,
  ): void {
    const mask = this.capacity - 1;
    let slot = hash & mask;
    while (this.values[slot] !== undefined) slot = (slot + 1) & mask;
    const o = slot * WORDS;
    const k = this.keys;
    k[o] = version;
    for (let i = 0; i < 4; i++) {
      k[o + 1 + i] = src[i]!;
      k[o + 5 + i] = dst[i]!;
    }
    k[o + 9] = ports;
    this.values[slot] = value;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldValues = this.values;
    const oldCapacity = this.capacity;
    this.capacity *= 2;
    this.keys = new Uint32Array(this.capacity * WORDS);
    this.values = new Array(this.capacity);
    const probe = { ipVersion: 0, src: new Uint32Array(4), dst: new Uint32Array(4), srcPort: 0, dstPort: 0 };
    for (let slot = 0; slot < oldCapacity; slot++) {
      const v = oldValues[slot];
      if (v === undefined) continue;
      const o = slot * WORDS;
      probe.ipVersion = oldKeys[o]!;
      probe.src.set(oldKeys.subarray(o + 1, o + 5));
      probe.dst.set(oldKeys.subarray(o + 5, o + 9));
      probe.srcPort = oldKeys[o + 9]! >>> 16;
      probe.dstPort = oldKeys[o + 9]! & 0xffff;
      this.place(
        probe.ipVersion,
        probe.src,
        probe.dst,
        oldKeys[o + 9]!,
        v,
        FlowTable.hash(probe as unknown as Decoded),
      );
    }
  }

  *entries(): IterableIterator<T> {
    for (const v of this.values) if (v !== undefined) yield v;
  }
}
