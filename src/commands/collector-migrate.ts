// `voipready collector migrate --from-sqlite FILE [--config FILE]`: moves an embedded store into the
// PostgreSQL store the collector configuration names (collector/migrate-sqlite.ts), printing a
// count per table. Running it again is harmless.
import type { Io } from '../cli.js';
import type { CollectorConfig } from '../config/collector.js';
import { UserError } from '../errors.js';

export async function runMigrate(
  fromSqlite: string | undefined,
  configFile: string | undefined,
  loadConfig: (file: string) => Promise<CollectorConfig>,
  io: Io,
): Promise<number> {
  if (fromSqlite === undefined) throw new UserError('collector migrate needs --from-sqlite FILE');
  if (configFile === undefined)
    throw new UserError(
      'collector migrate needs --config FILE naming the PostgreSQL store (store: { kind: postgres, url })',
    );
  const config = await loadConfig(configFile);
  if (config.store.kind !== 'postgres')
    throw new UserError(
      `${configFile}: store.kind is ${config.store.kind}; migrate copies into PostgreSQL (store: { kind: postgres, url })`,
    );
  const { migrateSqliteToPostgres } = await import('../../collector/migrate-sqlite.js');
  const { redactUrl } = await import('../../collector/server.js');
  const target = redactUrl(config.store.url);
  io.stdout.write(`migrating ${fromSqlite} into ${target}\n`);
  const width = 18;
  const result = await migrateSqliteToPostgres(
    fromSqlite,
    config.store,
    config.cases.webhooks.map((w) => w.name),
    (c) =>
      io.stdout.write(
        `  ${c.table.padEnd(width)} ${String(c.copied).padStart(8)} copied ${String(c.present).padStart(8)} already there\n`,
      ),
  );
  const copied = result.counts.reduce((n, c) => n + c.copied, 0);
  const present = result.counts.reduce((n, c) => n + c.present, 0);
  io.stdout.write(`done: ${copied} rows copied, ${present} already in PostgreSQL\n`);
  if (result.conflicts.length === 0) return 0;
  const list = result.conflicts
    .slice(0, 5)
    .map((c) => `${c.site}/${c.reportId}`)
    .join(', ');
  io.stderr.write(
    `${result.conflicts.length} report id(s) are in PostgreSQL with other content; PostgreSQL's kept: ${list}${result.conflicts.length > 5 ? ', …' : ''}\n`,
  );
  return 1;
}
