// Bounds on a parsed JSON document's shape, checked before schema validation: a schema passes
// unknown keys through untouched, and recursive code (JSON.stringify, zod) overflows the stack on a
// few thousand levels of nesting. Iterative, so the check itself cannot overflow.

export interface JsonBounds {
  /** Deepest nesting of objects and arrays (the document itself is depth 1). */
  maxDepth: number;
  /** Longest array anywhere in the document. */
  maxArrayLength: number;
  /** Most keys in any one object. */
  maxObjectKeys: number;
}

export interface JsonBoundsProblem {
  /** Dotted path of the offending value ("" for the document itself). */
  path: string;
  message: string;
}

interface Frame {
  value: object;
  depth: number;
  key: string;
  up: Frame | undefined;
}

function pathOf(frame: Frame): string {
  const keys: string[] = [];
  for (let f: Frame | undefined = frame; f?.up; f = f.up) keys.push(f.key);
  return keys.reverse().join('.');
}

/** The first place the document breaks a bound, or undefined when it keeps them all. */
export function jsonBoundsProblem(doc: unknown, bounds: JsonBounds): JsonBoundsProblem | undefined {
  if (doc === null || typeof doc !== 'object') return undefined;
  const stack: Frame[] = [{ value: doc, depth: 1, key: '', up: undefined }];
  while (stack.length > 0) {
    const frame = stack.pop()!;
    if (frame.depth > bounds.maxDepth) {
      return { path: pathOf(frame), message: `nested deeper than ${bounds.maxDepth} levels` };
    }
    const isArray = Array.isArray(frame.value);
    const keys = isArray ? undefined : Object.keys(frame.value);
    const size = isArray ? (frame.value as unknown[]).length : keys!.length;
    if (isArray && size > bounds.maxArrayLength) {
      return { path: pathOf(frame), message: `array of ${size} items (at most ${bounds.maxArrayLength})` };
    }
    if (!isArray && size > bounds.maxObjectKeys) {
      return { path: pathOf(frame), message: `object with ${size} keys (at most ${bounds.maxObjectKeys})` };
    }
    for (let i = 0; i < size; i++) {
      const key = isArray ? String(i) : keys![i]!;
      const child = (frame.value as Record<string, unknown>)[key];
      if (child !== null && typeof child === 'object') {
        stack.push({ value: child, depth: frame.depth + 1, key, up: frame });
      }
    }
  }
  return undefined;
}
