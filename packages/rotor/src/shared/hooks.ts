/** A hook of rotor.yaml: a program and its arguments (no shell), and how long it may run. */
export interface HookConfig {
  command: string[];
  timeoutMs: number;
}
