import { DefaultLogger, Runtime, type LogEntry, type LogLevel } from '@temporalio/worker';
import pino from 'pino';

/**
 * One structured logger for rotor and the Temporal SDK. Lines carry ids, steps and outcomes; rotor never hands
 * it a value. `redact` is a second belt for fields that should never appear.
 */
export function createLogger(level: string = process.env.ROTOR_LOG_LEVEL ?? 'info'): pino.Logger {
  return pino({
    level,
    base: { service: 'rotor' },
    redact: {
      paths: ['password', '*.password', 'value', '*.value', 'secretString', '*.secretString'],
      censor: '[redacted]',
    },
  });
}

let installed = false;

/**
 * Installs the Temporal SDK runtime once per process: its logs (worker, workflow and activity loggers) go into
 * `logger`; with `metricsAddress` (host:port) it also serves the SDK's own Prometheus metrics there.
 */
export function installRuntime(logger: pino.Logger, metricsAddress?: string): void {
  if (installed) return;
  installed = true;
  const levels: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
    TRACE: 'trace',
    DEBUG: 'debug',
    INFO: 'info',
    WARN: 'warn',
    ERROR: 'error',
  };
  const threshold = (logger.level.toUpperCase() === 'TRACE' ? 'TRACE' : logger.level.toUpperCase()) as LogLevel;
  Runtime.install({
    ...(metricsAddress ? { telemetryOptions: { metrics: { prometheus: { bindAddress: metricsAddress } } } } : {}),
    logger: new DefaultLogger(threshold in levels ? threshold : 'INFO', (entry: LogEntry) => {
      logger[levels[entry.level]]({ ...entry.meta, sdk: true }, entry.message);
    }),
  });
}
