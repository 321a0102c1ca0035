/**
 * deploy/kubernetes renders with `kubectl kustomize` (when kubectl is installed) and every rendered
 * workload meets the production bar: expected kinds, probes, pinned images (no :latest), non-root,
 * seccomp RuntimeDefault, read-only root filesystem, resource limits. The static pod is checked too.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { REPO } from '../helpers/processes';

const K8S = path.join(REPO, 'deploy/kubernetes');
const HAVE_KUBECTL = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;

interface Obj {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
}
interface Container {
  name: string;
  image: string;
  livenessProbe?: unknown;
  readinessProbe?: unknown;
  resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
  securityContext?: { runAsUser?: number; runAsNonRoot?: boolean; readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[] } };
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
  volumes?: { secret?: { secretName: string } }[];
}

function render(dir: string): Obj[] {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `kubectl kustomize ${dir}:\n${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj);
}

function podSpec(o: Obj): PodSpec | undefined {
  if (o.kind === 'Pod') return o.spec as unknown as PodSpec;
  const t = (o.spec as { template?: { spec: PodSpec } } | undefined)?.template;
  return t?.spec;
}

/** The production bar for every workload; `what` names it in failures. */
function checkWorkload(o: Obj): void {
  const spec = podSpec(o);
  if (!spec) return;
  const what = `${o.kind}/${o.metadata.name}`;
  assert.equal(spec.securityContext?.runAsNonRoot, true, `${what}: pod runAsNonRoot`);
  assert.ok((spec.securityContext?.runAsUser ?? 0) > 0, `${what}: pod runAsUser is not root`);
  assert.equal(spec.securityContext?.seccompProfile?.type, 'RuntimeDefault', `${what}: seccomp RuntimeDefault`);
  for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
    const cw = `${what} container ${c.name}`;
    assert.match(c.image, /^[^:@]+(:[^:]+|@sha256:[0-9a-f]{64})$/, `${cw}: image ${c.image} has a tag or digest`);
    assert.doesNotMatch(c.image, /:latest$/, `${cw}: no :latest`);
    assert.ok(c.resources?.limits?.['memory'], `${cw}: memory limit`);
    assert.ok(c.resources?.requests?.['cpu'] && c.resources.requests['memory'], `${cw}: cpu and memory requests`);
    assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${cw}: allowPrivilegeEscalation false`);
    assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${cw}: readOnlyRootFilesystem`);
    assert.ok(c.securityContext?.capabilities?.drop?.includes('ALL'), `${cw}: drops ALL capabilities`);
  }
  for (const c of spec.containers) {
    assert.ok(c.livenessProbe, `${what} container ${c.name}: livenessProbe`);
    assert.notEqual(c.securityContext?.runAsUser, 0, `${what} container ${c.name}: runs as non-root`);
  }
}

