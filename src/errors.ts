/**
 * An error the user caused or can fix (bad flag, unreadable file, port in use). The CLI prints its
 * message as one line and exits 2; anything else is a bug and shows a stack only with --debug.
 */
export class UserError extends Error {
  override name = 'UserError';
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
