// The benchmarks' reference traffic: one iperf3 test between the namespace topology's site and data
// centre, server and client each under GNU time, so their CPU and peak RSS stand beside ours.
import { join } from 'node:path';
import { DC_ADDR, type Topology } from '../tests/helpers/netns.js';
import { exitOf, readUsage, timeWrapper, type Usage } from './usage.js';

/**
 * Runs `iperf3 -s -1` bound to the data centre's address and `iperf3 -c DC_ADDR CLIENT_ARGS` from the
 * site; time files in `dir` named by `tag`. Throws when the client fails.
 */
export async function timedIperf(
  topo: Topology,
  dir: string,
  tag: string,
  clientArgs: string[],
): Promise<{ client: Usage; server: Usage }> {
  const serverTime = join(dir, `iperf3-server-${tag}.time`);
  const clientTime = join(dir, `iperf3-client-${tag}.time`);
  const serverDone = exitOf('ip', [
    ...['netns', 'exec', topo.dc, ...timeWrapper(serverTime)],
    ...['iperf3', '-s', '-1', '-B', DC_ADDR],
  ]);
  await new Promise((r) => setTimeout(r, 500));
  const code = await exitOf('ip', [
    ...['netns', 'exec', topo.site, ...timeWrapper(clientTime)],
    ...['iperf3', '-c', DC_ADDR, ...clientArgs],
  ]);
  await serverDone;
  if (code !== 0) throw new Error(`iperf3 client exited ${code}`);
  return { client: readUsage(clientTime), server: readUsage(serverTime) };
}
