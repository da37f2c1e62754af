import type { AlertNotifier } from '../activities/ports';
import type { WebhookRouteConfig } from '../config/rotor-config';
import type { Alert, AlertDelivery } from '../shared/reporting';
import { AlertDeliveryError, deliverAlert, type DeliveryOptions, type WebhookTarget } from './webhook';

export interface NotifierOptions {
  /** Where `urlFromEnv` and `header.valueFromEnv` are read; the worker's environment by default. */
  env?: NodeJS.ProcessEnv;
  /** The Temporal UI page of a rotation, added to each alert. */
  uiLink?: (workflowId: string, runId: string) => string;
  delivery?: DeliveryOptions;
}

/**
 * Delivers alerts to the webhook routes of rotor.yaml. URLs and header values are resolved here, in the worker, so
 * they never enter a workflow's history; a route that is unknown or missing its environment variable is reported
 * as a failed delivery (and so audited), never thrown.
 */
export function webhookNotifier(
  routes: Record<string, WebhookRouteConfig>,
  options: NotifierOptions = {},
): AlertNotifier {
  const env = options.env ?? process.env;

  function targetOf(name: string): WebhookTarget | string {
    const route = routes[name];
    if (!route) return `route ${JSON.stringify(name)} is not configured on this worker`;
    const url = route.url ?? (route.urlFromEnv ? env[route.urlFromEnv] : undefined);
    if (!url)
      return `route ${JSON.stringify(name)}: environment variable ${route.urlFromEnv} is not set on this worker`;
    if (!route.header) return { name, url };
    const value = env[route.header.valueFromEnv];
    if (!value)
      return `route ${JSON.stringify(name)}: environment variable ${route.header.valueFromEnv} is not set on this worker`;
    return { name, url, header: { name: route.header.name, value } };
  }

  return {
    async notify(alert: Alert, names: string[]): Promise<AlertDelivery[]> {
      const withLink =
        alert.workflowId && alert.runId && options.uiLink
          ? { ...alert, uiUrl: options.uiLink(alert.workflowId, alert.runId) }
          : alert;
      return Promise.all(
        names.map(async (route): Promise<AlertDelivery> => {
          const target = targetOf(route);
          if (typeof target === 'string') return { route, ok: false, attempts: 0, error: target };
          try {
            const { attempts } = await deliverAlert(target, withLink, options.delivery);
            return { route, ok: true, attempts };
          } catch (error) {
            if (error instanceof AlertDeliveryError)
              return { route, ok: false, attempts: error.attempts, error: error.message };
            throw error;
          }
        }),
      );
    },
  };
}
