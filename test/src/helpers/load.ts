/**
 * Bounded concurrent load for cross-process tests: run `total` calls with at most `concurrency` in flight and
 * collect every failure and every wrong answer (a check returns a string describing what was wrong).
 */
export interface LoadResult {
  calls: number;
  errors: string[];
  wrong: string[];
}

export async function runLoad(total: number, concurrency: number, call: (i: number) => Promise<string | undefined>): Promise<LoadResult> {
  const out: LoadResult = { calls: 0, errors: [], wrong: [] };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      try {
        const bad = await call(i);
        if (bad !== undefined) out.wrong.push(bad);
      } catch (e) {
        out.errors.push(String((e as Error).message ?? e));
      }
      out.calls++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  return out;
}

/** A compact failure description for assertion messages (first few of each kind). */
export function describeLoad(r: LoadResult): string {
  return `${r.calls} calls, ${r.errors.length} errors ${JSON.stringify(r.errors.slice(0, 3))}, ${r.wrong.length} wrong answers ${JSON.stringify(r.wrong.slice(0, 3))}`;
}
