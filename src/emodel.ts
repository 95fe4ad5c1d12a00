// ITU-T G.107 (06/2015) E-model with the default parameter values of its Table 1, reduced to the
// inputs a network measurement has: mouth-to-ear delay, packet loss and the codec's Ie/Bpl.
import type { Codec } from './codecs.js';

// Table 1 defaults: SLR 8, RLR 2, STMR 15, LSTR 18, Ds 3, Dr 3, TELR 65, WEPL 110, Ps 35, Pr 35,
// Nc -70, Nfor -64, qdu 1, A 0. With these, No = -61.18 dBm0p (§7.2.1 eq. 7-5), so
// Ro = 15 - 1.5 (SLR + No) = 94.77 (eq. 7-3) and Is = 1.41 (eq. 7-8 .. 7-16).
const RO = 94.77;
const IS = 1.41;
const TELR = 65;
const WEPL = 110;

/** §7.3 eq. 7-21..7-26: talker echo (Idte) and listener echo (Idle), T = Ta, Tr = 2T. */
function echoImpairments(tMs: number): number {
  const terv = TELR - 40 * Math.log10((1 + tMs / 10) / (1 + tMs / 150)) + 6 * Math.exp(-0.3 * tMs * tMs);
  const re = 80 + 2.5 * (terv - 14);
  const roe = RO; // -1.5 (No - 2) = Ro at default SLR/RLR
  const idte = ((roe - re) / 2 + Math.sqrt((roe - re) ** 2 / 4 + 100) - 1) * (1 - Math.exp(-tMs));
  const rle = 10.5 * (WEPL + 7) * (2 * tMs + 1) ** -0.25;
  const idle = (RO - rle) / 2 + Math.sqrt((RO - rle) ** 2 / 4 + 169);
  return idte + idle;
}

/** §7.3 eq. 7-27/7-28: impairment from absolute delay Ta (ms). */
function absoluteDelayImpairment(taMs: number): number {
  if (taMs <= 100) return 0;
  const x = Math.log10(taMs / 100) / Math.log10(2);
  return 25 * ((1 + x ** 6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2);
}

export interface EModelInput {
  codec: Codec;
  /** Mouth-to-ear delay Ta in ms (network one-way + packetisation + look-ahead + jitter buffer). */
  mouthToEarMs: number;
  lossPct: number;
  /** BurstR (§7.4): 1 for random loss, > 1 for bursty loss. */
  burstRatio?: number;
}

/** R-factor (§7.1 eq. 7-1 with A = 0). */
export function rFactor({ codec, mouthToEarMs, lossPct, burstRatio = 1 }: EModelInput): number {
  const ppl = Math.min(Math.max(lossPct, 0), 100);
  const ieEff = codec.ie + (95 - codec.ie) * (ppl / (ppl / burstRatio + codec.bpl)); // eq. 7-29
  const id = echoImpairments(mouthToEarMs) + absoluteDelayImpairment(mouthToEarMs);
  return RO - IS - id - ieEff;
}

/** Annex B eq. B-4: MOS (conversational quality, estimated) from R. */
export function mosFromR(r: number): number {
  if (r <= 0) return 1;
  if (r >= 100) return 4.5;
  return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6;
}

/**
 * Mouth-to-ear delay for a network one-way delay: packetisation (one frame), the codec's look-ahead,
 * and a de-jitter buffer of twice the measured jitter (a common adaptive-buffer depth).
 */
export function mouthToEarMs(codec: Codec, oneWayMs: number, jitterMs: number): number {
  return oneWayMs + codec.ptimeMs + codec.lookaheadMs + 2 * jitterMs;
}
