// A longer path than netns.ts's one router: site — r1 — r2 — … — rN — dc, each link its own /24
// from the benchmarking range (RFC 2544) and its /64 from the IPv6 one (2001:2::/48, RFC 5180), every
// router forwarding both families with routes both ways. Built for
// the DSCP path trace, which needs several hops to tell apart. Names `vr-<pid>-c<n>-<role>` so the
// stale-namespace sweep in netns.ts recognises them.
import { deleteNamespace, removeStaleNamespaces, run, runWithInput } from './netns.js';

export interface Chain {
  readonly site: string;
  /** Router namespaces, nearest the site first. */
  readonly routers: string[];
  readonly dc: string;
  readonly siteAddr: string;
  readonly dcAddr: string;
  /** Each router's address on its site-facing link: what its ICMP errors to the site come from. */
  readonly routerAddrs: string[];
  readonly siteAddr6: string;
  readonly dcAddr6: string;
  readonly routerAddrs6: string[];
  /** Loads an nftables ruleset (complete tables) into one router. */
  nft(router: number, ruleset: string): Promise<void>;
  /** `nft -j` named counters of a table (family ip, ip6 or inet) in one router. */
  counter(router: number, table: string, name: string, family?: string): Promise<number>;
  destroy(): Promise<void>;
}

/** Link i joins node i (left) and node i+1 (right): left end .1, right end .2 of 198.18.(20+i).0/24. */
const linkAddr = (link: number, side: 'left' | 'right') => `198.18.${20 + link}.${side === 'left' ? 1 : 2}`;
const linkNet = (link: number) => `198.18.${20 + link}.0/24`;
const linkAddr6 = (link: number, side: 'left' | 'right') =>
  `2001:2:0:${20 + link}::${side === 'left' ? 1 : 2}`;
const linkNet6 = (link: number) => `2001:2:0:${20 + link}::/64`;

let created = 0;

export async function createChain(routerCount: number): Promise<Chain> {
  await removeStaleNamespaces();
  const id = `vr-${process.pid}-c${created++}`;
  const site = `${id}-site`;
  const dc = `${id}-dc`;
  const routers = Array.from({ length: routerCount }, (_, k) => `${id}-r${k + 1}`);
  const nodes = [site, ...routers, dc];
  const links = nodes.length - 1;
  const made: string[] = [];
  const destroy = async () => {
    for (const ns of made.splice(0)) await deleteNamespace(ns);
  };
  const ip = (ns: string, args: string[]) => run('ip', ['-n', ns, ...args]);
  try {
    for (const ns of nodes) {
      await run('ip', ['netns', 'add', ns]);
      made.push(ns);
      await ip(ns, ['link', 'set', 'lo', 'up']);
    }
    for (let link = 0; link < links; link++) {
      const [left, right] = [nodes[link]!, nodes[link + 1]!];
      await run('ip', [
        'link',
        'add',
        `r${link}`,
        'netns',
        left,
        'type',
        'veth',
        'peer',
        'name',
        `l${link}`,
        'netns',
        right,
      ]);
      await ip(left, ['addr', 'add', `${linkAddr(link, 'left')}/24`, 'dev', `r${link}`]);
      await ip(right, ['addr', 'add', `${linkAddr(link, 'right')}/24`, 'dev', `l${link}`]);
      // nodad: usable at once, not after duplicate address detection's second.
      await ip(left, ['addr', 'add', `${linkAddr6(link, 'left')}/64`, 'dev', `r${link}`, 'nodad']);
      await ip(right, ['addr', 'add', `${linkAddr6(link, 'right')}/64`, 'dev', `l${link}`, 'nodad']);
      await ip(left, ['link', 'set', `r${link}`, 'up']);
      await ip(right, ['link', 'set', `l${link}`, 'up']);
    }
    await ip(site, ['route', 'add', 'default', 'via', linkAddr(0, 'right')]);
    await ip(dc, ['route', 'add', 'default', 'via', linkAddr(links - 1, 'left')]);
    await ip(site, ['-6', 'route', 'add', 'default', 'via', linkAddr6(0, 'right')]);
    await ip(dc, ['-6', 'route', 'add', 'default', 'via', linkAddr6(links - 1, 'left')]);
    // Router k sits between link k-1 and link k: farther links are reached through its neighbours.
    for (let k = 1; k <= routerCount; k++) {
      const ns = nodes[k]!;
      for (let link = 0; link < k - 1; link++) {
        await ip(ns, ['route', 'add', linkNet(link), 'via', linkAddr(k - 1, 'left')]);
        await ip(ns, ['-6', 'route', 'add', linkNet6(link), 'via', linkAddr6(k - 1, 'left')]);
      }
      for (let link = k + 1; link < links; link++) {
        await ip(ns, ['route', 'add', linkNet(link), 'via', linkAddr(k, 'right')]);
        await ip(ns, ['-6', 'route', 'add', linkNet6(link), 'via', linkAddr6(k, 'right')]);
      }
      await run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
      await run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
    }
  } catch (err) {
    await destroy();
    throw err;
  }
  return {
    site,
    routers,
    dc,
    siteAddr: linkAddr(0, 'left'),
    dcAddr: linkAddr(links - 1, 'right'),
    routerAddrs: routers.map((_, k) => linkAddr(k, 'right')),
    siteAddr6: linkAddr6(0, 'left'),
    dcAddr6: linkAddr6(links - 1, 'right'),
    routerAddrs6: routers.map((_, k) => linkAddr6(k, 'right')),
    nft: (router, ruleset) =>
      runWithInput('ip', ['netns', 'exec', routers[router - 1]!, 'nft', '-f', '-'], ruleset),
    async counter(router, table, name, family = 'ip') {
      const out = await run('ip', [
        'netns',
        'exec',
        routers[router - 1]!,
        'nft',
        '-j',
        'list',
        'counter',
        family,
        table,
        name,
      ]);
      const doc = JSON.parse(out) as { nftables: Array<{ counter?: { packets: number } }> };
      return doc.nftables.find((i) => i.counter)?.counter?.packets ?? 0;
    },
    destroy,
  };
}
