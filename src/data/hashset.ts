/**
 * Compact sets for corpus preparation, whose size grows with the number of documents but not
 * with their text: 128-bit digests for exact deduplication (24-32 bytes a document) and bits
 * per document (duplicate? validation?). Both can be rolled back to an earlier mark, so a file
 * that fails half way through leaves no trace.
 */

/** A set of 128-bit keys (the first 16 bytes of a SHA-256), open addressing over an append-only key log. */
export class DigestSet {
  private keys = new Uint32Array(4 * 1024);
  private table = new Int32Array(2048);  // entry index + 1; 0 = empty
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.keys.byteLength + this.table.byteLength;
  }

  /** Adds the key; returns false if it was there already. */
  add(digest: Uint8Array): boolean {
    const k0 = word(digest, 0), k1 = word(digest, 4), k2 = word(digest, 8), k3 = word(digest, 12);
    const mask = this.table.length - 1;
    let slot = k0 & mask;
    for (;;) {
      const e = this.table[slot];
      if (e === 0) break;
      const at = 4 * (e - 1);
      if (this.keys[at] === k0 && this.keys[at + 1] === k1 && this.keys[at + 2] === k2 && this.keys[at + 3] === k3) return false;
      slot = (slot + 1) & mask;
    }
    if (4 * (this.count + 1) > this.keys.length) {
      const bigger = new Uint32Array(this.keys.length * 2);
      bigger.set(this.keys);
      this.keys = bigger;
    }
    const at = 4 * this.count;
    this.keys[at] = k0;
    this.keys[at + 1] = k1;
    this.keys[at + 2] = k2;
    this.keys[at + 3] = k3;
    this.count++;
    this.table[slot] = this.count;
    if (2 * this.count > this.table.length) this.rebuild(this.table.length * 2);
    return true;
  }

  /** A point to roll back to. */
  mark(): number {
    return this.count;
  }

  /** Forgets every key added after `mark`. */
  rollback(mark: number): void {
    if (mark >= this.count) return;
    this.count = mark;
    this.rebuild(this.table.length);
  }

  private rebuild(size: number): void {
    this.table = new Int32Array(size);
    const mask = size - 1;
    for (let e = 0; e < this.count; e++) {
      let slot = this.keys[4 * e] & mask;
      while (this.table[slot] !== 0) slot = (slot + 1) & mask;
      this.table[slot] = e + 1;
    }
  }
}

function word(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

/** A growable bit array. */
export class Bits {
  private data = new Uint8Array(1024);
  private n = 0;

  get length(): number {
    return this.n;
  }

  get bytes(): number {
    return this.data.byteLength;
  }

  push(bit: boolean): void {
    if (this.n >> 3 >= this.data.length) {
      const bigger = new Uint8Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    const byte = this.n >> 3, mask = 1 << (this.n & 7);
    if (bit) this.data[byte] |= mask;
    else this.data[byte] &= ~mask;
    this.n++;
  }

  get(i: number): boolean {
    if (i < 0 || i >= this.n) throw new RangeError(`Bits.get: ${i} is outside 0..${this.n - 1}`);
    return (this.data[i >> 3] & (1 << (i & 7))) !== 0;
  }

  truncate(length: number): void {
    if (length < this.n) this.n = length;
  }
}
