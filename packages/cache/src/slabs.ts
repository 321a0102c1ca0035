/**
 * Compact storage for small cached values (KMS v2 seeds are 32 bytes), addressed by a slot number.
 *
 * Why: at 100k seeds the per-entry JS objects cost far more than the 32 bytes. A separate Buffer per value
 * costs ~750 bytes of RSS (its own ArrayBuffer and backing store); even a subarray view of a shared slab is a
 * ~100-byte typed-array object, and a pooled Buffer.from() copy shares Node's 8 KiB pool slab with unrelated
 * buffers, so one surviving copy can pin a whole slab. Here a value is a slot number (a small integer, no
 * object): its bytes live in a 64 KiB slab owned by the cache alone, and its length, freshness deadline and
 * metadata in per-slab typed arrays. A freed slot is zeroed and reused; a slab with no used slot is released.
 */
export const SLOT_BYTES = 64;
const SLOTS_PER_SLAB = 1024;

interface Slab {
  mem: Buffer;
  lengths: Uint8Array;
  freshUntil: Float64Array;
  /** Shared metadata objects (interned by the caller), one reference per slot. */
  meta: unknown[];
  free: number[];
  used: number;
}

export class SmallValueSlabs<M> {
  /** Slab number -> slab; a released slab leaves a hole that the next new slab fills. */
  private readonly slabs: Array<Slab | undefined> = [];
  private readonly withRoom = new Set<number>();

  get slabCount(): number {
    return this.slabs.filter(Boolean).length;
  }

  /** Copy `value` (at most SLOT_BYTES) into a free slot; returns the slot number. */
  store(value: Uint8Array, meta: M, freshUntil: number): number {
    if (value.length > SLOT_BYTES) throw new RangeError(`a slot holds at most ${SLOT_BYTES} bytes`);
    let n = this.withRoom.values().next().value;
    if (n === undefined) n = this.addSlab();
    const slab = this.slabs[n] as Slab;
    const index = slab.free.pop() as number;
    slab.used++;
    if (slab.free.length === 0) this.withRoom.delete(n);
    slab.mem.set(value, index * SLOT_BYTES);
    slab.lengths[index] = value.length;
    slab.freshUntil[index] = freshUntil;
    slab.meta[index] = meta;
    return n * SLOTS_PER_SLAB + index;
  }

  /** A copy of the slot's value (unpooled: the caller owns it and zeroes it). */
  copy(slot: number): Buffer {
    const { slab, index } = this.at(slot);
    const out = Buffer.allocUnsafeSlow(slab.lengths[index] as number);
    slab.mem.copy(out, 0, index * SLOT_BYTES, index * SLOT_BYTES + out.length);
    return out;
  }

  length(slot: number): number {
    const { slab, index } = this.at(slot);
    return slab.lengths[index] as number;
  }

  freshUntil(slot: number): number {
    const { slab, index } = this.at(slot);
    return slab.freshUntil[index] as number;
  }

  meta(slot: number): M {
    const { slab, index } = this.at(slot);
    return slab.meta[index] as M;
  }

  /** Zero the slot and give it back; the slab goes when nothing in it is used (one is kept for reuse). */
  release(slot: number): void {
    const n = Math.floor(slot / SLOTS_PER_SLAB);
    const { slab, index } = this.at(slot);
    slab.mem.fill(0, index * SLOT_BYTES, (index + 1) * SLOT_BYTES);
    slab.lengths[index] = 0;
    slab.meta[index] = undefined;
    slab.free.push(index);
    slab.used--;
    if (slab.used === 0 && this.slabCount > 1) {
      this.slabs[n] = undefined;
      this.withRoom.delete(n);
    } else {
      this.withRoom.add(n);
    }
  }

  private at(slot: number): { slab: Slab; index: number } {
    const slab = this.slabs[Math.floor(slot / SLOTS_PER_SLAB)];
    if (!slab) throw new Error(`slot ${slot} is not in use`);
    return { slab, index: slot % SLOTS_PER_SLAB };
  }

  private addSlab(): number {
    let n = this.slabs.indexOf(undefined);
    if (n < 0) n = this.slabs.length;
    this.slabs[n] = {
      mem: Buffer.allocUnsafeSlow(SLOT_BYTES * SLOTS_PER_SLAB).fill(0),
      lengths: new Uint8Array(SLOTS_PER_SLAB),
      freshUntil: new Float64Array(SLOTS_PER_SLAB),
      meta: new Array<unknown>(SLOTS_PER_SLAB).fill(undefined),
      free: Array.from({ length: SLOTS_PER_SLAB }, (_, i) => SLOTS_PER_SLAB - 1 - i),
      used: 0,
    };
    this.withRoom.add(n);
    return n;
  }
}
