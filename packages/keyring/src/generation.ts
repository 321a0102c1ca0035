/**
 * The keyring's current generation and key_id, from every provider's current version ref. A provider that
 * cannot describe itself now (down at start) keeps its last known ref: the one described earlier in this
 * process, or the one saved in the VersionRefStore by an earlier run. So a broker restarted during a
 * provider outage serves with the key_id it had before. Only the first start ever with a provider down
 * has no ref to fall back on; that keyring waits for the provider (see docs/operations.md).
 */
import { formatKeyId, generationOf, type KekProvider, type ProviderDescription } from '@kekbroker/core';
import type { VersionRefStore } from './version-ref-store';

export class KeyringGeneration {
  private readonly refs = new Map<string, string>();
  private readonly stored = new Set<string>();
  private storeLoaded = false;
  private lastSaved = '';
  generation: Buffer | undefined;
  keyId: string | undefined;

  constructor(
    private readonly keyring: string,
    private readonly providers: readonly KekProvider[],
    private readonly store: VersionRefStore | undefined,
    private readonly onStoreError: (e: unknown) => void,
  ) {}

  ref(id: string): string {
    return this.refs.get(id) ?? '';
  }

  fromStore(id: string): boolean {
    return this.stored.has(id);
  }

  missing(): string[] {
    return this.providers.filter((p) => !this.refs.has(p.id)).map((p) => p.id);
  }

  /** Take fresh descriptions (some providers may be missing), fill gaps from the store, recompute. */
  async update(fresh: ReadonlyMap<string, ProviderDescription>): Promise<void> {
    for (const [id, d] of fresh) {
      this.refs.set(id, d.currentVersionRef);
      this.stored.delete(id);
    }
    if (this.missing().length > 0 && this.store && !this.storeLoaded) {
      try {
        const saved = await this.store.load(this.keyring);
        this.storeLoaded = true;
        for (const [id, ref] of Object.entries(saved ?? {})) {
          if (!this.refs.has(id) && this.providers.some((p) => p.id === id)) {
            this.refs.set(id, ref);
            this.stored.add(id);
          }
        }
      } catch (e) {
        this.onStoreError(e);
      }
    }
    if (this.missing().length > 0) return;
    const list = this.providers.map((p) => ({ providerId: p.id, keyVersionRef: this.ref(p.id) }));
    this.generation = generationOf(list);
    this.keyId = formatKeyId(this.keyring, this.generation);
    // Save only refs every provider confirmed in this process, and only when they changed.
    if (this.store && this.stored.size === 0) {
      const snapshot = JSON.stringify(list);
      if (snapshot !== this.lastSaved) {
        try {
          await this.store.save(this.keyring, Object.fromEntries(list.map((l) => [l.providerId, l.keyVersionRef])));
          this.lastSaved = snapshot;
        } catch (e) {
          this.onStoreError(e);
        }
      }
    }
  }
}
