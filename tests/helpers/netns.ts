// A real three-host topology in network namespaces, built and torn down by the test itself:
//
//   site (agent) 198.18.1.2 —veth— 198.18.1.1 router 198.18.2.1 —veth— 198.18.2.2 dc (reflector)
//                2001:db8:1::2      2001:db8:1::1      2001:db8:2::1      2001:db8:2::2
//
// The router forwards and holds one nftables table whose rules impair the path (drops with named
// counters, DSCP rewrites). nft counters are the ground truth the probe's figures are checked
// against. Addresses come from the benchmarking range (RFC 2544, 198.18.0.0/15) and exist only
// inside these namespaces. Names are `vr-<pid>-<n>-<role>` so concurrent runs never collide and a
// later run can tell whether the process that made a namespace is still alive.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const SITE_ADDR = '198.18.1.2';
export const ROUTER_SITE_ADDR = '198.18.1.1';
export const ROUTER_DC_ADDR = '198.18.2.1';
export const DC_ADDR = '198.18.2.2';
// IPv6: the documentation prefix 2001:db8::/32 (RFC 3849), again only inside the namespaces.
export const SITE_ADDR6 = '2001:db8:1::2';
export const ROUTER_SITE_ADDR6 = '2001:db8:1::1';
export const ROUTER_DC_ADDR6 = '2001:db8:2::1';
export const DC_ADDR6 = '2001:db8:2::2';
/** The single veth in the site and dc namespaces. */
export const HOST_IFACE = 'eth0';

// `c<n>-r<k>`: the routers of a chain (netns-chain.ts).
const NAME_RE = /^vr-(\d+)-(c?\d+)-(site|router|dc|r\d+)$/;
const NFT_TABLE = 'voipready_test';

export interface NftCounter {
  packets: number;
  bytes: number;
}

export interface NftImpairments {
  /** Named counters the rules reference with `counter name "<name>"`. */
  counters: string[];
  /** Rules for the router's forward hook (type filter, policy accept), one per line. */
  forward: string[];
  /** Table family: inet (IPv4 and IPv6, the default) or ip (IPv4 only; needed by `dup to ADDR`). */
  family?: 'inet' | 'ip';
}

export type Direction = 'forward' | 'reverse';

export interface Shaping {
  /** Token bucket rate, kbit/s (counted on whole frames, Ethernet header included). */
  rateKbit: number;
  burstBytes: number;
  /** Longest a packet may wait in the queue before it is dropped. */
  latencyMs: number;
}

export interface QdiscStats {
  packets: number;
  drops: number;
}

export interface Topology {
  /** `vr-<pid>-<n>`: the prefix of the three namespace names. */
  readonly id: string;
  readonly site: string;
  readonly router: string;
  readonly dc: string;
  /** Replaces the router's impairment table with these counters and rules. */
  impair(rules: NftImpairments): Promise<void>;
  /** All named counters of the impairment table, read with `nft -j`. */
  counters(): Promise<Record<string, NftCounter>>;
  /** Limits one direction to a token bucket (tbf on the router's egress that way): a thin link. */
  shape(direction: Direction, shaping: Shaping): Promise<void>;
  /**
   * A second, slow queue on one direction (htb: a 1 Gbit/s default class and one of rateKbit):
   * packets an nft rule moves into it with `meta priority set <returned class id>` are held back
   * behind their successors — reordering, which this kernel cannot get from netem.
   */
  slowLane(direction: Direction, rateKbit: number): Promise<string>;
  /** Packets sent and dropped by that direction's shaper (`tc -s -j`): ground truth for queue drops. */
  shaperStats(direction: Direction): Promise<QdiscStats>;
  /** Kills every process still inside the namespaces and deletes them. Safe to call twice. */
  destroy(): Promise<void>;
}

