import { isDeepStrictEqual } from 'node:util';
import { Stage } from '../stages';
import {
  InvalidInputError,
  SecretNotFoundError,
  StoreConflictError,
  StoreRejectedError,
  UnavailableError,
} from '../errors';
import { errorsOf, OpenBaoClient, type BaoResponse, type OpenBaoConnectionOptions } from './openbao-client';
import type { SecretDescription, SecretStore, StoredValue } from './secret-store';

export interface OpenBaoKvStoreOptions extends OpenBaoConnectionOptions {
  /**
   * The store's name in secret ids (default `bao`): `bao:secret/prod/db/orders` is the secret `prod/db/orders` of the
   * KV v2 engine mounted at `secret`. Ids without the prefix are read as `<mount>/<path>` too.
   */
  name?: string;
  /** The KV v2 mounts this store may use (default `['secret']`); an id names one of them first. */
  mounts?: string[];
}

/**
 * The keys rotor keeps in a secret's custom metadata, beside the secret's tags. `rotor-label:AWSCURRENT` = `7`: the
 * label is on KV version 7. `rotor-token:7` = `<uuid>`: version 7 is the version rotor wrote under that token (its
 * version id in rotor). A version rotor did not write has its number as version id.
 */
const LABEL_KEY = 'rotor-label:';
const TOKEN_KEY = 'rotor-token:';
const LABELS = [Stage.current, Stage.pending, Stage.previous] as const;
/** Attempts of one label change against concurrent writers (each re-reads and decides again). */
const MAX_CAS_ATTEMPTS = 8;

/** A secret's state as its metadata says. */
interface KvState {
  mount: string;
  path: string;
  currentVersion: number;
  /** The metadata's own version (OpenBao: check-and-set for metadata); undefined on servers without it. */
  metadataVersion?: number;
  tags: Record<string, string>;
  /** Versions neither deleted nor destroyed, oldest first. */
  live: number[];
  created: Map<number, Date>;
  labels: Map<Stage, number>;
  /** Whether AWSCURRENT is written down; without it, the latest live version holds it. */
  currentWritten: boolean;
  tokens: Map<number, string>;
}

/**
 * SecretStore on an OpenBao or HashiCorp Vault KV v2 engine (the same HTTP API; tested on OpenBao).
 *
 * Each version of the secret is a KV version whose data is the secret's JSON object (what `bao kv get` shows, field
 * by field). AWS's staging labels live in the secret's custom metadata (`rotor-label:<label>` = the KV version),
 * with the version ids rotor chose (`rotor-token:<version>`), beside the tags. Until rotor writes labels, the
 * latest version is AWSCURRENT, as readers of KV expect.
 *
 * Concurrency: a version is written with check-and-set on the secret's current version, and every label change
 * with check-and-set on the metadata's version (OpenBao's `metadata_cas`); a writer that loses the race reads the
 * state again and decides again, so two workers racing converge on one outcome and never lose a move. Servers
 * without metadata check-and-set (HashiCorp Vault) get last-writer-wins label writes: rotor's one rotation per
 * secret is then the only serialisation.
 */
export class OpenBaoKvStore implements SecretStore {
  readonly description: string;
  readonly name: string;
  readonly #client: OpenBaoClient;
  readonly #mounts: string[];

