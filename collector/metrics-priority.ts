// The priority test's series on the collector's registry (docs/probe.md, "Priority under load"):
// from each site's latest report, per peer probed with --priority-test, EF and best effort side by
// side, filled at scrape time, base units. Labels: site, peer, class (ef, be), quantile.
import { Gauge, type Registry } from 'prom-client';
import type { CheckStatus } from '../src/schemas.js';
import type { SiteLatest } from './store/store.js';

const HONOURED: Record<CheckStatus, number> = { pass: 1, warn: 0, fail: 0, unknown: -1 };
const CLASSES = ['ef', 'be'] as const;

export function registerPriorityMetrics(registry: Registry, latest: () => Iterable<SiteLatest>): void {
  const each = (
    fn: (
      site: string,
      peer: string,
      p: NonNullable<SiteLatest['report']['probes'][number]['priority']>,
      l: SiteLatest,
    ) => void,
  ) => {
    for (const l of latest()) {
      for (const probe of l.report.probes)
        if (probe.priority) fn(l.report.site, probe.peer, probe.priority, l);
    }
  };
  new Gauge({
    name: 'voipready_priority_honoured',
    help: '1 when EF kept its limits while best effort queued under the priority test load, 0 when it degraded with it, -1 when unknown (the load never congested the path, or no load was sent).',
    labelNames: ['site', 'peer'] as const,
    registers: [registry],
    collect() {
      this.reset();
      each((site, peer, _p, l) => {
        const check = l.assessment.peers
          .find((x) => x.peer === peer)
          ?.checks.find((c) => c.id === 'priority');
        if (check) this.set({ site, peer }, HONOURED[check.status]);
      });
    },
  });
  new Gauge({
    name: 'voipready_priority_added_delay_seconds',
    help: 'Forward delay added under the priority test load (loaded phase over unloaded, per quantile) per class: ef, be.',
    labelNames: ['site', 'peer', 'class', 'quantile'] as const,
    registers: [registry],
    collect() {
      this.reset();
      each((site, peer, p) => {
        for (const cls of CLASSES) {
          const c = p[cls];
          if (c.addedDelayP50Ms !== null)
            this.set({ site, peer, class: cls, quantile: '0.5' }, c.addedDelayP50Ms / 1000);
          if (c.addedDelayP95Ms !== null)
            this.set({ site, peer, class: cls, quantile: '0.95' }, c.addedDelayP95Ms / 1000);
        }
      });
    },
  });
  new Gauge({
    name: 'voipready_priority_loss_ratio',
    help: 'Round-trip loss in the loaded phase of the priority test per class: ef, be.',
    labelNames: ['site', 'peer', 'class'] as const,
    registers: [registry],
    collect() {
      this.reset();
      each((site, peer, p) => {
        for (const cls of CLASSES) this.set({ site, peer, class: cls }, p[cls].loaded.lossPct / 100);
      });
    },
  });
  new Gauge({
    name: 'voipready_priority_load_sent_bytes_per_second',
    help: 'Best-effort load the priority test sent in its loaded phase, IP bytes per second.',
    labelNames: ['site', 'peer'] as const,
    registers: [registry],
    collect() {
      this.reset();
      each((site, peer, p) => this.set({ site, peer }, p.loadSentBps / 8));
    },
  });
}
