#!/usr/bin/env node
// The `kekctl` command (linked into node_modules/.bin by npm ci). Committed, so the link exists before the
// first build; it runs the compiled entry point, or says how to build it.
'use strict';
const path = require('node:path');
const main = path.join(__dirname, '..', 'dist', 'main.js');
try {
  require.resolve(main);
} catch {
  console.error('kekctl: not built yet (' + main + ' is missing); run `npm run build` in the kekbroker repository first');
  process.exit(1);
}
require(main);
