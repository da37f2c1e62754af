#!/usr/bin/env node
// The ACME hook of the tests: records each call (action, order URL, token) in ROTOR_TEST_ACME_LOG, holds `present`
// while ROTOR_TEST_ACME_HOLD names a directory (writes `held`, waits for `release`), then does what the example hook
// for Pebble's challenge test server does.
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const action = process.argv.at(-1);
const { ROTOR_TEST_ACME_LOG: log, ROTOR_TEST_ACME_HOLD: hold } = process.env;
if (log) appendFileSync(log, `${action} ${process.env.ROTOR_ACME_ORDER} ${process.env.ROTOR_ACME_TOKEN}\n`);
if (hold && action === 'present' && !existsSync(path.join(hold, 'release'))) {
  writeFileSync(path.join(hold, 'held'), process.env.ROTOR_ACME_ORDER ?? '');
  while (!existsSync(path.join(hold, 'release'))) await sleep(100);
}
await import('../../examples/acme-hooks/challtestsrv.mjs');
