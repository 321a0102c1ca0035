/**
 * Version refs of the AWS KMS provider: `<key ARN>#<key material id>`.
 *
 * - The key ARN holds a UUID (or `mrk-…` id) minted by KMS, so a key re-created under the same alias gets
 *   a new ARN and its refs can never collide with the old key's.
 * - The key material id (DescribeKey `CurrentKeyMaterialId`) changes on every rotation, automatic or on
 *   demand, and is stable otherwise. Keys that report none (custom key stores) get the bare ARN.
 * - Unwrap reads the ARN back and passes it as Decrypt's KeyId: KMS then refuses a blob made by any other
 *   key, and a blob wrapped before an alias was re-pointed still goes to the key that made it.
 */
const ARN = /^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-[a-z]|aws-eusc):kms:([a-z0-9-]{1,40}):(\d{12}):key\/([A-Za-z0-9-]{1,64})$/;
const MATERIAL = /^[A-Za-z0-9_-]{1,128}$/;

export interface VersionRef {
  readonly arn: string;
  readonly region: string;
  readonly account: string;
  readonly keyMaterialId: string | undefined;
}

export function isKeyArn(s: string): boolean {
  return ARN.test(s);
}

export function formatVersionRef(arn: string, keyMaterialId: string | undefined): string {
  if (!ARN.test(arn)) throw new Error(`not a KMS key ARN: ${arn}`);
  if (keyMaterialId === undefined) return arn;
  if (!MATERIAL.test(keyMaterialId)) throw new Error('unexpected key material id format');
  return `${arn}#${keyMaterialId}`;
}

export function parseVersionRef(ref: string): VersionRef | undefined {
  const hash = ref.indexOf('#');
  const arn = hash < 0 ? ref : ref.slice(0, hash);
  const material = hash < 0 ? undefined : ref.slice(hash + 1);
  const m = ARN.exec(arn);
  if (!m || (material !== undefined && !MATERIAL.test(material))) return undefined;
  return { arn, region: m[2] ?? '', account: m[3] ?? '', keyMaterialId: material };
}
