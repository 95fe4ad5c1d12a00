// The shared secret for probe authentication: the bytes of a file, without a trailing newline.
import { readFileSync } from 'node:fs';
import { UserError } from '../../src/errors.js';

export function readSecretFile(file: string): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    throw new UserError(`cannot read secret file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  const text = data.toString('utf8').replace(/\r?\n$/, '');
  if (text.length < 8) throw new UserError(`secret file ${file} must hold at least 8 characters`);
  return Buffer.from(text, 'utf8');
}
