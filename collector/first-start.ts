// A collector started without --config keeps its configuration in its data directory. On the very
// first start it writes one there: an agent (bound to site "site-1") and a viewer, each with a fresh
// token in a file beside it (mode 0600), so a newcomer can point an agent at it with no setup.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashToken, newToken } from './auth.js';

export const DATA_DIR_CONFIG = 'collector.yaml';

export interface FirstStart {
  /** The config file in the data directory. */
  file: string;
  /** Set when this call wrote it: what was made, for one line of output. */
  created?: { agentTokenFile: string; viewerTokenFile: string; supportTokenFile: string };
}

export function ensureDataDirConfig(dataDir: string): FirstStart {
  const file = join(dataDir, DATA_DIR_CONFIG);
  if (existsSync(file)) return { file };
  mkdirSync(dataDir, { recursive: true, mode: 0o750 });
  const agentToken = newToken();
  const viewerToken = newToken();
  const supportToken = newToken();
  const agentTokenFile = join(dataDir, 'agent-1.token');
  const viewerTokenFile = join(dataDir, 'viewer.token');
  const supportTokenFile = join(dataDir, 'support.token');
  writeFileSync(agentTokenFile, `${agentToken}\n`, { mode: 0o600 });
  writeFileSync(viewerTokenFile, `${viewerToken}\n`, { mode: 0o600 });
  writeFileSync(supportTokenFile, `${supportToken}\n`, { mode: 0o600 });
  const yaml = `# Written by the first \`voipready collector\` started without --config (see docs/collector.md).
# The plain tokens are in agent-1.token, viewer.token and support.token beside this file; only their
# hashes are here. The support token works on every support case (docs/cases.md).
collector:
  agents:
    - name: agent-1
      site: site-1
      tokenHash: "${hashToken(agentToken)}"
  viewers:
    - name: viewer
      tokenHash: "${hashToken(viewerToken)}"
  support:
    - name: support
      tokenHash: "${hashToken(supportToken)}"
`;
  writeFileSync(file, yaml, { mode: 0o640, flag: 'wx' });
  return { file, created: { agentTokenFile, viewerTokenFile, supportTokenFile } };
}
