/**
 * XXH64 (seed 0), streaming, in 32-bit halves: what a zstd frame's content checksum is made
 * of (its low 32 bits). fzstd decodes frames but does not check them, so a flipped bit inside a
 * compressed block would otherwise come out as plausible garbage instead of an error.
 *
 * A 64-bit value is a pair (hi, lo) of uint32s; the helpers leave their result in `R`, so the
 * hot loop allocates nothing.
 */
const P1H = 0x9e3779b1, P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d, P2L = 0x27d4eb4f;
const P3H = 0x165667b1, P3L = 0x9e3779f9;
const P4H = 0x85ebca77, P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f, P5L = 0x165667c5;
const TWO32 = 4294967296;

/** Results of the helpers below: [hi, lo]. A typed array, so storing them allocates nothing. */
const R = new Uint32Array(2);

/** (ah, al) * (bh, bl) mod 2^64 -> R[0], R[1]. */
function mul(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
  const mid = a0 * b1 + a1 * b0;  // < 2^33
  const low = a0 * b0 + (mid % 65536) * 65536;  // < 2^33
  const carry = Math.floor(low / TWO32);
  const hi = a1 * b1 + Math.floor(mid / 65536) + carry;
  R[1] = low >>> 0;
  R[0] = (hi + Math.imul(al, bh) + Math.imul(ah, bl)) >>> 0;
}

function add(ah: number, al: number, bh: number, bl: number): void {
  const lo = al + bl;
  R[1] = lo >>> 0;
  R[0] = (ah + bh + (lo >= TWO32 ? 1 : 0)) >>> 0;
}

function rotl(h: number, l: number, r: number): void {
  if (r >= 32) {
    const t = h;
    h = l;
    l = t;
    r -= 32;
  }
  if (r === 0) {
    R[0] = h;
    R[1] = l;
    return;
  }
  R[0] = ((h << r) | (l >>> (32 - r))) >>> 0;
  R[1] = ((l << r) | (h >>> (32 - r))) >>> 0;
}

/** acc = rotl(acc + lane * P2, 31) * P1 */
function round(ah: number, al: number, lh: number, ll: number): void {
  mul(lh, ll, P2H, P2L);
  add(ah, al, R[0], R[1]);
  rotl(R[0], R[1], 31);
  mul(R[0], R[1], P1H, P1L);
}

export class XXH64 {
  private readonly acc = new Uint32Array(8);  // v1..v4 as (hi, lo)
  private readonly tail = new Uint8Array(32);
  private tailLength = 0;
  private total = 0;

  constructor() {
    // v1 = P1 + P2, v2 = P2, v3 = 0, v4 = -P1
    add(P1H, P1L, P2H, P2L);
    this.acc.set([R[0], R[1], P2H, P2L, 0, 0]);
    add(~P1H >>> 0, ~P1L >>> 0, 0, 1);
    this.acc[6] = R[0];
    this.acc[7] = R[1];
  }

  update(data: Uint8Array): this {
    this.total += data.length;
    let at = 0;
    if (this.tailLength > 0) {
      const n = Math.min(32 - this.tailLength, data.length);
      this.tail.set(data.subarray(0, n), this.tailLength);
      this.tailLength += n;
      at = n;
      if (this.tailLength < 32) return this;
      this.stripes(this.tail, 0, 32);
      this.tailLength = 0;
    }
    const whole = at + Math.floor((data.length - at) / 32) * 32;
    this.stripes(data, at, whole);
    this.tail.set(data.subarray(whole), 0);
    this.tailLength = data.length - whole;
    return this;
  }

  private stripes(d: Uint8Array, from: number, to: number): void {
    const a = this.acc;
    let v1h = a[0], v1l = a[1], v2h = a[2], v2l = a[3], v3h = a[4], v3l = a[5], v4h = a[6], v4l = a[7];
    for (let p = from; p < to; p += 32) {
      round(v1h, v1l, le32(d, p + 4), le32(d, p)); v1h = R[0]; v1l = R[1];
      round(v2h, v2l, le32(d, p + 12), le32(d, p + 8)); v2h = R[0]; v2l = R[1];
      round(v3h, v3l, le32(d, p + 20), le32(d, p + 16)); v3h = R[0]; v3l = R[1];
      round(v4h, v4l, le32(d, p + 28), le32(d, p + 24)); v4h = R[0]; v4l = R[1];
    }
    a[0] = v1h; a[1] = v1l; a[2] = v2h; a[3] = v2l; a[4] = v3h; a[5] = v3l; a[6] = v4h; a[7] = v4l;
  }

  /** The digest as [hi, lo] uint32s. */
  digest(): [number, number] {
    const a = this.acc;
    let h: number, l: number;
    if (this.total >= 32) {
      rotl(a[0], a[1], 1); let sh = R[0], sl = R[1];
      rotl(a[2], a[3], 7); add(sh, sl, R[0], R[1]); sh = R[0]; sl = R[1];
      rotl(a[4], a[5], 12); add(sh, sl, R[0], R[1]); sh = R[0]; sl = R[1];
      rotl(a[6], a[7], 18); add(sh, sl, R[0], R[1]); h = R[0]; l = R[1];
      for (let i = 0; i < 8; i += 2) {
        round(0, 0, a[i], a[i + 1]);
        h = (h ^ R[0]) >>> 0; l = (l ^ R[1]) >>> 0;
        mul(h, l, P1H, P1L);
        add(R[0], R[1], P4H, P4L); h = R[0]; l = R[1];
      }
    } else {
      h = P5H; l = P5L;
    }
    add(h, l, Math.floor(this.total / TWO32), this.total >>> 0); h = R[0]; l = R[1];
    const t = this.tail;
    let p = 0;
    for (; p + 8 <= this.tailLength; p += 8) {
      round(0, 0, le32(t, p + 4), le32(t, p));
      h = (h ^ R[0]) >>> 0; l = (l ^ R[1]) >>> 0;
      rotl(h, l, 27);
      mul(R[0], R[1], P1H, P1L);
      add(R[0], R[1], P4H, P4L); h = R[0]; l = R[1];
    }
    if (p + 4 <= this.tailLength) {
      mul(0, le32(t, p), P1H, P1L);
      h = (h ^ R[0]) >>> 0; l = (l ^ R[1]) >>> 0;
      rotl(h, l, 23);
      mul(R[0], R[1], P2H, P2L);
      add(R[0], R[1], P3H, P3L); h = R[0]; l = R[1];
      p += 4;
    }
    for (; p < this.tailLength; p++) {
      mul(0, t[p], P5H, P5L);
      h = (h ^ R[0]) >>> 0; l = (l ^ R[1]) >>> 0;
      rotl(h, l, 11);
      mul(R[0], R[1], P1H, P1L); h = R[0]; l = R[1];
    }
    // avalanche: h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32
    l = (l ^ (h >>> 1)) >>> 0;
    mul(h, l, P2H, P2L); h = R[0]; l = R[1];
    const sl = ((h << 3) | (l >>> 29)) >>> 0;
    h = (h ^ (h >>> 29)) >>> 0;
    l = (l ^ sl) >>> 0;
    mul(h, l, P3H, P3L); h = R[0]; l = R[1];
    return [h, (l ^ h) >>> 0];
  }
}

function le32(d: Uint8Array, p: number): number {
  return (d[p] | (d[p + 1] << 8) | (d[p + 2] << 16) | (d[p + 3] << 24)) >>> 0;
}
