// Build step: copy the .proto sources next to the compiled code (so a deployed package carries its
// contracts) and generate TypeScript types from them with proto-loader-gen-types. Nothing here is
// written by hand; src/generated is git-ignored.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '../../proto');
const files = ['k8s/kms/v2/api.proto', 'kekbroker/v1/broker.proto'];
fs.rmSync(path.join(__dirname, 'src/generated'), { recursive: true, force: true });
for (const f of files) {
  const dest = path.join(__dirname, 'dist/proto', f);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.copyFileSync(path.join(root, f), dest);
}
execFileSync(
  process.execPath,
  [require.resolve('@grpc/proto-loader/build/bin/proto-loader-gen-types.js'), '--grpcLib=@grpc/grpc-js', '--keepCase',
    '--longs=String', '--enums=String', '--defaults', '--oneofs', '--includeDirs', root, '--outDir', path.join(__dirname, 'src/generated'), ...files],
  { stdio: 'inherit' },
);
