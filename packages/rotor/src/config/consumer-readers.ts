import { isIP } from 'node:net';
import { bakeProblems, DEFAULT_BAKE, type BakePolicy } from '../shared/bake';
import { DEFAULT_IPV6_INSTANCE_PREFIX, normalizeAddress } from '../shared/addresses';
import { describe, type Checker, type Node } from './checker';
import type { ReportTokenConfig, RotorConfig } from './types';

/* rotor.yaml's consumer sections: `reports` (the endpoint consumers report to) and `bake` (automatic rollback). */

const REPORTS_KEYS = ['port', 'host', 'tokens', 'tls', 'trustedProxies', 'ipv6InstancePrefix', 'forwardEvery'];
const TOKEN_KEYS = ['name', 'tokenFromEnv', 'secrets', 'requestsPerSecond', 'maxLeases'];
const TLS_KEYS = ['certFile', 'keyFile'];
const BAKE_KEYS = ['window', 'minEvents', 'minInstances', 'maxFailureShare', 'maxWindow', 'maxAutoRollbacksPerDay'];
const TOKEN_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MIN_BAKE_WINDOW_MS = 1000;
export const DEFAULT_REPORTS: RotorConfig['reports'] = {
  port: 0,
  host: '127.0.0.1',
  tokens: [],
  trustedProxies: [],
  ipv6InstancePrefix: DEFAULT_IPV6_INSTANCE_PREFIX,
  forwardEveryMs: 5000,
};
export const DEFAULT_REQUESTS_PER_SECOND = 50;
export const DEFAULT_MAX_LEASES = 100;

/**
 * `reports`: port 0 (the default) serves no endpoint; each token names the secrets it may report on. The endpoint
 * listens on 127.0.0.1 unless `host` says otherwise, and serves HTTPS with `tls`.
 */
export function readReports(c: Checker, node: Node): RotorConfig['reports'] {
  const section = c.settings(node, REPORTS_KEYS);
  const port = c.integer(section.at('port'), 0, 65_535) ?? DEFAULT_REPORTS.port;
  const host = c.string(section.at('host')) ?? DEFAULT_REPORTS.host;
  const forwardEveryMs = c.duration(section.at('forwardEvery'), 100) ?? DEFAULT_REPORTS.forwardEveryMs;
  const ipv6InstancePrefix = c.integer(section.at('ipv6InstancePrefix'), 32, 128) ?? DEFAULT_REPORTS.ipv6InstancePrefix;
  const tlsSection = section.has('tls') ? c.section(section.at('tls'), TLS_KEYS) : undefined;
  let tls: RotorConfig['reports']['tls'];
  if (tlsSection) {
    c.present(tlsSection.at('certFile'), ' (a PEM file with the certificate chain)');
    c.present(tlsSection.at('keyFile'), ' (a PEM file with its private key)');
    const certFile = c.string(tlsSection.at('certFile'));
    const keyFile = c.string(tlsSection.at('keyFile'));
    if (certFile && keyFile) tls = { certFile, keyFile };
  }
  const trustedProxies: string[] = [];
  for (const item of c.list(section.at('trustedProxies')) ?? []) {
    const address = c.string(item);
    if (address === undefined) continue;
    if (isIP(address) === 0) c.add(item.path, `${describe(address)} is not an IP address`);
    else trustedProxies.push(normalizeAddress(address));
  }
  const tokens: ReportTokenConfig[] = [];
  for (const item of c.list(section.at('tokens')) ?? []) {
    const token = c.section(item, TOKEN_KEYS);
    if (!token) continue;
    const name = c.string(token.at('name'));
    if (name !== undefined && !TOKEN_NAME.test(name))
      c.add(token.at('name').path, `${JSON.stringify(name)} is not a token name (1 to 63 of a-z, 0-9, _ and -)`);
    else if (name !== undefined && tokens.some((t) => t.name === name))
      c.add(token.at('name').path, `${JSON.stringify(name)} is declared twice`);
    const tokenFromEnv = c.string(token.at('tokenFromEnv'));
    if (tokenFromEnv !== undefined && !ENV_NAME.test(tokenFromEnv))
      c.add(token.at('tokenFromEnv').path, `${JSON.stringify(tokenFromEnv)} is not an environment variable name`);
    const secrets = readScopes(c, token.at('secrets'));
    const requestsPerSecond = c.integer(token.at('requestsPerSecond'), 1, 100_000) ?? DEFAULT_REQUESTS_PER_SECOND;
    const maxLeases = c.integer(token.at('maxLeases'), 0, 100_000) ?? DEFAULT_MAX_LEASES;
    c.present(token.at('name'));
    c.present(
      token.at('tokenFromEnv'),
      ' (the environment variable holding the token: tokens are never written in rotor.yaml)',
    );
    c.present(token.at('secrets'), ' (the secret ids, or prefixes ending in /*, this token may report on)');
    if (name && tokenFromEnv && secrets) tokens.push({ name, tokenFromEnv, secrets, requestsPerSecond, maxLeases });
  }
  if (port > 0 && tokens.length === 0)
    c.add(
      section.at('tokens').path,
      'is required when reports.port is set: the endpoint takes reports only with a token',
    );
  return { port, host, tokens, trustedProxies, ipv6InstancePrefix, forwardEveryMs, ...(tls ? { tls } : {}) };
}

