/**
 * The provider conformance suite: one set of behaviours every KekProvider must show, run unchanged against
 * the local provider and, through their real SDKs, against the AWS, GCP and Azure emulators.
 *
 * A target supplies the provider and, where the backend has a network, fault controls. Cases that need a
 * fault control are only registered for targets that have one (the local keystore cannot be throttled);
 * they are never skipped.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isKekError, type ErrorCode, type KekProvider, type WrapContext } from '@kekbroker/core';
import { installLoopbackGuard, type LoopbackGuard } from '@kekbroker/testkit';

export interface FaultControls {
  /** Every call answers "throttled" until cleared. */
  throttle(): Promise<void>;
  /** The backend is unreachable (connections refused or reset) until cleared. */
  outage(): Promise<void>;
  /** Every call is delayed by `ms` until cleared. */
  latency(ms: number): Promise<void>;
  clear(): Promise<void>;
}

export interface ConformanceFixture {
  provider: KekProvider;
  /** A provider configured like `provider` but for a key that does not exist. */
  missingKeyProvider(): Promise<KekProvider>;
  /** Disable the provider's key (all versions) on the backend; `enableKey` undoes it. */
  disableKey(): Promise<void>;
  enableKey(): Promise<void>;
  /** Codes a disabled key may produce: backends differ (AWS DisabledException vs Azure 403). */
  disabledCodes: readonly ErrorCode[];
  faults?: FaultControls;
  teardown(): Promise<void>;
}

export interface ConformanceTarget {
  name: string;
  /** True when the fixture has `faults`; decides (at registration time) whether the fault cases exist. */
  hasFaults: boolean;
  setup(): Promise<ConformanceFixture>;
}

const CTX: WrapContext = { tenant: 'tenant-a', keyring: 'prod', envelopeVersion: 1 };

function signal(ms = 10_000): AbortSignal {
  return AbortSignal.timeout(ms);
}

async function rejectsWith(p: Promise<unknown>, codes: ErrorCode | readonly ErrorCode[]): Promise<unknown> {
  const want = typeof codes === 'string' ? [codes] : codes;
  try {
    await p;
  } catch (e) {
    assert.ok(isKekError(e), `expected a KekError, got ${String(e)}`);
    assert.ok(want.includes(e.code), `expected ${want.join('|')}, got ${e.code}: ${e.message}`);
    return e;
  }
  assert.fail(`expected rejection with ${want.join('|')}`);
}

