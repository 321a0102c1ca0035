/**
 * Encode and decode envelopes. Decoding is strict and total: every malformed input (truncated, oversized,
 * wrong magic, unknown or too-new version, bad lengths, trailing bytes) yields a KekError with a message
 * that says what is wrong, never a RangeError from a buffer read.
 */
import { KekError } from '../errors';
import { isValidName } from '../wrap-context';
import {
  ENVELOPE_VERSION, GENERATION_BYTES, MAGIC, MAX_ENVELOPE_BYTES, MAX_NAME_BYTES, MAX_PAYLOAD_BYTES, MAX_REF_BYTES,
  MAX_WRAPPED_BYTES, MAX_WRAPS, NONCE_BYTES, SUPPORTED_VERSIONS, TAG_BYTES,
  type Envelope, type EnvelopeWrap,
} from './format';

function invalid(message: string): KekError {
  return new KekError('invalid-input', `malformed envelope: ${message}`);
}

/** Serialise the header (everything before the nonce); it doubles as the payload AAD. */
export function encodeHeader(e: Pick<Envelope, 'version' | 'keyring' | 'generation' | 'wraps'>): Buffer {
  if (!SUPPORTED_VERSIONS.includes(e.version)) throw invalid(`cannot encode version ${e.version}`);
  if (!isValidName(e.keyring)) throw invalid('keyring name is not a DNS label');
  if (e.generation.length !== GENERATION_BYTES) throw invalid(`generation must be ${GENERATION_BYTES} bytes`);
  if (e.wraps.length < 1 || e.wraps.length > MAX_WRAPS) throw invalid(`an envelope holds 1..${MAX_WRAPS} wraps`);
  const parts: Buffer[] = [MAGIC, Buffer.from([e.version, 0]), lp8(e.keyring), Buffer.from(e.generation), Buffer.from([e.wraps.length])];
  for (const w of e.wraps) {
    if (!isValidName(w.providerId)) throw invalid('provider id is not a DNS label');
    const ref = Buffer.from(w.keyVersionRef, 'utf8');
    if (ref.length < 1 || ref.length > MAX_REF_BYTES) throw invalid(`key version ref must be 1..${MAX_REF_BYTES} bytes`);
    if (w.wrapped.length < 1 || w.wrapped.length > MAX_WRAPPED_BYTES) throw invalid(`wrapped key must be 1..${MAX_WRAPPED_BYTES} bytes`);
    parts.push(lp8(w.providerId), lp16(ref), lp16(Buffer.from(w.wrapped)));
  }
  return Buffer.concat(parts);
}

export function encodeEnvelope(e: Envelope): Buffer {
  if (e.nonce.length !== NONCE_BYTES) throw invalid(`nonce must be ${NONCE_BYTES} bytes`);
  if (e.sealed.length < TAG_BYTES || e.sealed.length > MAX_PAYLOAD_BYTES + TAG_BYTES) throw invalid('sealed payload size out of range');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(e.sealed.length);
  return Buffer.concat([encodeHeader(e), Buffer.from(e.nonce), len, Buffer.from(e.sealed)]);
}

export interface DecodedEnvelope extends Envelope {
  /** The exact header bytes as received: the payload AAD. */
  readonly header: Buffer;
}

export function decodeEnvelope(input: Uint8Array): DecodedEnvelope {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (buf.length === 0) throw invalid('empty');
  if (buf.length > MAX_ENVELOPE_BYTES) throw invalid(`larger than ${MAX_ENVELOPE_BYTES} bytes`);
  const r = new Reader(buf);
  if (!r.take(2, 'magic').equals(MAGIC)) throw invalid('not a kekbroker envelope (bad magic)');
  const version = r.u8('version');
  if (!SUPPORTED_VERSIONS.includes(version)) {
    if (version > ENVELOPE_VERSION) {
      throw new KekError('invalid-input', `envelope version ${version} is newer than this broker supports (max ${ENVELOPE_VERSION}): upgrade the broker`);
    }
    throw invalid(`unknown version ${version}`);
  }
  const flags = r.u8('flags');
  if (flags !== 0) throw invalid(`unsupported flags 0x${flags.toString(16)}`);
  const keyring = r.str8('keyring', MAX_NAME_BYTES);
  if (!isValidName(keyring)) throw invalid('keyring name is not a DNS label');
  const generation = r.take(GENERATION_BYTES, 'generation');
  const count = r.u8('wrap count');
  if (count < 1 || count > MAX_WRAPS) throw invalid(`wrap count ${count} out of range 1..${MAX_WRAPS}`);
  const wraps: EnvelopeWrap[] = [];
  for (let i = 0; i < count; i++) {
    const providerId = r.str8(`wrap ${i} provider id`, MAX_NAME_BYTES);
    if (!isValidName(providerId)) throw invalid(`wrap ${i} provider id is not a DNS label`);
    const keyVersionRef = r.bytes16(`wrap ${i} key version ref`, MAX_REF_BYTES).toString('utf8');
    const wrapped = r.bytes16(`wrap ${i} wrapped key`, MAX_WRAPPED_BYTES);
    wraps.push({ providerId, keyVersionRef, wrapped });
  }
  const header = buf.subarray(0, r.offset);
  const nonce = r.take(NONCE_BYTES, 'nonce');
  const sealedLen = r.u32('payload length');
  if (sealedLen < TAG_BYTES || sealedLen > MAX_PAYLOAD_BYTES + TAG_BYTES) throw invalid(`payload length ${sealedLen} out of range`);
  const sealed = r.take(sealedLen, 'payload');
  if (r.offset !== buf.length) throw invalid(`${buf.length - r.offset} trailing bytes`);
  return { version, keyring, generation, wraps, nonce, sealed, header };
}

function lp8(s: string): Buffer {
  const b = Buffer.from(s, 'ascii');
  return Buffer.concat([Buffer.from([b.length]), b]);
}

function lp16(b: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

/** Bounds-checked reader: every read names the field it was reading when the input ran out. */
class Reader {
  offset = 0;
  constructor(private readonly buf: Buffer) {}

  take(n: number, field: string): Buffer {
    if (this.offset + n > this.buf.length) throw invalid(`truncated in ${field}`);
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }
  u8(field: string): number {
    return this.take(1, field).readUInt8(0);
  }
  u32(field: string): number {
    return this.take(4, field).readUInt32BE(0);
  }
  str8(field: string, max: number): string {
    const n = this.u8(field);
    if (n < 1 || n > max) throw invalid(`${field} length ${n} out of range 1..${max}`);
    return this.take(n, field).toString('ascii');
  }
  bytes16(field: string, max: number): Buffer {
    const n = this.take(2, field).readUInt16BE(0);
    if (n < 1 || n > max) throw invalid(`${field} length ${n} out of range 1..${max}`);
    return this.take(n, field);
  }
}