/**
 * Secret ids, or prefixes of whole path segments: `prod/db/*` covers `prod/db/orders` and `prod/db/x/y`, never
 * `prod/dbx`; `*` alone covers every secret. A `*` anywhere else is refused: `prod/db/payments*` would also cover
 * `prod/db/payments-ledger-admin`.
 */
function readScopes(c: Checker, node: Node): string[] | undefined {
  const items = c.list(node);
  if (!items) return undefined;
  if (items.length === 0) return c.add(node.path, 'is empty; list the secrets this token may report on');
  const scopes: string[] = [];
  for (const item of items) {
    const scope = c.string(item);
    if (scope === undefined) continue;
    const star = scope.indexOf('*');
    if (scope === '' || (star !== -1 && !(scope === '*' || (star === scope.length - 1 && scope.endsWith('/*')))))
      c.add(
        item.path,
        `${describe(scope)} is not a secret id, a prefix of whole path segments ending in /* (prod/db/*) or *: ` +
          'a * after part of a name would also cover every id that merely starts with it',
      );
    else scopes.push(scope);
  }
  return scopes;
}

/**
 * `bake`: `false` turns off a default; otherwise a window (required), and the thresholds with their defaults. The
 * window must fit in grace: the previous credential has to keep working while the evidence comes in.
 */
export function readBake(c: Checker, node: Node, graceMs: number | undefined): BakePolicy | false | undefined {
  if (node.value === false) return false;
  const section = c.section(node, BAKE_KEYS);
  if (!section) return undefined;
  c.present(section.at('window'));
  const windowMs = c.duration(section.at('window'), MIN_BAKE_WINDOW_MS);
  const maxWindowMs = c.duration(section.at('maxWindow'), MIN_BAKE_WINDOW_MS);
  const share = section.at('maxFailureShare');
  let maxFailureShare: number | undefined;
  if (share.value !== undefined) {
    if (typeof share.value === 'number' && share.value >= 0 && share.value < 1) maxFailureShare = share.value;
    else c.add(share.path, `expected a share from 0 to below 1 (0.2 for 20 %), got ${describe(share.value)}`);
  }
  const policy = {
    windowMs: windowMs ?? 0,
    minEvents: c.integer(section.at('minEvents'), 1, 1_000_000) ?? DEFAULT_BAKE.minEvents,
    minInstances: c.integer(section.at('minInstances'), 1, 10_000) ?? DEFAULT_BAKE.minInstances,
    maxFailureShare: maxFailureShare ?? DEFAULT_BAKE.maxFailureShare,
    maxWindowMs: maxWindowMs ?? (windowMs ?? 0) * 4,
    maxAutoRollbacksPerDay:
      c.integer(section.at('maxAutoRollbacksPerDay'), 0, 100) ?? DEFAULT_BAKE.maxAutoRollbacksPerDay!,
  };
  if (windowMs === undefined) return undefined;
  for (const problem of bakeProblems(policy, graceMs)) c.add(section.at(problem.field).path, problem.message);
  return policy;
}