/** Why namespace tests cannot run here, or undefined when they can. */
export function netnsUnavailableReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (ip netns, veth and nftables); CI runs as root';
  for (const tool of ['/usr/sbin/ip', '/usr/sbin/nft', '/usr/bin/tshark', '/usr/bin/dumpcap']) {
    try {
      accessSync(tool, constants.X_OK);
    } catch {
      return `${tool} is not installed (Debian packages iproute2, nftables, tshark)`;
    }
  }
  return undefined;
}

export async function run(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

async function listNamespaces(): Promise<string[]> {
  const out = await run('ip', ['netns', 'list']);
  return out
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kills the processes inside one namespace (all of them were started by the run that owns it). */
async function killInside(ns: string): Promise<void> {
  const out = await run('ip', ['netns', 'pids', ns]).catch(() => '');
  for (const pid of out
    .split('\n')
    .map(Number)
    .filter((p) => p > 0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export async function deleteNamespace(ns: string): Promise<void> {
  await killInside(ns);
  await run('ip', ['netns', 'delete', ns]).catch(() => undefined);
}

/**
 * Deletes `vr-<pid>-*` namespaces left behind by killed runs: only those whose creating process no
 * longer exists, so concurrent test files and other helpers' runs are untouched.
 */
export async function removeStaleNamespaces(): Promise<string[]> {
  const stale = (await listNamespaces()).filter((ns) => {
    const m = NAME_RE.exec(ns);
    return m !== null && !pidAlive(Number(m[1]));
  });
  for (const ns of stale) await deleteNamespace(ns);
  return stale;
}

let created = 0;

export async function createTopology(): Promise<Topology> {
  await removeStaleNamespaces();
  const id = `vr-${process.pid}-${created++}`;
  const site = `${id}-site`;
  const router = `${id}-router`;
  const dc = `${id}-dc`;
  const made: string[] = [];
  const destroy = async () => {
    for (const ns of made.splice(0)) await deleteNamespace(ns);
  };
  const ip = (ns: string, args: string[]) => run('ip', ['-n', ns, ...args]);
  try {
    for (const ns of [site, router, dc]) {
      await run('ip', ['netns', 'add', ns]);
      made.push(ns);
      await ip(ns, ['link', 'set', 'lo', 'up']);
    }
    // Create each veth pair directly in its two namespaces: no name is ever used in the root one.
    await run('ip', [
      'link',
      'add',
      HOST_IFACE,
      'netns',
      site,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      router,
    ]);
    await run('ip', [
      'link',
      'add',
      'eth1',
      'netns',
      router,
      'type',
      'veth',
      'peer',
      'name',
      HOST_IFACE,
      'netns',
      dc,
    ]);
    await ip(site, ['addr', 'add', `${SITE_ADDR}/24`, 'dev', HOST_IFACE]);
    await ip(router, ['addr', 'add', `${ROUTER_SITE_ADDR}/24`, 'dev', 'eth0']);
    await ip(router, ['addr', 'add', `${ROUTER_DC_ADDR}/24`, 'dev', 'eth1']);
    await ip(dc, ['addr', 'add', `${DC_ADDR}/24`, 'dev', HOST_IFACE]);
    // nodad: usable at once, no duplicate address detection delay on links we made ourselves.
    await ip(site, ['addr', 'add', `${SITE_ADDR6}/64`, 'dev', HOST_IFACE, 'nodad']);
    await ip(router, ['addr', 'add', `${ROUTER_SITE_ADDR6}/64`, 'dev', 'eth0', 'nodad']);
    await ip(router, ['addr', 'add', `${ROUTER_DC_ADDR6}/64`, 'dev', 'eth1', 'nodad']);
    await ip(dc, ['addr', 'add', `${DC_ADDR6}/64`, 'dev', HOST_IFACE, 'nodad']);
    for (const [ns, dev] of [
      [site, HOST_IFACE],
      [router, 'eth0'],
      [router, 'eth1'],
      [dc, HOST_IFACE],
    ] as const) {
      await ip(ns, ['link', 'set', dev, 'up']);
    }
    await ip(site, ['route', 'add', 'default', 'via', ROUTER_SITE_ADDR]);
    await ip(dc, ['route', 'add', 'default', 'via', ROUTER_DC_ADDR]);
    await ip(site, ['-6', 'route', 'add', 'default', 'via', ROUTER_SITE_ADDR6]);
    await ip(dc, ['-6', 'route', 'add', 'default', 'via', ROUTER_DC_ADDR6]);
    await run('ip', [
      'netns',
      'exec',
      router,
      'sysctl',
      '-q',
      '-w',
      'net.ipv4.ip_forward=1',
      'net.ipv6.conf.all.forwarding=1',
    ]);
  } catch (err) {
    await destroy();
    throw err;
  }

  const nft = (args: string[]) => run('ip', ['netns', 'exec', router, 'nft', ...args]);
  const tc = (args: string[]) => run('ip', ['netns', 'exec', router, 'tc', ...args]);
  let tableFamily: 'inet' | 'ip' = 'inet';
  return {
    id,
    site,
    router,
    dc,
    async impair({ counters, forward, family = 'inet' }) {
      for (const f of ['inet', 'ip']) await nft(['delete', 'table', f, NFT_TABLE]).catch(() => undefined);
      tableFamily = family;
      const ruleset = [
        `table ${family} ${NFT_TABLE} {`,
        ...counters.map((c) => `  counter ${c} {}`),
        '  chain forward {',
        '    type filter hook forward priority 0; policy accept;',
        ...forward.map((rule) => `    ${rule}`),
        '  }',
        '}',
        '',
      ].join('\n');
      await runWithInput('ip', ['netns', 'exec', router, 'nft', '-f', '-'], ruleset);
    },
    async counters() {
      const doc = JSON.parse(await nft(['-j', 'list', 'counters', 'table', tableFamily, NFT_TABLE])) as {
        nftables: Array<{ counter?: { name: string; packets: number; bytes: number } }>;
      };
      const out: Record<string, NftCounter> = {};
      for (const item of doc.nftables) {
        if (item.counter)
          out[item.counter.name] = { packets: item.counter.packets, bytes: item.counter.bytes };
      }
      return out;
    },
    async shape(direction, { rateKbit, burstBytes, latencyMs }) {
      await tc([
        'qdisc',
        'replace',
        'dev',
        routerEgress(direction),
        'root',
        'tbf',
        'rate',
        `${rateKbit}kbit`,
        'burst',
        `${burstBytes}`,
        'latency',
        `${latencyMs}ms`,
      ]);
    },
    async slowLane(direction, rateKbit) {
      const dev = routerEgress(direction);
      await tc(['qdisc', 'replace', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '10']);
      await tc(['class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '1gbit']);
      await tc([
        'class',
        'add',
        'dev',
        dev,
        'parent',
        '1:',
        'classid',
        '1:20',
        'htb',
        'rate',
        `${rateKbit}kbit`,
        'ceil',
        `${rateKbit}kbit`,
      ]);
      return '1:20';
    },
    async shaperStats(direction) {
      const [q] = JSON.parse(
        await tc(['-s', '-j', 'qdisc', 'show', 'dev', routerEgress(direction)]),
      ) as Array<{
        kind: string;
        packets: number;
        drops: number;
      }>;
      if (q?.kind !== 'tbf' && q?.kind !== 'htb') throw new Error(`no shaper on the ${direction} path`);
      return { packets: q.packets, drops: q.drops };
    },
    destroy,
  };
}

/** The router's interface that forward (site → dc) or reverse (dc → site) traffic leaves by. */
const routerEgress = (direction: Direction) => (direction === 'forward' ? 'eth1' : 'eth0');

export function runWithInput(cmd: string, args: string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${(stderr || err.message).trim()}`));
      else resolve();
    });
    child.stdin?.end(input);
  });
}
