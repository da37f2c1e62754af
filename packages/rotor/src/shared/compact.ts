/** `T` with every property that may be undefined made optional and never undefined: what `compact` returns. */
export type Compact<T> = {
  [K in keyof T as undefined extends T[K] ? never : K]: T[K];
} & {
  [K in keyof T as undefined extends T[K] ? K : never]?: Exclude<T[K], undefined>;
};

/**
 * The object without its undefined properties, so payloads, hashes and printed results stay clean. rotor's one
 * idiom for optional fields: `{ ...compact({ reason, by }) }` rather than `...(reason ? { reason } : {})`. A
 * conditional spread stays only where the condition is something other than the field's own presence.
 */
export function compact<T extends object>(value: T): Compact<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Compact<T>;
}
