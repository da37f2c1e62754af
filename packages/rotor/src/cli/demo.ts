import { randomBytes } from 'node:crypto';
import { CreateSecretCommand, ResourceExistsException, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { NativeConnection } from '@temporalio/worker';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { Client as PgClient, escapeIdentifier } from 'pg';
import { RotationClient } from '../client';
import { parsePostgresSecret } from '../rotators/postgres/single-user';
import { canLogIn, setRolePassword } from '../rotators/postgres/connection';
import { AwsSecretsManagerStore } from 'rotor-consumers/stores';
import { Stage } from '../shared/constants';
import { formatDuration } from 'rotor-consumers/core';
import { InvalidInputError } from 'rotor-consumers/core';
import { createRotorWorker } from '../worker';
import { createLogger, installRuntime } from '../worker/logger';
import { demoApplications, describeLoad } from './demo-apps';
import { ExitCode } from './exit-codes';
import { createTimelinePrinter } from './render';

const DEMO_SECRET = 'rotor-demo/postgres/app';
const DEMO_ROLE = 'rotor_demo_app';
const DEMO_TASK_QUEUE = 'rotor-demo';

/**
 * `rotor demo`: on the local stack, makes a demo role and its secret, runs a worker, rotates the secret while
 * printing each step, and proves the new password logs in and the old one does not. Values are never printed:
 * versions are named by id.
 */
export async function runDemo({ graceMs, write }: { graceMs: number; write: (line: string) => void }): Promise<number> {
  const adminUrl = process.env.ROTOR_PG_ADMIN_URL;
  if (!adminUrl) throw new InvalidInputError('ROTOR_PG_ADMIN_URL is not set: run `npm run demo` (it starts the stack)');
  const store = new AwsSecretsManagerStore();
  const admin = new URL(adminUrl);

  write(
    `1. demo role ${DEMO_ROLE} on PostgreSQL ${admin.hostname}:${admin.port}, secret ${DEMO_SECRET} in ${store.description}`,
  );
  await ensureDemoSecret(adminUrl, store);

  const before = await store.getByStage(DEMO_SECRET, Stage.current);
  if (!before) throw new Error(`${DEMO_SECRET} has no AWSCURRENT version`);
  const oldLogin = parsePostgresSecret(DEMO_SECRET, before.value);
  write(`   AWSCURRENT is version ${before.versionId}; it logs in: ${yes(await canLogIn(DEMO_SECRET, oldLogin))}`);

  write(`2. starting a rotor worker on task queue ${DEMO_TASK_QUEUE} (bundling workflows takes a few seconds)`);
  const logger = createLogger('warn');
  installRuntime(logger);
  const { connectionOptions, namespace = 'default' } = loadClientConnectConfig();
  const connection = await NativeConnection.connect(connectionOptions);
  const worker = await createRotorWorker({ connection, namespace, taskQueue: DEMO_TASK_QUEUE, store });
  const running = worker.run();
  write(
    '3. two applications under load, a pooled query and a login per request in turn: one on rotor-consumers, one that read its password at start',
  );
  const apps = demoApplications(store, DEMO_SECRET, oldLogin);
  let appsStopped = false;
  const stopApps = async () => {
    if (!appsStopped) await apps.stop();
    appsStopped = true;
  };
  try {
    const rotor = await RotationClient.connect(DEMO_TASK_QUEUE);
    write(`4. rotating ${DEMO_SECRET} with a grace period of ${formatDuration(graceMs)}`);
    const t0 = Date.now();
    const started = await rotor.rotate(DEMO_SECRET, { graceMs, trigger: { kind: 'demo' } });
    const ui = rotor.uiLink(started.workflowId, started.runId);
    write(`   workflow ${started.workflowId}, run ${started.runId}`);
    const outcome = await rotor.wait(DEMO_SECRET, createTimelinePrinter(write));
    if (outcome.outcome !== 'completed') {
      write(`   rotation did not complete: ${outcome.outcome === 'failed' ? outcome.message : outcome.outcome}`);
      write(`   see ${ui}`);
      return ExitCode.rotationNotCompleted;
    }
    write(`   completed in ${formatDuration(Date.now() - t0)}`);
    // A moment of traffic after the rotation, then the applications stop.
    await new Promise((r) => setTimeout(r, 1000));
    await stopApps();

    const after = await store.getByStage(DEMO_SECRET, Stage.current);
    const pending = await store.getByStage(DEMO_SECRET, Stage.pending);
    const previous = await store.getByStage(DEMO_SECRET, Stage.previous);
    const newWorks = after ? await canLogIn(DEMO_SECRET, parsePostgresSecret(DEMO_SECRET, after.value)) : false;
    const oldWorks = await canLogIn(DEMO_SECRET, oldLogin);
    write('5. checks');
    write(`   AWSCURRENT is now version ${after?.versionId}; it logs in: ${yes(newWorks)}`);
    write(
      `   the old password (version ${before.versionId}, now AWSPREVIOUS: ${yes(previous?.versionId === before.versionId)}) logs in: ${yes(oldWorks)}`,
    );
    write(`   AWSPENDING left behind: ${pending ? `version ${pending.versionId}` : 'none'}`);
    write(`   application on rotor-consumers: ${describeLoad(apps.rotating)}`);
    write(`   application that read its password at start: ${describeLoad(apps.naive)}`);
    const zeroFailed = apps.rotating.failures.length === 0 && apps.rotating.total() > 0;
    write('');
    write(`Temporal UI: ${ui}`);
    write('Stop the stack with: npm run stack -- down');
    return newWorks && !oldWorks && !pending && zeroFailed ? ExitCode.ok : ExitCode.rotationNotCompleted;
  } finally {
    await stopApps();
    worker.shutdown();
    await running;
    await connection.close();
  }
}

function yes(value: boolean): string {
  return value ? 'yes' : 'no';
}

/**
 * Makes the demo role and secret, or repairs them: a restarted stack keeps PostgreSQL's data but moto keeps
 * secrets only in memory, so a missing secret means a fresh password for the role.
 */
async function ensureDemoSecret(adminUrl: string, store: AwsSecretsManagerStore): Promise<void> {
  const admin = new PgClient({ connectionString: adminUrl });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [DEMO_ROLE]);
    if (!rowCount) await admin.query(`CREATE ROLE ${escapeIdentifier(DEMO_ROLE)} LOGIN`);
    const url = new URL(adminUrl);
    let current = await store.getByStage(DEMO_SECRET, Stage.current).catch((error: Error) => {
      if (error.name === 'RotorSecretNotFound') return undefined;
      throw error;
    });
    if (!current) {
      const password = randomBytes(18).toString('base64url');
      const secret = {
        engine: 'postgres',
        host: url.hostname,
        port: Number(url.port || 5432),
        username: DEMO_ROLE,
        password,
        dbname: 'postgres',
      };
      const sm = new SecretsManagerClient({});
      try {
        await sm.send(new CreateSecretCommand({ Name: DEMO_SECRET, SecretString: JSON.stringify(secret) }));
      } catch (error) {
        if (!(error instanceof ResourceExistsException)) throw error;
      }
      current = await store.getByStage(DEMO_SECRET, Stage.current);
    }
    const login = parsePostgresSecret(DEMO_SECRET, current!.value);
    if (!(await canLogIn(DEMO_SECRET, login))) {
      await setRolePassword(admin, DEMO_ROLE, login.password);
    }
  } finally {
    await admin.end();
  }
}
