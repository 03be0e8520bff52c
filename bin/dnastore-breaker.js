#!/usr/bin/env node
'use strict';

// `npx dnastore-breaker <command>`: the operator's command (lib/cli/). Exit status 0 done,
// 1 a failed check or operation, 2 a bad command line.

require('../lib/cli/main')
  .main(process.argv.slice(2))
  .then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`dnastore-breaker: ${err && err.stack ? err.stack : err}\n`);
      process.exitCode = 1;
    },
  );