  constructor(options: OpenBaoKvStoreOptions) {
    this.#client = new OpenBaoClient(options);
    this.name = options.name ?? 'bao';
    if (!/^[a-z][a-z0-9-]*$/.test(this.name) || this.name === 'arn')
      throw new InvalidInputError(`store name ${JSON.stringify(this.name)}: lower-case letters, digits and -, not arn`);
    this.#mounts = (options.mounts ?? ['secret']).map((m) => m.replace(/^\/+|\/+$/g, ''));
    if (this.#mounts.some((m) => !m)) throw new InvalidInputError('OpenBao store: a mount is empty');
    this.description = `OpenBao KV v2 at ${this.#client.address}${options.namespace ? ` (namespace ${options.namespace})` : ''}`;
  }

  /** Closes the store's idle connections. */
  close(): void {
    this.#client.close();
  }

  async describe(secretId: string): Promise<SecretDescription> {
    const state = await this.#state(secretId);
    return {
      secretId,
      arn: `${this.name}:${state.mount}/${state.path}`,
      versions: state.live.map((n) => ({
        versionId: versionIdOf(state, n),
        stages: stagesOf(state, n),
        createdAt: state.created.get(n),
      })),
      tags: state.tags,
    };
  }

  async getByStage(secretId: string, stage: Stage): Promise<StoredValue | undefined> {
    const state = await this.#state(secretId);
    const n = state.labels.get(stage);
    return n === undefined ? undefined : this.#read(secretId, state, n);
  }

  async getByVersion(secretId: string, versionId: string): Promise<StoredValue | undefined> {
    const state = await this.#state(secretId);
    const n = resolve(state, versionId);
    return n === undefined ? undefined : this.#read(secretId, state, n);
  }

  async putPending(secretId: string, token: string, value: string): Promise<void> {
    const data = kvData(secretId, value);
    for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
      const state = await this.#state(secretId);
      const mine = resolve(state, token);
      if (mine !== undefined) {
        const existing = await this.#read(secretId, state, mine);
        if (!existing || !isDeepStrictEqual(JSON.parse(existing.value), data))
          throw new StoreConflictError(secretId, `version ${token} already exists with another value`);
        return this.moveStage(secretId, Stage.pending, token);
      }
      if (!state.currentWritten) {
        // Write AWSCURRENT down before a new version becomes the latest, or the latest would be taken for it.
        await this.#change(secretId, state, (s) => s);
        continue;
      }
      // A version this token wrote before a crash, whose metadata was never written: the latest, unclaimed, equal.
      const latest = state.live.at(-1);
      if (latest !== undefined && !state.tokens.has(latest) && stagesOf(state, latest).length === 0) {
        const orphan = await this.#read(secretId, state, latest);
        if (orphan && isDeepStrictEqual(JSON.parse(orphan.value), data)) {
          await this.#claim(secretId, state, latest, token);
          return;
        }
      }
      const written = await this.#client.request('POST', `${state.mount}/data/${state.path}`, secretId, {
        options: { cas: state.currentVersion },
        data,
      });
      if (isCasMismatch(written)) continue;
      this.#check(secretId, written, 'write a version');
      const n = (written.body?.data as { version?: number } | undefined)?.version;
      if (typeof n !== 'number') throw new UnavailableError(secretId, `${this.description} wrote no version number`);
      await this.#claim(secretId, await this.#state(secretId), n, token);
      return;
    }
    throw new UnavailableError(secretId, `${this.description}: other writers kept changing the secret`);
  }

  async moveStage(secretId: string, stage: Stage, versionId: string): Promise<void> {
    await this.#changeLabels(secretId, (state) => {
      const n = resolve(state, versionId);
      if (n === undefined)
        throw new StoreConflictError(secretId, `cannot move ${stage} to version ${versionId}: no such version`);
      const holder = state.labels.get(stage);
      if (holder === n) return false;
      state.labels.set(stage, n);
      if (stage === Stage.current && holder !== undefined) state.labels.set(Stage.previous, holder);
      return true;
    });
  }

  async removeStage(secretId: string, stage: Stage, versionId: string): Promise<void> {
    await this.#changeLabels(secretId, (state) => {
      const n = resolve(state, versionId);
      if (n === undefined || state.labels.get(stage) !== n) return false;
      if (stage === Stage.current)
        throw new StoreConflictError(secretId, `${Stage.current} cannot be removed, only moved`);
      state.labels.delete(stage);
      return true;
    });
  }

  /** Records version `n` as `token`'s, with AWSPENDING (taken from its holder). */
  async #claim(secretId: string, state: KvState, n: number, token: string): Promise<void> {
    let current: KvState | undefined = state;
    for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
      current ??= await this.#state(secretId);
      const claimed = current.tokens.get(n);
      if (claimed !== undefined && claimed !== token)
        throw new StoreConflictError(secretId, `version ${n} was claimed by another writer`);
      if (claimed === token && current.labels.get(Stage.pending) === n) return;
      const next = await this.#change(secretId, current, (s) => {
        s.tokens.set(n, token);
        s.labels.set(Stage.pending, n);
        return s;
      });
      if (next) return;
      current = undefined;
    }
    throw new UnavailableError(secretId, `${this.description}: other writers kept changing the labels`);
  }

  /** Applies `edit` (which says whether it changed anything) to fresh state until the write is not overtaken. */
  async #changeLabels(secretId: string, edit: (state: KvState) => boolean): Promise<void> {
    for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
      const state = await this.#state(secretId);
      if (!edit(state)) return;
      if (await this.#change(secretId, state, (s) => s)) return;
    }
    throw new UnavailableError(secretId, `${this.description}: other writers kept changing the labels`);
  }

  /**
   * Writes the state's labels and tokens into the custom metadata, with check-and-set on the metadata's version.
   * Returns the state written, or undefined when another writer changed the metadata first.
   */
  async #change(secretId: string, state: KvState, edit: (s: KvState) => KvState): Promise<KvState | undefined> {
    const next = edit(state);
    const custom: Record<string, string> = { ...next.tags };
    for (const [stage, n] of next.labels) if (next.live.includes(n)) custom[LABEL_KEY + stage] = String(n);
    for (const [n, token] of next.tokens) if (next.live.includes(n)) custom[TOKEN_KEY + n] = token;
    const body: Record<string, unknown> = { custom_metadata: custom };
    if (next.metadataVersion !== undefined) body.metadata_cas = next.metadataVersion;
    // POST replaces the custom metadata as a whole (labels of versions that left go with it) and keeps the
    // metadata's other settings.
    const answer = await this.#client.request('POST', `${next.mount}/metadata/${next.path}`, secretId, body);
    if (isCasMismatch(answer)) return undefined;
    this.#check(secretId, answer, 'write its labels');
    return next;
  }

  async #read(secretId: string, state: KvState, n: number): Promise<StoredValue | undefined> {
    const answer = await this.#client.request('GET', `${state.mount}/data/${state.path}?version=${n}`, secretId);
    if (answer.status === 404) return undefined;
    this.#check(secretId, answer, 'read a version');
    const body = answer.body?.data as { data?: unknown; metadata?: { deletion_time?: string; destroyed?: boolean } };
    if (!body?.data || typeof body.data !== 'object') return undefined;
    return { versionId: versionIdOf(state, n), stages: stagesOf(state, n), value: JSON.stringify(body.data) };
  }

  async #state(secretId: string): Promise<KvState> {
    const { mount, path } = this.#locate(secretId);
    const answer = await this.#client.request('GET', `${mount}/metadata/${path}`, secretId);
    if (answer.status === 404) throw new SecretNotFoundError(secretId, this.description);
    this.#check(secretId, answer, 'describe it');
    const meta = answer.body?.data as {
      current_version: number;
      current_metadata_version?: number;
      custom_metadata: Record<string, string> | null;
      versions: Record<string, { created_time: string; deletion_time: string; destroyed: boolean }>;
    };
    const live: number[] = [];
    const created = new Map<number, Date>();
    for (const [key, v] of Object.entries(meta.versions ?? {})) {
      const n = Number(key);
      if (!Number.isInteger(n) || v.destroyed || v.deletion_time) continue;
      live.push(n);
      created.set(n, new Date(v.created_time));
    }
    live.sort((a, b) => a - b);
    const tags: Record<string, string> = {};
    const labels = new Map<Stage, number>();
    const tokens = new Map<number, string>();
    for (const [key, value] of Object.entries(meta.custom_metadata ?? {})) {
      if (key.startsWith(LABEL_KEY)) {
        const stage = key.slice(LABEL_KEY.length) as Stage;
        const n = Number(value);
        if ((LABELS as readonly string[]).includes(stage) && live.includes(n)) labels.set(stage, n);
      } else if (key.startsWith(TOKEN_KEY)) {
        const n = Number(key.slice(TOKEN_KEY.length));
        if (live.includes(n)) tokens.set(n, value);
      } else tags[key] = value;
    }
    const currentWritten = labels.has(Stage.current);
    if (!currentWritten && live.length) labels.set(Stage.current, live.at(-1)!);
    return {
      mount,
      path,
      currentVersion: meta.current_version,
      metadataVersion: meta.current_metadata_version,
      tags,
      live,
      created,
      labels,
      currentWritten,
      tokens,
    };
  }

  /** The mount and path of an id: `[<name>:]<mount>/<path>`, the mount one of this store's. */
  #locate(secretId: string): { mount: string; path: string } {
    const local = secretId.startsWith(`${this.name}:`) ? secretId.slice(this.name.length + 1) : secretId;
    const mount = this.#mounts
      .filter((m) => local.startsWith(`${m}/`))
      .sort((a, b) => b.length - a.length)
      .at(0);
    if (!mount)
      throw new InvalidInputError(
        `secret ${secretId}: an id on ${this.description} is ${this.name}:<mount>/<path>, the mount one of ${this.#mounts.join(', ')}`,
      );
    const path = local.slice(mount.length + 1);
    const segments = path.split('/');
    if (!path || segments.some((s) => !s || s === '.' || s === '..' || /[?#%\\]/.test(s) || hasControlCharacter(s)))
      throw new InvalidInputError(`secret ${secretId}: the path after ${mount}/ is not a KV path`);
    return { mount, path: segments.map(encodeURIComponent).join('/') };
  }

  #check(secretId: string, answer: BaoResponse, what: string): void {
    const { status } = answer;
    if (status >= 200 && status < 300) return;
    if (status === 429 || status >= 500 || status === 0)
      throw new UnavailableError(secretId, `${this.description} did not ${what} (HTTP ${status}${errorsOf(answer)})`);
    if (status === 401 || status === 403)
      throw new StoreRejectedError(
        secretId,
        `${this.description} refused to ${what} (HTTP ${status}${errorsOf(answer)}): check the token's policy`,
      );
    if (status === 412)
      // Vault/OpenBao answer 412 while a standby has not caught up with a write: it passes.
      throw new UnavailableError(secretId, `${this.description} had not caught up (HTTP 412)`);
    throw new StoreConflictError(
      secretId,
      `${this.description} refused to ${what} (HTTP ${status}${errorsOf(answer)})`,
    );
  }
}

function hasControlCharacter(text: string): boolean {
  return [...text].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f);
}

/** The labels on version `n`. */
function stagesOf(state: KvState, n: number): string[] {
  return LABELS.filter((stage) => state.labels.get(stage) === n);
}

function versionIdOf(state: KvState, n: number): string {
  return state.tokens.get(n) ?? String(n);
}

/** The KV version a version id names: a token rotor recorded, or a version number. */
function resolve(state: KvState, versionId: string): number | undefined {
  for (const [n, token] of state.tokens) if (token === versionId) return n;
  if (!/^[1-9][0-9]*$/.test(versionId)) return undefined;
  const n = Number(versionId);
  return state.live.includes(n) && !state.tokens.has(n) ? n : undefined;
}

function isCasMismatch(answer: BaoResponse): boolean {
  return answer.status === 400 && (answer.body?.errors ?? []).some((e) => /check-and-set/i.test(e));
}

/** The KV data of a value: KV v2 keeps a JSON object per version. */
function kvData(secretId: string, value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new StoreConflictError(secretId, 'OpenBao KV v2 keeps a JSON object per version, and this value is not one');
  return parsed as Record<string, unknown>;
}
