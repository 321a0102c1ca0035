// The npm registry this project is built from serves only the Linux builds of turbo's per-platform
// packages, so `npm install` here cannot record the others, and `npm ci` then refuses the lock file as
// "out of sync". Re-add stub entries for the missing platforms (never fetched on Linux: os/cpu do not
// match). Idempotent; a no-op when the lock file already has them.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const file = path.join(__dirname, '..', 'package-lock.json');
const lock = JSON.parse(fs.readFileSync(file, 'utf8'));
const turbo = lock.packages['node_modules/turbo'];
let added = 0;
for (const [name, version] of Object.entries((turbo && turbo.optionalDependencies) || {})) {
  const key = `node_modules/${name}`;
  if (lock.packages[key]) continue;
  const [os, cpu] = name.replace('@turbo/', '').split('-');
  lock.packages[key] = { version, cpu: [cpu], dev: true, license: 'MIT', optional: true, os: [os === 'windows' ? 'win32' : os] };
  added++;
}
if (added) {
  fs.writeFileSync(file, JSON.stringify(lock, null, 2) + '\n');
  console.log(`lockfile-platforms: added ${added} platform stub(s) for turbo`);
}
