/**
 * The emulators' control endpoint (HTTP on 127.0.0.1), for tests in other processes and for humans:
 *   GET    /faults/<emulator>          list active rules
 *   POST   /faults/<emulator>          add a rule: {"kind":"throttle","key":"kek","count":3}
 *   DELETE /faults/<emulator>          clear all rules
 *   GET    /calls/<emulator>           calls seen per operation
 * <emulator> is "aws", "gcp" or "azure".
 */
import http from 'node:http';
import type { FaultInjector, FaultRule } from './faults';

export interface Controllable {
  readonly faults: FaultInjector;
  /** Called after a rule is added, so an outage can drop open connections at once. */
  onFaultsChanged?(): void;
}

export async function startControlServer(targets: Record<string, Controllable>, port = 0): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
    };
    const m = /^\/(faults|calls)\/([a-z]+)$/.exec(req.url ?? '');
    const target = m?.[2] !== undefined ? targets[m[2]] : undefined;
    if (!m || !target) return send(404, { error: `unknown path; try /faults/{${Object.keys(targets).join(',')}}` });
    if (m[1] === 'calls' && req.method === 'GET') return send(200, Object.fromEntries(target.faults.calls));
    if (m[1] !== 'faults') return send(405, { error: 'method not allowed' });
    if (req.method === 'GET') return send(200, target.faults.list());
    if (req.method === 'DELETE') {
      target.faults.clear();
      return send(200, { cleared: true });
    }
    if (req.method !== 'POST') return send(405, { error: 'method not allowed' });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
      if (body.length > 4096) req.destroy();
    });
    req.on('end', () => {
      try {
        target.faults.add(JSON.parse(body) as FaultRule);
        target.onFaultsChanged?.();
        send(200, target.faults.list());
      } catch (e) {
        send(400, { error: (e as Error).message });
      }
    });
    return undefined;
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