describe('deploy/kubernetes manifests', () => {
  it('kubectl is installed (the render checks below need it)', { skip: HAVE_KUBECTL ? false : 'kubectl not on PATH: manifests not rendered' }, () => {
    assert.ok(HAVE_KUBECTL);
  });

  it('overlays/production: broker Deployment (3 replicas, probes, anti-affinity), Service, PDB, ConfigMap, shim DaemonSet', { skip: !HAVE_KUBECTL && 'kubectl not on PATH' }, () => {
    const objs = render(path.join(K8S, 'overlays/production'));
    const kinds = objs.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    for (const k of ['Namespace/kekbroker', 'Deployment/kekbroker-broker', 'Service/kekbroker-broker', 'PodDisruptionBudget/kekbroker-broker', 'ServiceAccount/kekbroker-broker', 'DaemonSet/kekbroker-kms-shim']) {
      assert.ok(kinds.includes(k), `${k} rendered (got ${kinds.join(', ')})`);
    }
    assert.ok(kinds.some((k) => k.startsWith('ConfigMap/kekbroker-broker-config')), 'broker config as a ConfigMap');
    for (const o of objs) if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'kekbroker', `${o.kind}/${o.metadata.name} namespace`);
    for (const o of objs) checkWorkload(o);

    const d = objs.find((o) => o.kind === 'Deployment') as Obj;
    const spec = d.spec as { replicas: number; template: { spec: PodSpec & { affinity?: { podAntiAffinity?: unknown } } } };
    assert.equal(spec.replicas, 3);
    assert.ok(spec.template.spec.affinity?.podAntiAffinity, 'pod anti-affinity');
    const broker = spec.template.spec.containers[0] as Container & { livenessProbe: { httpGet: { path: string } }; readinessProbe: { httpGet: { path: string } }; env: { valueFrom?: { secretKeyRef?: unknown } }[] };
    assert.equal(broker.livenessProbe.httpGet.path, '/healthz');
    assert.equal(broker.readinessProbe.httpGet.path, '/readyz');
    assert.ok(broker.env.every((e) => e.valueFrom?.secretKeyRef), 'secrets only by reference');
    const pdb = objs.find((o) => o.kind === 'PodDisruptionBudget') as Obj;
    assert.deepEqual((pdb.spec as { selector: unknown }).selector, (d.spec as { selector: unknown }).selector, 'PDB selects the broker pods');

    // The ConfigMap holds a config the broker accepts (provider credentials come from env at run time).
    const cm = objs.find((o) => o.kind === 'ConfigMap') as Obj & { data: Record<string, string> };
    assert.match(cm.data['kekbroker.yaml'] ?? '', /tokenFile: \/etc\/kekbroker\/admin\/token/);
  });

  it('overlays/production-cert-manager adds the CA, broker and shim Certificates into the mounted Secrets', { skip: !HAVE_KUBECTL && 'kubectl not on PATH' }, () => {
    const objs = render(path.join(K8S, 'overlays/production-cert-manager'));
    const certs = objs.filter((o) => o.kind === 'Certificate').map((o) => (o.spec as { secretName: string }).secretName).sort();
    assert.deepEqual(certs, ['kekbroker-broker-tls', 'kekbroker-ca', 'kekbroker-shim-tls']);
    const mounted = objs.flatMap((o) => (podSpec(o)?.volumes ?? []).map((v) => v.secret?.secretName).filter(Boolean));
    for (const s of ['kekbroker-broker-tls', 'kekbroker-shim-tls']) assert.ok(mounted.includes(s), `${s} is mounted`);
  });

  it('every overlay renders, and every workload in it meets the bar', { skip: !HAVE_KUBECTL && 'kubectl not on PATH' }, async () => {
    const overlays = await fs.readdir(path.join(K8S, 'overlays'));
    assert.ok(overlays.length >= 4, overlays.join(', '));
    for (const o of overlays) {
      const objs = render(path.join(K8S, 'overlays', o));
      assert.ok(objs.length > 0, `${o} renders objects`);
      for (const obj of objs) checkWorkload(obj);
    }
  });

  it('overlays/redis-sentinel: 3 Redis+Sentinel pods, password by reference; redis-external: a stable name', { skip: !HAVE_KUBECTL && 'kubectl not on PATH' }, () => {
    const objs = render(path.join(K8S, 'overlays/redis-sentinel'));
    const sts = objs.find((o) => o.kind === 'StatefulSet') as Obj;
    assert.equal((sts.spec as { replicas: number }).replicas, 3);
    const spec = podSpec(sts) as PodSpec & { containers: (Container & { env: { name: string; valueFrom?: { secretKeyRef?: { name: string } } }[] })[] };
    assert.deepEqual(spec.containers.map((c) => c.name), ['redis', 'sentinel']);
    for (const c of spec.containers) assert.equal(c.env.find((e) => e.name === 'REDIS_PASSWORD')?.valueFrom?.secretKeyRef?.name, 'kekbroker-redis');
    assert.ok(objs.some((o) => o.kind === 'PodDisruptionBudget'));
    const ext = render(path.join(K8S, 'overlays/redis-external'));
    assert.deepEqual(ext.map((o) => `${o.kind}/${o.metadata.name}`), ['Service/kekbroker-redis']);
  });

  it('deploy/monitoring renders the rules, monitors and dashboard ConfigMap', { skip: !HAVE_KUBECTL && 'kubectl not on PATH' }, () => {
    const kinds = render(path.join(REPO, 'deploy/monitoring')).map((o) => o.kind).sort();
    assert.deepEqual(kinds, ['ConfigMap', 'PodMonitor', 'PrometheusRule', 'PrometheusRule', 'PrometheusRule', 'PrometheusRule', 'PrometheusRule', 'ServiceMonitor']);
  });

  it('the kubeadm static pod meets the same bar, and the apiserver wiring mounts the socket folder', async () => {
    const pod = parseAllDocuments(await fs.readFile(path.join(K8S, 'static-pod/kekbroker-kms-shim.yaml'), 'utf8')).map((d) => d.toJS() as Obj);
    assert.equal(pod.length, 1);
    checkWorkload(pod[0] as Obj);
    const enc = await fs.readFile(path.join(K8S, 'apiserver/encryption-config.yaml'), 'utf8');
    const socket = /endpoint: unix:\/\/(\S+)/.exec(enc)?.[1] as string;
    const kubeadm = await fs.readFile(path.join(K8S, 'apiserver/kubeadm-config.yaml'), 'utf8');
    assert.ok(kubeadm.includes(`mountPath: ${path.dirname(socket)}`), 'kube-apiserver mounts the socket folder');
    assert.ok(JSON.stringify(pod).includes(`--socket=${socket}`), 'the static pod serves the socket the EncryptionConfiguration names');
  });
});
