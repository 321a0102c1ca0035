import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withRetries } from './retry';
import { IntegrityError } from './transport-errors';

const status = (code: number) => Object.assign(new Error(`status ${code}`), { code });
const policy = { maxAttempts: 3, baseDelayMs: 1 };
const live = () => new AbortController().signal;

async function count(errors: Array<Error | undefined>, signal = live()): Promise<{ calls: number; result: unknown }> {
  let calls = 0;
  const result = await withRetries(policy, signal, async () => {
    const e = errors[calls++];
    if (e) throw e;
    return 'ok';
  }).catch((e: unknown) => e);
  return { calls, result };
}

describe('withRetries', () => {
  it('retries UNAVAILABLE, per-attempt DEADLINE_EXCEEDED and integrity failures', async () => {
    assert.deepEqual(await count([status(14), status(4)]), { calls: 3, result: 'ok' });
    assert.deepEqual(await count([new IntegrityError('crc')]), { calls: 2, result: 'ok' });
  });

  it('stops after maxAttempts with the last error', async () => {
    const last = status(14);
    assert.deepEqual(await count([status(14), status(14), last, status(14)]), { calls: 3, result: last });
  });

  it('never retries throttling, caller errors or corruption', async () => {
    for (const code of [8, 3, 5, 7, 9, 13]) {
      const e = status(code);
      assert.deepEqual(await count([e]), { calls: 1, result: e }, `code ${code}`);
    }
  });

  it('does not retry once the signal fired, and reports the real failure rather than a bare abort', async () => {
    const ac = new AbortController();
    const e = status(14);
    let calls = 0;
    const result = await withRetries({ maxAttempts: 3, baseDelayMs: 60_000 }, ac.signal, async () => {
      calls++;
      setTimeout(() => ac.abort(), 10); // fires during the (long) pause; the test would hang otherwise
      throw e;
    }).catch((x: unknown) => x);
    assert.equal(result, e);
    assert.equal(calls, 1);
  });

  it('asks the retry gate before every retry and stops with the attempt\'s error when it refuses', async () => {
    const e = status(14);
    let calls = 0;
    const answers = [true, false];
    let asked = 0;
    const result = await withRetries({ maxAttempts: 5, baseDelayMs: 1, gate: () => answers[asked++] ?? false }, live(), async () => {
      calls++;
      throw e;
    }).catch((x: unknown) => x);
    assert.equal(result, e);
    assert.equal(calls, 2, 'the first attempt and the one retry the gate allowed');
    assert.equal(asked, 2);
  });
});
