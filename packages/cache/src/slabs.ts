/**
 * Compact storage for small cached values (KMS v2 seeds are 32 bytes). A separate Buffer per value costs
 * ~750 bytes of RSS (its own ArrayBuffer and backing store), and a pooled Buffer.from() copy shares Node's 8 KiB
 * pool slab with unrelated buffers, so one surviving copy can pin a whole slab. Here small values live in
 * fixed-size slots of 64 KiB slabs owned by the cache alone; a freed slot is zeroed and reused, and a slab
 * with no used slot is released. Values larger than a slot get their own unpooled allocation.
 */
export const SLOT_BYTES = 64;
const SLOTS_PER_SLAB = 1024;

interface Slab {
  mem: Buffer;
  free: number[];
  used: number;
}

export interface SlotRef {
  slab: Slab;
  index: number;
}

export class SmallValueSlabs {
  private readonly slabs = new Set<Slab>();
  private readonly withRoom = new Set<Slab>();

  get slabCount(): number {
    return this.slabs.size;
  }

  /** A copy of `value` and the slot it lives in (undefined slot: its own allocation). */
  store(value: Uint8Array): { buf: Buffer; slot?: SlotRef } {
    if (value.length > SLOT_BYTES) {
      const own = Buffer.allocUnsafeSlow(value.length);
      own.set(value);
      return { buf: own };
    }
    let slab = this.withRoom.values().next().value;
    if (!slab) {
      slab = { mem: Buffer.allocUnsafeSlow(SLOT_BYTES * SLOTS_PER_SLAB).fill(0), free: Array.from({ length: SLOTS_PER_SLAB }, (_, i) => SLOTS_PER_SLAB - 1 - i), used: 0 };
      this.slabs.add(slab);
      this.withRoom.add(slab);
    }
    const index = slab.free.pop() as number;
    slab.used++;
    if (slab.free.length === 0) this.withRoom.delete(slab);
    const buf = slab.mem.subarray(index * SLOT_BYTES, index * SLOT_BYTES + value.length);
    buf.set(value);
    return { buf, slot: { slab, index } };
  }

  /** Zero the slot and give it back; the slab goes when nothing in it is used. */
  release(slot: SlotRef): void {
    const { slab, index } = slot;
    slab.mem.fill(0, index * SLOT_BYTES, (index + 1) * SLOT_BYTES);
    slab.free.push(index);
    slab.used--;
    if (slab.used === 0 && this.slabs.size > 1) {
      this.slabs.delete(slab);
      this.withRoom.delete(slab);
    } else {
      this.withRoom.add(slab);
    }
  }
}
