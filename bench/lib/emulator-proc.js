// An AWS KMS emulator in its own process, as the real KMS is never in the caller's process: a baseline call
// to it pays one cross-process hop, as the broker's calls do. The parent drives it over IPC: `fault(rule)`,
// `clearFaults()`, `close()`.
'use strict';
const { fork } = require('node:child_process');

if (require.main === module) {
  // Child side.
  const emulators = require('@kekbroker/emulators');
  emulators.startAwsKmsEmulator().then((aws) => {
    const key = aws.createKey();
    process.on('message', (m) => {
      if (m.op === 'fault') aws.faults.add(m.rule);
      else if (m.op === 'clear') aws.faults.clear();
      else if (m.op === 'close') return aws.close().then(() => process.exit(0));
      process.send({ done: m.id });
    });
    process.send({ ready: { endpoint: aws.endpoint, region: aws.region, keyArn: key.arn } });
  });
} else {
  module.exports = {
    /** Start the emulator process; resolves with { endpoint, region, keyArn, fault, clearFaults, close, pid }. */
    async startAwsEmulatorProcess() {
      const child = fork(__filename, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const info = await new Promise((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`the AWS emulator process exited ${code}`)));
        child.on('message', (m) => m.ready && resolve(m.ready));
      });
      let id = 0;
      const ask = (msg) => new Promise((resolve) => {
        const mine = ++id;
        const on = (m) => { if (m.done === mine) { child.off('message', on); resolve(); } };
        child.on('message', on);
        child.send({ ...msg, id: mine });
      });
      return {
        ...info,
        pid: child.pid,
        fault: (rule) => ask({ op: 'fault', rule }),
        clearFaults: () => ask({ op: 'clear' }),
        close: () => new Promise((resolve) => { child.removeAllListeners('exit'); child.once('exit', resolve); child.send({ op: 'close' }); }),
      };
    },
  };
}
