#!/usr/bin/env node
'use strict';
// Launcher for the compiled CLI (`npm run build` writes dist/). From a checkout without a build, use
// `npm run rotor -- <args>` instead, which runs the TypeScript sources.
const { main } = require('../dist/cli/main.js');

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`rotor: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(70);
  },
);
