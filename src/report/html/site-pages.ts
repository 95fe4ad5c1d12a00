// The collector's own pages besides the report: the sites overview (sortable without JavaScript:
// the column headers are links that sort on the server), a site that has no evidence yet, and the
// login form that puts a viewer token into a cookie. Pure: rows in, HTML out.
import type { Check } from '../../schemas.js';
import { checkLabel, checksTable, verdictBlock } from './checks.js';
import { ageText } from './format.js';
import { type Html, html } from './markup.js';
import { renderPage } from './page.js';

export interface SiteRow {
  site: string;
  ready: boolean;
  stale: boolean;
  /** When the evidence was measured; null when the site never reported. */
  measuredAt: string | null;
  validUntil: string | null;
  /** Checks not passing now (fail, then unknown, then warn). */
  notPassing: Check[];
}

export const SORT_KEYS = ['site', 'readiness', 'age', 'failing'] as const;
export type SortKey = (typeof SORT_KEYS)[number];
export type SortDir = 'asc' | 'desc';

const readinessRank = (r: SiteRow) => (r.ready ? 3 : r.measuredAt === null ? 0 : r.stale ? 1 : 2);
const ageMs = (r: SiteRow, nowMs: number) =>
  r.measuredAt === null ? Number.POSITIVE_INFINITY : nowMs - Date.parse(r.measuredAt);

/** Sorted rows; ties broken by site name so the order is stable. */
export function sortSites(rows: SiteRow[], key: SortKey, dir: SortDir, nowMs: number): SiteRow[] {
  const by: Record<SortKey, (a: SiteRow, b: SiteRow) => number> = {
    site: () => 0,
    readiness: (a, b) => readinessRank(a) - readinessRank(b),
    age: (a, b) => ageMs(a, nowMs) - ageMs(b, nowMs),
    failing: (a, b) => a.notPassing.length - b.notPassing.length,
  };
  const sign = dir === 'asc' ? 1 : -1;
  return [...rows].sort((a, b) => sign * (by[key](a, b) || a.site.localeCompare(b.site)));
}

const sitePath = (site: string) => `/sites/${encodeURIComponent(site)}`;

export const pageNav = (): Html =>
  html`<a href="/sites">Sites</a><form method="post" action="/logout"><button type="submit">Sign out</button></form>`;

function readinessText(r: SiteRow): Html {
  if (r.measuredAt === null) return html`<span class="status status-unknown">no evidence</span>`;
  if (r.stale) return html`<span class="status status-unknown">stale</span>`;
  return r.ready
    ? html`<span class="status status-pass">ready</span>`
    : html`<span class="status status-fail">not ready</span>`;
}

export function renderSitesOverview(
  rows: SiteRow[],
  sort: { key: SortKey; dir: SortDir },
  nowMs: number,
): string {
  const sorted = sortSites(rows, sort.key, sort.dir, nowMs);
  const header = (key: SortKey, label: string) => {
    const active = sort.key === key;
    const next: SortDir = active && sort.dir === 'asc' ? 'desc' : 'asc';
    const ariaSort = active ? (sort.dir === 'asc' ? 'ascending' : 'descending') : 'none';
    return html`<th scope="col" aria-sort="${ariaSort}"><a class="sort" href="/sites?sort=${key}&amp;dir=${next}">${label}${active ? (sort.dir === 'asc' ? ' ▲' : ' ▼') : ''}</a></th>`;
  };
  const ready = rows.filter((r) => r.ready).length;
  const body = html`<section aria-labelledby="overview-heading">
<h2 id="overview-heading">${ready} of ${rows.length} sites VoIP-ready</h2>
<p class="muted">A site is ready when every network check passes in an assessment that is still valid; stale or missing evidence is not ready. Click a column to sort.</p>
<div class="table-wrap"><table class="sites">
<caption>Sites: readiness now, evidence age and the checks that keep a site from being ready</caption>
<thead><tr>${header('site', 'Site')}${header('readiness', 'Readiness')}${header('age', 'Evidence age')}${header('failing', 'Checks not passing')}<th scope="col">Valid until</th></tr></thead>
<tbody>${sorted.map(
    (r) =>
      html`<tr><th scope="row"><a href="${sitePath(r.site)}">${r.site}</a></th><td>${readinessText(r)}</td><td class="num">${r.measuredAt === null ? '—' : html`<time datetime="${r.measuredAt}">${ageText(nowMs - Date.parse(r.measuredAt))}</time>`}</td><td>${
        r.notPassing.length === 0
          ? '—'
          : r.notPassing.map(
              (c, i) =>
                html`${i ? ', ' : ''}${checkLabel(c.id)} <span class="muted">(${c.status === 'unknown' ? 'not measured' : c.status})</span>`,
            )
      }</td><td>${r.validUntil ?? '—'}</td></tr>`,
  )}</tbody></table></div>
</section>`;
  return renderPage({
    title: 'voipready: sites',
    subtitle: `every site the collector knows, at ${new Date(nowMs).toISOString()}`,
    nav: pageNav(),
    body,
    charts: [],
    footer: 'Made by the voipready collector.',
  });
}

/** A configured site that has not reported: every network check unknown, with the reason. */
export function renderSiteWithoutEvidence(site: string, checks: Check[]): string {
  return renderPage({
    title: `VoIP readiness: site ${site}`,
    subtitle: 'no report received from this site yet',
    nav: pageNav(),
    body: html`${verdictBlock({ ready: false, checks, subject: `site ${site}`, anchorPrefix: 'check-' })}
<h2>Handbook checks</h2>
${checksTable(checks, 'Every network check waits for evidence', 'check-')}`,
    charts: [],
    footer: 'Made by the voipready collector.',
  });
}

export function renderLogin(opts: { next: string; message?: string }): string {
  return renderPage({
    title: 'voipready: sign in',
    subtitle: 'the collector pages need a viewer token (the same one the API takes as a bearer token)',
    body: html`${opts.message ? html`<p role="alert" class="status status-fail">${opts.message}</p>` : ''}
<form class="login" method="post" action="/login">
<label for="token">Viewer token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required maxlength="512">
<input type="hidden" name="next" value="${opts.next}">
<button type="submit">Sign in</button>
</form>
<p class="muted">The token is kept in an HttpOnly, SameSite=Strict cookie for this collector only, for 12 hours, and removed by Sign out.</p>`,
    charts: [],
    footer: 'Made by the voipready collector.',
  });
}

export function renderNotFound(message: string): string {
  return renderPage({
    title: 'voipready: not found',
    nav: pageNav(),
    body: html`<p role="alert">${message}</p><p><a href="/sites">All sites</a></p>`,
    charts: [],
    footer: 'Made by the voipready collector.',
  });
}
