// The mounted filesystems: which one holds a path, and which are local disks (the default set to
// watch). Linux: /proc/self/mounts (proc(5)); Windows: the drive letters that answer statfs.
import { existsSync } from 'node:fs';

export interface Mount {
  mount: string;
  fsType: string;
}

/** Filesystems that hold data on a local device (not memory, network or kernel views). */
const LOCAL_TYPES = new Set([
  'ext2',
  'ext3',
  'ext4',
  'xfs',
  'btrfs',
  'zfs',
  'f2fs',
  'jfs',
  'reiserfs',
  'bcachefs',
  'vfat',
  'exfat',
  'ntfs',
  'ntfs3',
  'fuseblk',
  'overlay',
  'NTFS',
  'ReFS',
]);

/** /proc/self/mounts escapes space, tab, newline and backslash as octal (\040 …). */
function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

export function parseProcMounts(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split('\n')) {
    const [, mountPoint, fsType] = line.split(' ');
    if (mountPoint && fsType) mounts.push({ mount: unescapeMount(mountPoint), fsType });
  }
  // Longest first: the first prefix match is the mount holding a path.
  return mounts.sort((a, b) => b.mount.length - a.mount.length);
}

export async function listMounts(
  platform: NodeJS.Platform,
  readFile: (path: string, enc: 'utf8') => Promise<string>,
): Promise<Mount[]> {
  if (platform === 'win32') {
    return [...'CDEFGHIJKLMNOPQRSTUVWXYZ']
      .map((l) => `${l}:\\`)
      .filter((d) => existsSync(d))
      .map((mount) => ({ mount, fsType: 'NTFS' }));
  }
  try {
    return parseProcMounts(await readFile('/proc/self/mounts', 'utf8'));
  } catch {
    return [];
  }
}

/** The mount holding a path (longest mount-point prefix); undefined when none is known. */
export function mountOf(path: string, mounts: Mount[]): Mount | undefined {
  // Drive letters and Windows paths compare without case, Unix paths with it.
  const norm = (p: string) => (/^[A-Za-z]:/.test(p) ? p.replaceAll('\\', '/').toLowerCase() : p);
  const p = norm(path);
  return mounts.find((m) => {
    const root = norm(m.mount).replace(/\/$/, '');
    return p === root || p.startsWith(`${root}/`) || root === '';
  });
}

/** The default disk set: every local mounted filesystem, once per mount point. */
export function localMounts(mounts: Mount[]): Mount[] {
  const seen = new Set<string>();
  return mounts
    .filter((m) => LOCAL_TYPES.has(m.fsType) && !seen.has(m.mount) && seen.add(m.mount))
    .sort((a, b) => a.mount.localeCompare(b.mount));
}
