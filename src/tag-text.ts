// Its own module so that every schema module (schemas.ts, trace-schema.ts, priority-schema.ts) can
// use it without importing each other in a circle.
import { z } from 'zod';

/**
 * Text that may become an InfluxDB tag, a field or a metric label: no control characters (a newline
 * splits a line-protocol point in two). Also for text a report carries into evidence.
 */
export const TagText = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'control characters are not allowed');
