#!/usr/bin/env node
// An ACME challenge hook for rotor (rotor.yaml `hooks`), answering through Pebble's challenge test server, as the
// local stack runs it: http-01 answers and dns-01 TXT records are set with its management API. A hook for a real
// DNS provider or web root has the same shape: read the ROTOR_ACME_* variables, act on the last argument
// (`present` or `cleanup`), exit 0 once the answer is in place.
//
//   ROTOR_ACME_CHALLENGE   http-01 | dns-01
//   ROTOR_ACME_IDENTIFIER  the name being validated (orders.example.com)
//   ROTOR_ACME_TOKEN       http-01: the file name under /.well-known/acme-challenge/
//   ROTOR_ACME_CONTENT     http-01: the file's body; dns-01: the TXT record's value
//   ROTOR_ACME_DNS_NAME    dns-01: the TXT record's name (_acme-challenge.orders.example.com.)
//   ROTOR_ACME_ORDER       the order's URL, for logs
const action = process.argv.at(-1);
const api = process.env.ROTOR_CHALLTESTSRV ?? 'http://127.0.0.1:8055';
const { ROTOR_ACME_CHALLENGE: type, ROTOR_ACME_TOKEN: token, ROTOR_ACME_CONTENT: content } = process.env;
const { ROTOR_ACME_DNS_NAME: host } = process.env;

async function post(path, body) {
  const response = await fetch(`${api}${path}`, { method: 'POST', body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`${path} answered ${response.status}`);
}

const calls = {
  'http-01': { present: ['/add-http01', { token, content }], cleanup: ['/del-http01', { token }] },
  'dns-01': { present: ['/set-txt', { host, value: content }], cleanup: ['/clear-txt', { host }] },
};
const call = calls[type]?.[action];
if (!call) {
  process.stderr.write(`unknown challenge ${type} or action ${action}\n`);
  process.exit(2);
}
await post(...call);
process.stdout.write(`${action} ${type} for ${process.env.ROTOR_ACME_IDENTIFIER}\n`);
