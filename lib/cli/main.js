'use strict';

// The operator command, `dnastore-breaker <command>` (bin/dnastore-breaker.js): parses the
// command line, runs one command, and answers its exit status: 0 done, 1 a failed check or
// operation, 2 a bad command line. Each command is one file of this folder.

const { Failure, UsageError, stdio } = require('./io');

const COMMANDS = {
  config: () => require('./config'),
  outbox: () => require('./outbox'),
  circuit: () => require('./circuit'),
};

const help = `Usage: dnastore-breaker <command> [options]

Commands:
  config     the effective configuration of a breaker, checked as createBreaker checks it
  outbox     the durable outbox: stats, list, dead, retry <id>, discard <id>, drain
  circuit    the fleet circuit: status, open, close, disable, enable

Every command takes --help, and --json for one JSON document on stdout (for scripts).
Exit status: 0 done; 1 a failed check or operation; 2 a bad command line.`;

/** Runs the command line `argv` (without node and the script); resolves the exit status. */
async function main(argv, io = stdio) {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    const cmd = name === 'help' && Object.hasOwn(COMMANDS, rest[0] ?? '') ? COMMANDS[rest[0]]() : null;
    io.out(cmd ? cmd.help : help);
    return 0;
  }
  if (name === '--version') {
    io.out(require('../../package.json').version);
    return 0;
  }
  if (name === undefined || !Object.hasOwn(COMMANDS, name)) {
    io.err(`dnastore-breaker: ${name === undefined ? 'which command?' : `unknown command ${JSON.stringify(name)}`}\n\n${help}`);
    return 2;
  }
  const json = rest.includes('--json');
  let cmd;
  try {
    cmd = COMMANDS[name]();
    return (await cmd.run(rest, io)) ?? 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`dnastore-breaker ${name}: ${err.message}\n${cmd.usage}\nRun 'dnastore-breaker ${name} --help' for more.`);
      return 2;
    }
    // A failed check, or an error from the addon (a store that cannot be read, the native
    // binary missing): its message, never a stack.
    const detail = err instanceof Failure ? err.detail : {};
    if (json && !detail.reported) {
      const { key, ...fields } = detail;
      io.out(JSON.stringify({ ok: false, ...fields, error: { message: err.message, ...(key ? { key } : {}) } }));
    }
    io.err(`dnastore-breaker ${name}: ${err.message}`);
    return 1;
  }
}

module.exports = { main };
