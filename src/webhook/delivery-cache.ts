// Delivery ids already accepted, to drop replays (a provider's redelivery, or a captured request
// sent again). Bounded: the oldest id is forgotten first.

export class DeliveryCache {
  private readonly ids = new Map<string, true>();
  private readonly capacity: number;

  constructor(capacity = 4096) {
    this.capacity = Math.max(1, capacity);
  }

  /** Records `id`; true when it was already there (a replay). */
  seen(id: string): boolean {
    if (this.ids.has(id)) {
      // Refresh: a replayed id stays remembered as long as it keeps coming.
      this.ids.delete(id);
      this.ids.set(id, true);
      return true;
    }
    this.ids.set(id, true);
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.keys().next().value!);
    return false;
  }

  get size(): number {
    return this.ids.size;
  }
}
