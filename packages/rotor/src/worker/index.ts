/** The rotor worker: `startWorker` wires it from the environment and rotor.yaml; `createRotorWorker` from parts. */
export {
  createRotorWorker,
  createRotorWorkers,
  MAX_WRITES_PER_STORE_STEP,
  runTogether,
  shutdownAll,
  storeWritesTaskQueue,
  workflowsPath,
  type RotorWorkerOptions,
} from './create-worker';
export { runWorker, startWorker, type RunningWorker } from './start';
export { RotorMetrics, type MetricsServer } from './metrics';
export { KeyedSemaphore, RateLimiter, throttledStore } from './throttle';
