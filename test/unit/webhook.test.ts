import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AlertDeliveryError,
  deliverAlert,
  slackPayload,
  type Alert,
  type WebhookTarget,
} from '../../packages/rotor/src/alerts/webhook';

const HEADER_VALUE = 'hook-secret-3f9a';
const noWait = async () => {};

const alert: Alert = {
  kind: 'compensated',
  secretId: 'prod/db/app',
  workflowId: 'rotor/rotate/prod/db/app',
  runId: 'run-1',
  phase: 'compensated',
  step: 'test',
  message: 'rotation of prod/db/app failed at test: login refused; compensated',
  uiUrl: 'http://temporal.local/namespaces/default/workflows/rotor%2Frotate%2Fprod%2Fdb%2Fapp/run-1',
  at: '2025-01-02T03:04:05.000Z',
};

interface Received {
  headers: IncomingHttpHeaders;
  body: unknown;
}

/** A local webhook receiver answering each request with the next status in `statuses` (the last one repeats). */
async function receiver(statuses: number[], extraHeaders: Record<string, string> = {}) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      received.push({ headers: req.headers, body: JSON.parse(body) });
      const status = statuses[Math.min(received.length, statuses.length) - 1] ?? 200;
      res.writeHead(status, extraHeaders).end(status < 300 ? 'ok' : 'no');
    });
  });
  return { received, ...(await listen(server)) };
}

async function listen(server: Server) {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/T000/B000/xyzSECRETxyz` };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const target = (url: string): WebhookTarget => ({
  name: 'oncall',
  url,
  header: { name: 'x-rotor-token', value: HEADER_VALUE },
});

describe('slackPayload', () => {
  it('shows kind, secret, phase, step, message and a link, and carries the alert for other receivers', () => {
    const payload = slackPayload(alert) as { text: string; blocks: unknown[]; rotor: Alert };
    const shown = JSON.stringify(payload.blocks);
    for (const word of [
      'Rotation compensated',
      'prod/db/app',
      '*Phase*',
      '*Step*\\ntest',
      'login refused',
      alert.uiUrl!,
    ]) {
      expect(shown).toContain(word);
    }
    expect(payload.text).toContain('Rotation compensated: prod/db/app');
    expect(payload.rotor).toEqual(alert);
  });

  it('escapes Slack markup and keeps the header within Slack limits', () => {
    const payload = slackPayload({ ...alert, secretId: 'a'.repeat(300), message: 'x <!channel> & y' }) as {
      blocks: Array<{ type: string; text?: { text: string } }>;
    };
    expect(payload.blocks[0]!.text!.text.length).toBeLessThanOrEqual(150);
    expect(JSON.stringify(payload.blocks)).toContain('x &lt;!channel&gt; &amp; y');
  });
});

describe('deliverAlert', () => {
  it('POSTs the Slack JSON with the secret header', async () => {
    const hook = await receiver([200]);
    await expect(deliverAlert(target(hook.url), alert, { sleep: noWait })).resolves.toEqual({
      attempts: 1,
      status: 200,
    });
    expect(hook.received).toHaveLength(1);
    expect(hook.received[0]!.headers['content-type']).toBe('application/json');
    expect(hook.received[0]!.headers['x-rotor-token']).toBe(HEADER_VALUE);
    expect(hook.received[0]!.body).toEqual(JSON.parse(JSON.stringify(slackPayload(alert))));
  });

  it('retries 5xx with exponential backoff and succeeds on the third attempt', async () => {
    const hook = await receiver([500, 500, 200]);
    const waits: number[] = [];
    const result = await deliverAlert(target(hook.url), alert, {
      initialDelayMs: 100,
      sleep: async (ms) => void waits.push(ms),
    });
    expect(result).toEqual({ attempts: 3, status: 200 });
    expect(waits).toEqual([100, 200]);
  });

  it('honours a numeric Retry-After on 429, capped at maxDelayMs', async () => {
    const hook = await receiver([429, 200], { 'retry-after': '3' });
    const waits: number[] = [];
    const sleep = async (ms: number) => void waits.push(ms);
    await expect(deliverAlert(target(hook.url), alert, { sleep })).resolves.toEqual({ attempts: 2, status: 200 });
    expect(waits).toEqual([3000]);
    const capped = await receiver([429, 200], { 'retry-after': '3' });
    await deliverAlert(target(capped.url), alert, { sleep, maxDelayMs: 1000 });
    expect(waits).toEqual([3000, 1000]);
  });

  it('does not retry a 400', async () => {
    const hook = await receiver([400]);
    const error = await deliverAlert(target(hook.url), alert, { sleep: noWait }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AlertDeliveryError);
    expect(error).toMatchObject({ target: 'oncall', attempts: 1, lastStatus: 400 });
    expect(hook.received).toHaveLength(1);
  });

  it('gives up after the last attempt, naming the target but neither its URL nor its header value', async () => {
    const hook = await receiver([500]);
    const error = await deliverAlert(target(hook.url), alert, { attempts: 4, sleep: noWait }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AlertDeliveryError);
    expect(error).toMatchObject({
      attempts: 4,
      lastStatus: 500,
      message: 'alert delivery to webhook "oncall" failed after 4 attempts: HTTP 500',
    });
    expect(hook.received).toHaveLength(4);
    const printed = `${String(error)} ${JSON.stringify(error)} ${(error as Error).stack}`;
    for (const secret of [hook.url, 'xyzSECRETxyz', '127.0.0.1', HEADER_VALUE]) expect(printed).not.toContain(secret);
  });

  it('counts a receiver that never answers as a failed attempt', async () => {
    const server = createServer(() => {});
    const { url } = await listen(server);
    const error = await deliverAlert(target(url), alert, { attempts: 2, timeoutMs: 100, sleep: noWait }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(AlertDeliveryError);
    expect(error).toMatchObject({
      attempts: 2,
      lastStatus: undefined,
      message: 'alert delivery to webhook "oncall" failed after 2 attempts: no answer within 100ms',
    });
  });

  it('retries when nothing listens, without quoting the address', async () => {
    const server = createServer();
    const { url } = await listen(server);
    server.close();
    const error = await deliverAlert(target(url), alert, { attempts: 2, sleep: noWait }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      attempts: 2,
      message: 'alert delivery to webhook "oncall" failed after 2 attempts: network error (ECONNREFUSED)',
    });
  });
});
