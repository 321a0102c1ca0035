/**
 * AWS KMS emulator: an HTTP/1.1 server speaking awsJson1_1 the way @aws-sdk/client-kms does
 * (`POST /`, `X-Amz-Target: TrentService.<Op>`, JSON bodies, `x-amzn-RequestId` on every answer), behind a
 * TcpFront so that an outage means reset connections, as when a real endpoint goes away.
 *
 * SigV4 is not checked: the client never learns whether the server verified it, and tests use throwaway
 * static credentials. Everything binds to 127.0.0.1.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { FaultInjector, delay } from '../faults';
import { TcpFront } from '../tcp-front';
import { flipBytes } from './ciphertext';
import { KMS_ERROR_STATUS, KmsError, THROTTLE_MESSAGE } from './errors';
import { KeyStore } from './key-store';
import { OPERATIONS, faultKeyNames, type Body } from './operations';

export interface AwsKmsEmulatorOptions {
  /** Public port (0 or absent: any free port). */
  port?: number;
  /** Default us-east-1; the SDK client must use the same Region for ARNs to resolve. */
  region?: string;
  /** Default 111122223333 (the account id AWS documentation uses). */
  accountId?: string;
  /** Delay before an on-demand rotation takes effect (real KMS rotates asynchronously). Default 0. */
  rotationLagMs?: number;
  /** Lifetime on-demand rotations per key. Default 25, as in AWS. */
  onDemandRotationLimit?: number;
}

/** An error the next matching calls answer with, for error classes the generic faults do not produce. */
export interface AwsKmsInjectedError {
  /** KMS error name, e.g. "DependencyTimeoutException". */
  type: string;
  /** HTTP status; defaults to the status KMS models for `type`. */
  status?: number;
  message?: string;
  /** Key id, ARN or alias substring, as for fault rules; all keys when absent. */
  key?: string;
  /** Number of calls to fail; until cleared when absent. */
  count?: number;
}

export interface AwsKmsEmulator {
  /** `http://127.0.0.1:PORT`, for the SDK's `endpoint` option. */
  readonly endpoint: string;
  readonly port: number;
  readonly region: string;
  readonly accountId: string;
  readonly faults: FaultInjector;
  /** Call after adding a fault rule: a global outage drops open connections at once. */
  onFaultsChanged(): void;
  createKey(opts?: { description?: string; alias?: string }): { keyId: string; arn: string };
  /** `name` with or without the `alias/` prefix. */
  createAlias(name: string, keyId: string): void;
  /** Re-point an alias (UpdateAlias), e.g. to move callers to a new key. */
  updateAlias(name: string, keyId: string): void;
  disableKey(keyId: string): void;
  enableKey(keyId: string): void;
  /** Add key material now, as AWS automatic rotation does (not counted as an on-demand rotation). */
  rotateKey(keyId: string): void;
  /** Simulate a key policy that denies every operation on this key (AccessDeniedException). */
  denyAccess(keyId: string, denied?: boolean): void;
  injectError(e: AwsKmsInjectedError): void;
  clearInjectedErrors(): void;
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;

function readBody(req: http.IncomingMessage): Promise<Body> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) reject(new KmsError('SerializationException', `request body larger than ${MAX_BODY} bytes`));
      else chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        const body: unknown = text === '' ? {} : JSON.parse(text);
        if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object');
        resolve(body as Body);
      } catch {
        reject(new KmsError('SerializationException', 'Start of structure or map found where not expected.'));
      }
    });
  });
}

/** The `corrupt` fault: the caller gets well-formed JSON whose blob or plaintext has flipped bits. */
function corrupt(out: Body): Body {
  const copy = { ...out };
  for (const f of ['CiphertextBlob', 'Plaintext']) {
    const v = copy[f];
    if (typeof v === 'string') copy[f] = flipBytes(Buffer.from(v, 'base64')).toString('base64');
  }
  return copy;
}

