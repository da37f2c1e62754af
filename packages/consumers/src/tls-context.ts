import { Agent, type AgentOptions } from 'node:https';
import { createSecureContext, type ConnectionOptions, type SecureContextOptions } from 'node:tls';
import { inspectTlsMaterial, TlsMaterialError, type CertificateFacts, type TlsRefusal } from './credentials/tls';
import { parseTrustBundle, tlsSchemas } from './credentials/tls-schema';
import { InvalidInputError, RotorError } from './errors';
import { parseJsonObject, validateShape } from './secret-json';
import type { SecretCache } from './secret-cache';

export interface RotatingTlsOptions {
  /** The cache the secrets are read through (its refresh interval is how soon a new version is seen). */
  cache: SecretCache;
  /** The `tls-certificate` secret this process serves, or presents as a client (mTLS). */
  certificate?: string;
  /**
   * The `tls-trust-bundle` secret of the CAs this process trusts: the servers it connects to, or the client
   * certificates it asks for. Without it, Node's root certificates.
   */
  trustBundle?: string;
  /** How often the cache is asked (default 5 s; a read costs nothing until the cache's own interval is due). */
  checkIntervalMs?: number;
  /** A new version was refused: the material in use keeps serving. Never given key material. */
  onRefused?: (event: TlsRefusalEvent) => void;
  /** The material in use changed (new handshakes use it). */
  onSwap?: (event: { serial?: string; notAfter?: Date; trustVersionId?: string }) => void;
  now?: () => number;
}

export interface TlsRefusalEvent {
  secretId: string;
  versionId: string;
  reason: TlsRefusal | 'invalid-secret';
  message: string;
}

/** What a RotatingTls serves now and has done, for metrics and health checks. */
export interface RotatingTlsStats {
  /** The serial of the certificate new handshakes get (absent without a certificate secret). */
  serial?: string;
  notAfter?: Date;
  certificateVersionId?: string;
  trustVersionId?: string;
  /** Trust anchors in use (0: Node's roots). */
  anchors: number;
  swaps: number;
  refusals: number;
}

interface Material {
  certificateVersionId?: string;
  trustVersionId?: string;
  key?: string;
  cert?: string;
  ca?: string[];
  facts?: CertificateFacts;
}

type SecureServer = { setSecureContext(options: SecureContextOptions): void };

/**
 * A TLS identity and trust that follow their secrets without a restart or a failed handshake: a server's certificate
 * (`serve` swaps it with `setSecureContext`, so new handshakes get the new one and open connections keep theirs), a
 * client's certificate and trusted CAs (`agent()`, `connectOptions()`), or both, for mTLS.
 *
 * A new version is validated before it is used, as a client would: the key is the certificate's, the chain holds
 * together and reaches the certificate secret's trust bundle, every certificate is within its validity, every name of
 * the secret is covered, and Node builds a secure context of it. A version that fails keeps the material in use
 * serving (`onRefused`, `stats().refusals`), and is tried again when the trust bundle changes (a CA rotation may
 * publish the bundle after a server saw the leaf).
 */
export class RotatingTls {
  readonly #options: RotatingTlsOptions;
  readonly #now: () => number;
  readonly #servers = new Set<SecureServer>();
  #material: Material = {};
  /** Agents of the material in use, by their options (as JSON): one per kind of use, until the material changes. */
  #agents?: { material: Material; byOptions: Map<string, Agent> };
  #refused?: { certificateVersionId?: string; trustKey?: string };
  /** A trust bundle version refused: not parsed again. */
  #refusedBundle?: string;
  #timer?: NodeJS.Timeout;
  #inFlight?: Promise<boolean>;
  #swaps = 0;
  #refusals = 0;