export function runConformance(target: ConformanceTarget): void {
  describe(`provider conformance: ${target.name}`, { timeout: 120_000 }, () => {
    let fx: ConformanceFixture;
    let guard: LoopbackGuard;
    const seed = Buffer.alloc(32, 7);

    before(async () => {
      guard = installLoopbackGuard();
      fx = await target.setup();
    });
    after(async () => {
      await fx?.teardown();
      guard.uninstall();
      assert.deepEqual(guard.violations, [], 'no connection or DNS lookup may leave 127.0.0.1');
    });

    it('wraps and unwraps a 32-byte seed', async () => {
      const w = await fx.provider.wrap(seed, CTX, signal());
      assert.ok(w.wrapped.length > 0);
      assert.ok(!Buffer.from(w.wrapped).includes(seed), 'wrapped bytes must not contain the plaintext');
      const out = await fx.provider.unwrap(w, CTX, signal());
      assert.deepEqual(out, seed);
    });

    it('describe() names the version wrap() uses', async () => {
      const d = await fx.provider.describe(signal());
      const w = await fx.provider.wrap(seed, CTX, signal());
      assert.equal(d.id, fx.provider.id);
      assert.equal(w.keyVersionRef, d.currentVersionRef);
      assert.ok(Buffer.byteLength(d.currentVersionRef) <= 1024);
    });

    it('an unwrap under another tenant or keyring fails as corrupt', async () => {
      const w = await fx.provider.wrap(seed, CTX, signal());
      await rejectsWith(fx.provider.unwrap(w, { ...CTX, tenant: 'tenant-b' }, signal()), 'corrupt');
      await rejectsWith(fx.provider.unwrap(w, { ...CTX, keyring: 'staging' }, signal()), 'corrupt');
    });

    it('tampered wrapped bytes fail as corrupt', async () => {
      const w = await fx.provider.wrap(seed, CTX, signal());
      const bytes = Buffer.from(w.wrapped);
      const mid = bytes.length >> 1;
      bytes[mid] = (bytes[mid] ?? 0) ^ 0x40;
      await rejectsWith(fx.provider.unwrap({ ...w, wrapped: bytes }, CTX, signal()), 'corrupt');
      await rejectsWith(fx.provider.unwrap({ ...w, wrapped: Buffer.from(w.wrapped).subarray(0, 8) }, CTX, signal()), 'corrupt');
    });

    it('rejects empty and oversized plaintext as invalid-input', async () => {
      await rejectsWith(fx.provider.wrap(Buffer.alloc(0), CTX, signal()), 'invalid-input');
      await rejectsWith(fx.provider.wrap(Buffer.alloc(4097, 1), CTX, signal()), 'invalid-input');
    });

    it('rotation changes the version ref and old wraps still unwrap', async () => {
      const before = await fx.provider.describe(signal());
      const old = await fx.provider.wrap(seed, CTX, signal());
      const after = await fx.provider.rotate(signal());
      assert.notEqual(after.currentVersionRef, before.currentVersionRef);
      assert.equal((await fx.provider.describe(signal())).currentVersionRef, after.currentVersionRef);
      const neu = await fx.provider.wrap(seed, CTX, signal());
      assert.equal(neu.keyVersionRef, after.currentVersionRef);
      assert.deepEqual(await fx.provider.unwrap(old, CTX, signal()), seed);
      assert.deepEqual(await fx.provider.unwrap(neu, CTX, signal()), seed);
    });

    it('a key that does not exist fails as not-found or permission-denied', async () => {
      const missing = await fx.missingKeyProvider();
      try {
        await rejectsWith(missing.wrap(seed, CTX, signal()), ['not-found', 'permission-denied']);
      } finally {
        await missing.close();
      }
    });

    it('a disabled key fails as the backend reports it, then recovers when enabled', async () => {
      const w = await fx.provider.wrap(seed, CTX, signal());
      await fx.disableKey();
      try {
        await rejectsWith(fx.provider.wrap(seed, CTX, signal()), fx.disabledCodes);
        await rejectsWith(fx.provider.unwrap(w, CTX, signal()), fx.disabledCodes);
      } finally {
        await fx.enableKey();
      }
      assert.deepEqual(await fx.provider.unwrap(w, CTX, signal()), seed);
    });

    it('probe() succeeds on a healthy backend', async () => {
      await fx.provider.probe(signal());
    });

    if (!target.hasFaults) return;
    describe('faults', () => {
      const faults = (): FaultControls => {
        assert.ok(fx.faults, `${target.name} declares hasFaults but its fixture has no fault controls`);
        return fx.faults;
      };
      it('throttling is classified as throttled', async () => {
        await faults().throttle();
        await faults().throttle();
        try {
          await rejectsWith(fx.provider.wrap(seed, CTX, signal(8_000)), 'throttled');
        } finally {
          await faults().clear();
        }
      });

      it('an outage is classified as unavailable before the deadline', async () => {
        const w = await fx.provider.wrap(seed, CTX, signal());
        await faults().outage();
        try {
          await rejectsWith(fx.provider.unwrap(w, CTX, signal(8_000)), 'unavailable');
        } finally {
          await faults().clear();
        }
        assert.deepEqual(await fx.provider.unwrap(w, CTX, signal()), seed, 'recovers when the outage ends');
      });

      it('an aborted signal stops a slow call promptly', { timeout: 15_000 }, async () => {
        // The injected latency outlives the test timeout: only an honoured abort lets this test finish.
        await faults().latency(60_000);
        try {
          const ac = new AbortController();
          const p = fx.provider.wrap(seed, CTX, ac.signal);
          setTimeout(() => ac.abort(), 100);
          await rejectsWith(p, 'timeout');
        } finally {
          await faults().clear();
        }
      });
    });
  });
}
