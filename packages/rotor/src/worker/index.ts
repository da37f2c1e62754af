/**
 * rotor/worker, for operators who run a worker from their own program: `startWorker` wires it from the environment
 * and rotor.yaml (what `rotor worker` runs), `runWorker` runs it until a signal, `createRotorWorker` builds one from
 * parts (a connection, a store, your rotators). Everything else of the worker is internal.
 */
export { createRotorWorker, type RotorWorkerOptions } from './create-worker';
export { runWorker, startWorker, type RunningWorker } from './start';