  private constructor(options: RotatingTlsOptions) {
    if (options.certificate === undefined && options.trustBundle === undefined)
      throw new InvalidInputError('RotatingTls: needs a certificate secret, a trust bundle secret, or both');
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Reads the secrets and starts following them. Throws when the first material cannot serve (nothing would), with
   * the reason and never a value.
   */
  static async start(options: RotatingTlsOptions): Promise<RotatingTls> {
    const tls = new RotatingTls(options);
    await tls.refresh();
    if (options.certificate !== undefined && tls.#material.cert === undefined)
      throw new InvalidInputError(`RotatingTls: secret ${options.certificate} holds no usable certificate yet`);
    // Without its bundle, Node would trust its public roots: never what a trust bundle was given for.
    if (options.trustBundle !== undefined && tls.#material.ca === undefined)
      throw new InvalidInputError(`RotatingTls: secret ${options.trustBundle} holds no usable trust bundle`);
    tls.#timer = setInterval(() => void tls.refresh().catch(() => undefined), options.checkIntervalMs ?? 5000);
    tls.#timer.unref();
    return tls;
  }

  /** The options of a secure context of the material in use: `key`, `cert` (with a certificate), `ca` (with a bundle). */
  secureContextOptions(): SecureContextOptions {
    const m = this.#material;
    return {
      ...(m.key !== undefined ? { key: m.key, cert: m.cert } : {}),
      ...(m.ca !== undefined ? { ca: m.ca } : {}),
    };
  }

  /** `tls.connect` options of the material in use (add `host`, `port`, `servername`). */
  connectOptions(): ConnectionOptions {
    return this.secureContextOptions();
  }

  /**
   * Swaps `server`'s secure context (an `https`, `tls` or `http2` secure server) whenever the material changes, from
   * now on. Create the server with `secureContextOptions()`; options outside the secure context (`requestCert`,
   * `rejectUnauthorized`) stay the server's.
   */
  serve<T extends SecureServer>(server: T): T {
    this.#servers.add(server);
    server.setSecureContext(this.secureContextOptions());
    return server;
  }

  /**
   * An HTTPS agent with the material in use and `options` (keepAlive, say): the same agent for the same options
   * until the material changes, then a new one, whose new connections use the new material. The previous agents'
   * requests finish on their connections. Ask for the agent at each request.
   */
  agent(options: AgentOptions = {}): Agent {
    // The previous material's agents are let go: their requests finish, their idle connections close as the
    // server's keep-alive timeout ends them.
    if (this.#agents?.material !== this.#material) this.#agents = { material: this.#material, byOptions: new Map() };
    const key = JSON.stringify(options);
    let agent = this.#agents.byOptions.get(key);
    if (!agent) {
      agent = new Agent({ ...options, ...this.secureContextOptions() });
      this.#agents.byOptions.set(key, agent);
    }
    return agent;
  }

  stats(): RotatingTlsStats {
    const m = this.#material;
    return {
      ...(m.facts ? { serial: m.facts.serial, notAfter: m.facts.notAfter } : {}),
      ...(m.certificateVersionId !== undefined ? { certificateVersionId: m.certificateVersionId } : {}),
      ...(m.trustVersionId !== undefined ? { trustVersionId: m.trustVersionId } : {}),
      anchors: m.ca?.length ?? 0,
      swaps: this.#swaps,
      refusals: this.#refusals,
    };
  }

  /** Asks the cache now; returns whether the material in use changed. A refresh in flight is joined. */
  refresh(): Promise<boolean> {
    this.#inFlight ??= this.#refresh().finally(() => (this.#inFlight = undefined));
    return this.#inFlight;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#servers.clear();
  }

  async #refresh(): Promise<boolean> {
    const { cache, certificate: certificateId, trustBundle: bundleId } = this.#options;
    const certificate = certificateId !== undefined ? await cache.get(certificateId) : undefined;
    const bundle = bundleId !== undefined ? await cache.get(bundleId) : undefined;
    const m = this.#material;
    const next: Material = { ...m };
    // The bundle and the certificate are taken apart: a bad version of one never holds back the other.
    if (bundle && bundle.versionId !== m.trustVersionId && bundle.versionId !== this.#refusedBundle) {
      try {
        const pems = parseTrustBundle(bundle.secretId, bundle.value).pems;
        createSecureContext({ ca: pems });
        next.ca = pems;
        next.trustVersionId = bundle.versionId;
      } catch (error) {
        this.#refusedBundle = bundle.versionId;
        this.#refuse(bundle.secretId, bundle.versionId, error);
      }
    }
    if (certificate && certificate.versionId !== m.certificateVersionId) {
      const accepted = await this.#accept(certificate.secretId, certificate.versionId, certificate.value);
      if (accepted) Object.assign(next, accepted);
    }
    if (next.certificateVersionId === m.certificateVersionId && next.trustVersionId === m.trustVersionId) return false;
    this.#material = next;
    this.#swaps++;
    for (const server of this.#servers) server.setSecureContext(this.secureContextOptions());
    this.#options.onSwap?.({
      ...(next.facts ? { serial: next.facts.serial, notAfter: next.facts.notAfter } : {}),
      ...(next.trustVersionId !== undefined ? { trustVersionId: next.trustVersionId } : {}),
    });
    return true;
  }

  /**
   * The material of a certificate version, validated against its own trust bundle (read through the cache) and by
   * Node (a secure context of it); undefined when refused. A refused version is tried again when that bundle's
   * version changes, or at every check when it was refused for its time (not yet valid: a clock behind the issuer's).
   */
  async #accept(secretId: string, versionId: string, value: string): Promise<Partial<Material> | undefined> {
    let trustKey: string | undefined;
    try {
      const secret = validateShape(secretId, tlsSchemas().certificate, parseJsonObject(secretId, value, versionId));
      const trust = secret.trust !== undefined ? await this.#options.cache.get(secret.trust) : undefined;
      trustKey = trust ? `${trust.secretId}@${trust.versionId}` : undefined;
      const refused = this.#refused;
      if (refused && refused.certificateVersionId === versionId && refused.trustKey === trustKey) return undefined;
      if (secret.certificate === undefined || secret.privateKey === undefined)
        throw new TlsMaterialError('malformed', 'holds no certificate yet', secretId);
      const facts = inspectTlsMaterial(
        { certificate: secret.certificate, privateKey: secret.privateKey },
        {
          secretId,
          names: secret.names,
          now: this.#now(),
          ...(trust ? { trust: parseTrustBundle(trust.secretId, trust.value).certificates } : {}),
        },
      );
      createSecureContext({ key: secret.privateKey, cert: secret.certificate });
      return { certificateVersionId: versionId, key: secret.privateKey, cert: secret.certificate, facts };
    } catch (error) {
      if (!(error instanceof TlsMaterialError && error.reason === 'not-yet-valid'))
        this.#refused = { certificateVersionId: versionId, ...(trustKey ? { trustKey } : {}) };
      this.#refuse(secretId, versionId, error);
      return undefined;
    }
  }

  #refuse(secretId: string, versionId: string, error: unknown): void {
    this.#refusals++;
    const reason = error instanceof TlsMaterialError ? error.reason : 'invalid-secret';
    // rotor's errors never quote values; any other (createSecureContext's OpenSSL text) is reduced to its code.
    const message =
      error instanceof RotorError
        ? error.message
        : `Node refused the material (${(error as NodeJS.ErrnoException).code ?? 'no code'})`;
    this.#options.onRefused?.({ secretId, versionId, reason, message });
  }
}
