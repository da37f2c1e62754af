/** A load that requests continuously until stopped, counting requests served by version and failures by error. */
export interface Load {
  /** Requests served, by the credential version that served them. */
  served: Map<string, number>;
  /** Failed requests, by the error each failed with. */
  failures: string[];
  total(): number;
  stop(): Promise<void>;
}

/**
 * Calls `request` from `concurrency` loops with a short pause between calls until stopped (the demo's and the
 * bench's application traffic). `request` answers with the version that served it, or throws.
 */
export function driveLoad(request: (n: number) => Promise<string>, concurrency: number, pauseMs = 5): Load {
  const served = new Map<string, number>();
  const failures: string[] = [];
  let running = true;
  const loops = Array.from({ length: concurrency }, async (_, i) => {
    for (let n = i; running; n += concurrency) {
      try {
        const version = await request(n);
        served.set(version, (served.get(version) ?? 0) + 1);
      } catch (error) {
        failures.push(errorCode(error));
      }
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  });
  return {
    served,
    failures,
    total: () => [...served.values()].reduce((a, b) => a + b, 0) + failures.length,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** MySQL's server error number (mysql2 names some after unrelated errors), else pg's SQLSTATE or Node's code. */
export function errorCode(error: unknown): string {
  const { code, errno, message } = error as { code?: string; errno?: number; message?: string };
  return String(typeof errno === 'number' && errno > 0 ? errno : (code ?? message));
}