export async function startAwsKmsEmulator(opts: AwsKmsEmulatorOptions = {}): Promise<AwsKmsEmulator> {
  const region = opts.region ?? 'us-east-1';
  const accountId = opts.accountId ?? '111122223333';
  const store = new KeyStore({ region, accountId, rotationLagMs: opts.rotationLagMs ?? 0, onDemandRotationLimit: opts.onDemandRotationLimit ?? 25 });
  const faults = new FaultInjector();
  let injected: AwsKmsInjectedError[] = [];
  // Fires on close(): requests parked in an injected latency end instead of holding the process open.
  const closing = new AbortController();

  const takeInjected = (keyNames: string | undefined): KmsError | undefined => {
    const hit = injected.find((e) => e.key === undefined || (keyNames !== undefined && keyNames.includes(e.key)));
    if (!hit) return undefined;
    if (hit.count !== undefined) {
      hit.count -= 1;
      injected = injected.filter((e) => e.count === undefined || e.count > 0);
    }
    return new KmsError(hit.type, hit.message ?? `injected ${hit.type}`, hit.status ?? KMS_ERROR_STATUS[hit.type] ?? 400);
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const requestId = randomUUID();
    const gone = new AbortController();
    res.on('close', () => gone.abort());
    const send = (status: number, body: Body): void => {
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-RequestId': requestId }).end(JSON.stringify(body));
    };
    try {
      const target = /^TrentService\.([A-Za-z]+)$/.exec(String(req.headers['x-amz-target'] ?? ''));
      const op = target?.[1];
      const operation = op !== undefined && Object.hasOwn(OPERATIONS, op) ? OPERATIONS[op] : undefined;
      if (req.method !== 'POST' || op === undefined || !operation) {
        req.resume();
        throw new KmsError('UnknownOperationException', `Unknown operation ${String(req.headers['x-amz-target'] ?? '(no X-Amz-Target)')}`);
      }
      const body = await readBody(req);
      const keyNames = faultKeyNames(store, body);
      const f = faults.take(op, keyNames);
      if (f.latencyMs > 0 && !(await delay(f.latencyMs, AbortSignal.any([gone.signal, closing.signal])))) return;
      if (f.outage) {
        req.socket.destroy();
        return;
      }
      if (f.throttle) throw new KmsError('ThrottlingException', THROTTLE_MESSAGE);
      if (f.error) throw new KmsError('KMSInternalException', 'An internal error occurred in AWS KMS. Retry the request.');
      const inj = takeInjected(keyNames);
      if (inj) throw inj;
      const out = operation(store, body);
      send(200, f.corrupt ? corrupt(out) : out);
    } catch (e) {
      if (e instanceof KmsError) send(e.status, { __type: e.type, message: e.message });
      else send(500, { __type: 'KMSInternalException', message: 'The emulator failed unexpectedly.' });
    }
  };

  const server = http.createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const front = new TcpFront(faults, typeof addr === 'object' && addr ? addr.port : 0);
  const port = await front.listen(opts.port ?? 0);

  const key = (ref: string) => store.resolve(ref);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    region,
    accountId,
    faults,
    onFaultsChanged() {
      if (faults.globalOutage) front.dropAll();
    },
    createKey(o = {}) {
      const k = store.create(o.description ?? '');
      if (o.alias !== undefined) store.createAlias(o.alias.startsWith('alias/') ? o.alias : `alias/${o.alias}`, k.id);
      return { keyId: k.id, arn: k.arn };
    },
    createAlias(name, keyId) {
      store.createAlias(name.startsWith('alias/') ? name : `alias/${name}`, keyId);
    },
    updateAlias(name, keyId) {
      store.updateAlias(name.startsWith('alias/') ? name : `alias/${name}`, keyId);
    },
    disableKey(ref) {
      key(ref).state = 'Disabled';
    },
    enableKey(ref) {
      key(ref).state = 'Enabled';
    },
    rotateKey(ref) {
      store.rotate(key(ref), false);
    },
    denyAccess(ref, denied = true) {
      key(ref).denied = denied;
    },
    injectError(e) {
      if (e.count !== undefined && (!Number.isInteger(e.count) || e.count < 1)) throw new Error('count must be a positive integer');
      injected.push({ ...e });
    },
    clearInjectedErrors() {
      injected = [];
    },
    async close() {
      closing.abort();
      await front.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      store.close();
    },
  };
}
