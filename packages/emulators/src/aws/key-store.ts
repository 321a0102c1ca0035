/**
 * The emulator's keys and aliases. A key holds one or more key materials: automatic or on-demand rotation
 * adds one and makes it current; older materials keep decrypting (AWS keeps them "in perpetuity" until the
 * key is deleted). KeyId arguments may be a key id, key ARN, alias name or alias ARN, resolved as KMS does.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { KmsError, notFound } from './errors';

export interface KeyMaterial {
  /** 64 hex characters, like the ids KMS reports in CurrentKeyMaterialId. */
  readonly id: string;
  readonly key: Buffer;
  readonly created: number;
}

export type KeyState = 'Enabled' | 'Disabled' | 'PendingDeletion';

export interface KmsKey {
  readonly id: string;
  readonly arn: string;
  readonly created: number;
  description: string;
  state: KeyState;
  deletionDate: number | undefined;
  readonly materials: KeyMaterial[];
  /** Index into `materials` of the material Encrypt uses. */
  current: number;
  rotationEnabled: boolean;
  rotationPeriodDays: number;
  onDemandRotations: number;
  /** Epoch seconds at which a not yet finished on-demand rotation started. */
  pendingRotationSince: number | undefined;
  /** Test switch: every call naming this key gets AccessDeniedException (a key policy that denies us). */
  denied: boolean;
}

export interface KeyStoreOptions {
  region: string;
  accountId: string;
  /** Real on-demand rotation is asynchronous; > 0 makes the new material current only after this delay. */
  rotationLagMs: number;
  /** Lifetime on-demand rotations per key (25 in AWS, a resource quota that cannot be raised). */
  onDemandRotationLimit: number;
}

const nowSeconds = (): number => Date.now() / 1000;

function newMaterial(): KeyMaterial {
  return { id: randomBytes(32).toString('hex'), key: randomBytes(32), created: nowSeconds() };
}

const ARN = /^arn:([a-z-]+):kms:([a-z0-9-]+):(\d{12}):(key|alias)\/(.+)$/;

export class KeyStore {
  private readonly keys = new Map<string, KmsKey>();
  /** "alias/name" → key id. */
  private readonly aliases = new Map<string, string>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(readonly opts: KeyStoreOptions) {}

  keyArn(id: string): string {
    return `arn:aws:kms:${this.opts.region}:${this.opts.accountId}:key/${id}`;
  }

  aliasArn(name: string): string {
    return `arn:aws:kms:${this.opts.region}:${this.opts.accountId}:${name}`;
  }

  create(description = ''): KmsKey {
    const id = randomUUID();
    const key: KmsKey = {
      id, arn: this.keyArn(id), created: nowSeconds(), description, state: 'Enabled', deletionDate: undefined,
      materials: [newMaterial()], current: 0, rotationEnabled: false, rotationPeriodDays: 365,
      onDemandRotations: 0, pendingRotationSince: undefined, denied: false,
    };
    this.keys.set(id, key);
    return key;
  }

  list(): KmsKey[] {
    return [...this.keys.values()];
  }

  /** Resolve any KeyId form, or throw the error KMS would send. */
  resolve(ref: string): KmsKey {
    const key = this.tryResolve(ref);
    if (!key) {
      if (ref.startsWith('alias/') || ref.includes(':alias/')) throw notFound(`Alias ${ref.startsWith('arn:') ? ref : this.aliasArn(ref)}`);
      throw new KmsError('NotFoundException', `Key '${ref.startsWith('arn:') ? ref : this.keyArn(ref)}' does not exist`);
    }
    return key;
  }

