#!/usr/bin/env node
/**
 * `npm run emulators`: start the AWS KMS, Google Cloud KMS and Azure Key Vault emulators on 127.0.0.1,
 * create one key in each, start the fault-control endpoint, and print a broker config that uses all three.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startAwsKmsEmulator } from './aws';
import { startAzureKeyVaultEmulator } from './azure';
import { startControlServer } from './control';
import { startGcpKmsEmulator } from './gcp';

const HELP = `npm run emulators [-- options]   local AWS KMS, GCP KMS and Azure Key Vault emulators with fault injection

Options:
  --aws-port N      (default 4566)     --gcp-port N     (default 4567)
  --azure-port N    (default 4568)     --control-port N (default 4569)
  --dir DIR         where to write the Azure test CA and the sample broker config (default: a temp dir)
  -h, --help

Faults (from another terminal):
  curl -XPOST localhost:4569/faults/aws -d '{"kind":"throttle","count":5}'
  curl -XPOST localhost:4569/faults/gcp -d '{"kind":"latency","ms":200}'
  curl -XPOST localhost:4569/faults/azure -d '{"kind":"outage"}'
  curl -XDELETE localhost:4569/faults/azure        # clear
  curl localhost:4569/calls/aws                     # calls seen per operation
Kinds: latency (ms), throttle, error, outage, corrupt; optional "key" (substring) and "count".`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'aws-port': { type: 'string' }, 'gcp-port': { type: 'string' }, 'azure-port': { type: 'string' }, 'control-port': { type: 'string' },
      dir: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const port = (v: string | undefined, d: number): number => (v === undefined ? d : Number(v));
  const dir = values.dir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'kekbroker-emulators-')));
  await fs.mkdir(dir, { recursive: true });

  const aws = await startAwsKmsEmulator({ port: port(values['aws-port'], 4566) });
  const awsKey = aws.createKey();
  aws.createAlias('alias/kekbroker-dev', awsKey.keyId);
  const gcp = await startGcpKmsEmulator({ port: port(values['gcp-port'], 4567) });
  const gcpKey = await gcp.createKey('kekbroker-dev', 'local', 'kekbroker', 'kek');
  const azure = await startAzureKeyVaultEmulator({ port: port(values['azure-port'], 4568) });
  await azure.createKey('kek', 'RSA', 3072);
  const caFile = path.join(dir, 'azure-emulator-ca.pem');
  await fs.writeFile(caFile, azure.caPem);
  const control = await startControlServer({ aws, gcp, azure }, port(values['control-port'], 4569));

  const config = `# Broker config using all three emulators (written by npm run emulators).
# Run: KEKBROKER_AWS_KEY=AKIDEXAMPLE KEKBROKER_AWS_SECRET=x node services/broker/dist/main.js --config ${path.join(dir, 'broker.yaml')}
grpc: { listen: "127.0.0.1:7443", insecureLoopback: true }
http: { listen: "127.0.0.1:7480" }
admin: { listen: "127.0.0.1:7481", tokenFile: ./admin.token }
providers:
  aws: { type: aws-kms, region: ${aws.region}, keyId: alias/kekbroker-dev, endpoint: "${aws.endpoint}", credentials: { source: env, accessKeyIdEnv: KEKBROKER_AWS_KEY, secretAccessKeyEnv: KEKBROKER_AWS_SECRET } }
  gcp: { type: gcp-kms, keyName: "${gcpKey}", endpoint: "${gcp.endpoint}", insecureLoopback: true }
  azure:
    type: azure-keyvault
    vaultUrl: "${azure.vaultUrl}"
    keyName: kek
    tlsCaFile: ${caFile}
    disableChallengeResourceVerification: true
    credential: { type: emulator }               # fixed fake token; refused unless vaultUrl is loopback
keyrings:
  default: { providers: [aws, gcp, azure] }      # every wrap sealed under all three clouds
tenants:
  dev: { keyrings: [default] }
`;
  await fs.writeFile(path.join(dir, 'broker.yaml'), config);
  await fs.writeFile(path.join(dir, 'admin.token'), 'dev-admin-token\n', { mode: 0o600 });
  console.log(`kekbroker emulators running (Ctrl-C stops them):
  AWS KMS        ${aws.endpoint}   key alias/kekbroker-dev (${awsKey.arn})
  GCP KMS        ${gcp.endpoint}   key ${gcpKey}
  Azure KV       ${azure.vaultUrl}   key kek (RSA-3072), test CA ${caFile}
  fault control  http://127.0.0.1:${control.port}   (npm run emulators -- --help)

Broker config using all three: ${path.join(dir, 'broker.yaml')}
${config}`);
  const stop = (): void => {
    void Promise.all([aws.close(), gcp.close(), azure.close(), control.close()]).then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((e: unknown) => {
  console.error(`emulators: ${(e as Error).message}`);
  process.exitCode = 1;
});
