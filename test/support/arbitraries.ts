import fc from 'fast-check';

/** Every kind of JS value: null-prototype objects, boxed values, Maps, Sets, typed and sparse arrays, BigInt, unicode. */
export function everyKindOfValue(constraints: { maxDepth: number; maxKeys?: number }) {
  return fc.anything({
    ...constraints,
    withBigInt: true,
    withBoxedValues: true,
    withDate: true,
    withMap: true,
    withNullPrototype: true,
    withObjectString: true,
    withSet: true,
    withSparseArray: true,
    withTypedArray: true,
    withUnicodeString: true,
  });
}
