/** `value` without the fields `keys`, its other fields in their order: what an answer leaves out of a row. */
export function withoutFields<T extends object, K extends keyof T & string>(value: T, keys: readonly K[]): Omit<T, K> {
  const left: readonly string[] = keys;
  return Object.fromEntries(Object.entries(value).filter(([key]) => !left.includes(key))) as Omit<T, K>;
}
