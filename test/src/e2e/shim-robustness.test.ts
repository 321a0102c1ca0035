/**
 * Resource limits under misbehaving clients: a client that opens the shim's socket and sends a malformed
 * HTTP/2 stream must not pin a file descriptor forever, while a live (idle) kube-apiserver connection is
 * kept; many status watchers on one keyring must not trip Node's listener-leak warning in the broker.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { freePort, tempDir } from '@kekbroker/testkit';
import { brokerClient, tenantMd } from '../helpers/broker-client';
import { KmsClient } from '../helpers/kms-client';
import { allocateBrokerPorts, devBrokerConfig, startBroker, startShim, waitFor, type BrokerHandle, type Proc } from '../helpers/processes';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** A SETTINGS frame of length 5 (must be a multiple of 6): FRAME_SIZE_ERROR. */
const BAD_SETTINGS = Buffer.from([0, 0, 5, 0x4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5]);
/** An empty SETTINGS, then a HEADERS frame on stream 1 whose HPACK block is garbage: COMPRESSION_ERROR. */
const BAD_HPACK = Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0, 0, 0, 3, 0x1, 0x5, 0, 0, 0, 1, 0xff, 0xff, 0xff]);

/** What broken clients send: a bad SETTINGS, bad HPACK, half a preface, HTTP/1, nothing at all. */
const BROKEN = [Buffer.concat([PREFACE, BAD_SETTINGS]), Buffer.concat([PREFACE, BAD_HPACK]), PREFACE.subarray(0, 8), Buffer.from('GET / HTTP/1.1\r\n'), Buffer.alloc(0)];

const openFds = async (pid: number): Promise<number> => (await fs.readdir(`/proc/${pid}/fd`)).length;

describe('shim and broker under misbehaving clients', { timeout: 120_000 }, () => {
  let dir: string;
  let shim: { proc: Proc; socket: string };
  let broker: BrokerHandle;

  before(async () => {
    dir = await tempDir();
  });
  after(async () => {
    await shim?.proc.kill();
    await broker?.proc.kill();
  });

  it('malformed HTTP/2 on the shim socket: descriptors are released, a live idle client is kept', async () => {
    shim = await startShim(dir, ['--insecure-dev-tenant', 'dev', '--broker', `127.0.0.1:${await freePort()}`, '--keepalive-ms', '1000']);
    const pid = shim.proc.child.pid as number;
    const kms = new KmsClient(shim.socket);
    await kms.status(1000).catch(() => undefined); // no broker: UNAVAILABLE, but the connection is up
    const channel = kms.client.getChannel();
    assert.equal(channel.getConnectivityState(false), grpc.connectivityState.READY);
    const baseline = await openFds(pid);

    // The test keeps its ends open: each one ends only when the shim closes its side.
    const closedByShim: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      const c = net.connect(shim.socket);
      c.on('error', () => undefined);
      c.resume(); // read (and drop) what the shim sends, so its close reaches us
      closedByShim.push(new Promise((resolve) => c.once('close', () => resolve())));
      const bytes = BROKEN[i % BROKEN.length] as Buffer;
      if (bytes.length) c.write(bytes);
    }
    await Promise.race([
      Promise.all(closedByShim),
      new Promise((_, reject) => setTimeout(() => reject(new Error('the shim kept malformed connections open')), 30_000).unref()),
    ]);
    await waitFor('the shim to release their descriptors', async () => (await openFds(pid)) <= baseline, 10_000, 200);

    // The well-behaved client was idle through several pings and kept its connection.
    assert.equal(channel.getConnectivityState(false), grpc.connectivityState.READY);
    const e = await kms.status(1000).then(() => undefined, (err: grpc.ServiceError) => err);
    assert.equal(e?.code, grpc.status.UNAVAILABLE);
    assert.match(e?.details ?? '', /no status from the broker yet \(broker 127\.0\.0\.1:\d+: status watch: .*ECONNREFUSED/);
    kms.close();
  });

  it('twenty status watchers on one keyring: no MaxListenersExceededWarning', async () => {
    const ports = await allocateBrokerPorts();
    broker = await startBroker(dir, devBrokerConfig(ports), ports, 'admin-secret-watch');
    const client = brokerClient(ports.grpc);
    const streams = Array.from({ length: 20 }, () => client.WatchStatus({ keyring: 'default' }, tenantMd('dev')));
    await Promise.all(streams.map((s) => new Promise<void>((resolve, reject) => s.once('data', () => resolve()).once('error', reject))));
    // A status change notifies every watcher (and would have printed the warning at the 11th listener).
    const r = await fetch(`http://127.0.0.1:${ports.admin}/v1/admin/keyrings/default/rotate`, { method: 'POST', headers: { authorization: 'Bearer admin-secret-watch' } });
    assert.ok(r.status < 500, `rotate: ${r.status}`);
    for (const s of streams) s.cancel();
    client.close();
    const logs = await broker.proc.logs();
    assert.doesNotMatch(logs, /MaxListenersExceededWarning/);
    for (const line of logs.split('\n').filter(Boolean)) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
  });
});

