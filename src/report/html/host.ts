// The sections of a host-health result (`voipready.host/1`): disks with their days-until-full
// forecast, the event log's worst offenders (their messages are the host's text: escaped like any
// other), backups and the system's load.
import type { HostResult } from '../../host-schema.js';
import { facts, foldText, num } from './format.js';
import { html } from './markup.js';
import type { Section } from './probe.js';

const gib = (b: number | null) => (b === null ? '—' : `${num(b / 1024 ** 3, 1)} GiB`);

export function hostSections(h: HostResult): Section {
  const e = h.eventlog;
  const body = html`
<h2>The host</h2>
${facts([
  ['Host', h.host],
  ['Collected at', h.collectedAt],
  ['CPU', h.system.cpuPct === null ? null : `${num(h.system.cpuPct, 1)} %`],
  ['Memory used', h.system.memUsedPct === null ? null : `${num(h.system.memUsedPct, 1)} %`],
])}
<h2>Disks</h2>
<div class="table-wrap"><table>
<caption>Free space and the forecast at the growth seen</caption>
<thead><tr><th scope="col">Path</th><th scope="col">Mount</th><th scope="col" class="num">Free</th><th scope="col" class="num">Free %</th><th scope="col" class="num">Growth/day</th><th scope="col" class="num">Days until full</th><th scope="col">Note</th></tr></thead>
<tbody>${h.disks.map(
    (d) =>
      html`<tr><th scope="row">${foldText(d.path)}</th><td>${d.mount ?? '—'}</td><td class="num">${gib(d.freeBytes)}</td><td class="num">${num(d.freePct, 1)}</td><td class="num">${d.growthBytesPerDay === null ? '—' : gib(d.growthBytesPerDay)}</td><td class="num">${num(d.daysUntilFull, 1)}</td><td>${d.unknownReason ?? ''}</td></tr>`,
  )}</tbody></table></div>
<h2>System event log</h2>
${facts([
  ['Source', e.source],
  ['Since', e.since],
  ['Critical', e.critical === null ? 'unknown' : String(e.critical)],
  ['Errors', e.errors === null ? 'unknown' : String(e.errors)],
  ['Not read', e.unknownReason ?? null],
])}
${
  e.top.length
    ? html`<div class="table-wrap"><table>
<caption>Most frequent critical and error events</caption>
<thead><tr><th scope="col">Provider</th><th scope="col">Event id</th><th scope="col">Level</th><th scope="col" class="num">Count</th><th scope="col">Sample message</th></tr></thead>
<tbody>${e.top.map(
        (o) =>
          html`<tr><th scope="row">${foldText(o.provider)}</th><td>${o.eventId ?? '—'}</td><td>${o.level}</td><td class="num">${o.count}</td><td class="evidence">${foldText(o.sample)}</td></tr>`,
      )}</tbody></table></div>`
    : ''
}
<h2>Backups</h2>
<div class="table-wrap"><table>
<caption>Newest backup of each configured place</caption>
<thead><tr><th scope="col">Backup</th><th scope="col">Newest</th><th scope="col" class="num">Age</th><th scope="col">Note</th></tr></thead>
<tbody>${h.backups.map(
    (b) =>
      html`<tr><th scope="row">${b.name}</th><td>${b.newest ?? '—'}</td><td class="num">${b.ageHours === null ? '—' : `${num(b.ageHours, 1)} h`}</td><td>${foldText(b.failed ?? b.unknownReason ?? '')}</td></tr>`,
  )}</tbody></table></div>`;
  return { body, charts: [] };
}