  tryResolve(ref: string): KmsKey | undefined {
    if (ref.startsWith('arn:')) {
      const m = ARN.exec(ref);
      if (!m) throw new KmsError('InvalidArnException', `${ref} is not a valid ARN.`);
      // An ARN of another Region or account names a key this endpoint does not hold.
      if (m[2] !== this.opts.region || m[3] !== this.opts.accountId) return undefined;
      return m[4] === 'key' ? this.keys.get(m[5] ?? '') : this.byAlias(`alias/${m[5] ?? ''}`);
    }
    if (ref.startsWith('alias/')) return this.byAlias(ref);
    return this.keys.get(ref);
  }

  private byAlias(name: string): KmsKey | undefined {
    const id = this.aliases.get(name);
    return id === undefined ? undefined : this.keys.get(id);
  }

  createAlias(name: string, target: string): void {
    if (!/^alias\/[a-zA-Z0-9/_-]{1,250}$/.test(name)) throw new KmsError('ValidationException', `Alias name ${name} must begin with alias/ and contain only a-z, A-Z, 0-9, /, _ and -.`);
    if (name.startsWith('alias/aws/')) throw new KmsError('ValidationException', 'Alias names cannot begin with alias/aws/; that prefix is reserved for AWS managed keys.');
    if (this.aliases.has(name)) throw new KmsError('AlreadyExistsException', `An alias with the name ${this.aliasArn(name)} already exists`);
    if (target.startsWith('alias/') || target.includes(':alias/')) throw new KmsError('ValidationException', 'TargetKeyId must be a key id or key ARN, not an alias.');
    this.aliases.set(name, this.resolve(target).id);
  }

  /** Point an existing alias at another key (UpdateAlias). */
  updateAlias(name: string, target: string): void {
    if (!this.aliases.has(name)) throw notFound(`Alias ${this.aliasArn(name)}`);
    this.aliases.set(name, this.resolve(target).id);
  }

  aliasesOf(key: KmsKey): string[] {
    return [...this.aliases].filter(([, id]) => id === key.id).map(([name]) => name);
  }

  /** Cryptographic operations need an enabled key; the errors are the ones KMS sends for each state. */
  requireUsable(key: KmsKey): void {
    if (key.state === 'Disabled') throw new KmsError('DisabledException', `${key.arn} is disabled.`);
    if (key.state === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
  }

  /** Add a material and make it current. On-demand rotations count against the lifetime limit. */
  rotate(key: KmsKey, onDemand: boolean): void {
    if (onDemand) {
      this.requireUsable(key);
      if (key.pendingRotationSince !== undefined) throw new KmsError('ConflictException', `An on-demand rotation of ${key.arn} is already in progress.`);
      if (key.onDemandRotations >= this.opts.onDemandRotationLimit) {
        throw new KmsError('LimitExceededException', `${key.arn} has reached the limit of ${this.opts.onDemandRotationLimit} on-demand rotations.`);
      }
      key.onDemandRotations += 1;
    }
    const finish = (): void => {
      key.materials.push(newMaterial());
      key.current = key.materials.length - 1;
      key.pendingRotationSince = undefined;
    };
    if (!onDemand || this.opts.rotationLagMs <= 0) return finish();
    key.pendingRotationSince = nowSeconds();
    const t = setTimeout(() => {
      this.timers.delete(t);
      finish();
    }, this.opts.rotationLagMs);
    t.unref();
    this.timers.add(t);
  }

  metadata(key: KmsKey): Record<string, unknown> {
    return {
      AWSAccountId: this.opts.accountId,
      KeyId: key.id,
      Arn: key.arn,
      CreationDate: key.created,
      Enabled: key.state === 'Enabled',
      Description: key.description,
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeyState: key.state,
      ...(key.deletionDate !== undefined ? { DeletionDate: key.deletionDate } : {}),
      Origin: 'AWS_KMS',
      KeyManager: 'CUSTOMER',
      CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
      KeySpec: 'SYMMETRIC_DEFAULT',
      EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
      MultiRegion: false,
      CurrentKeyMaterialId: key.materials[key.current]?.id,
    };
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const k of this.keys.values()) for (const m of k.materials) m.key.fill(0);
  }
}
