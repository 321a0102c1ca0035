/**
 * A drill report as one self-contained HTML page (no scripts, no external assets): the verdict, the figures
 * per phase, a timeline chart (p50/p99 latency and failed calls per second, the fault window shaded, keyring
 * transitions marked) and the transition list. Made to be attached to a change ticket.
 */
import type { DrillReport } from './drills';

const W = 900;
const H = 280;
const PAD = { left: 56, right: 56, top: 20, bottom: 36 };

const esc = (s: unknown): string => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmtMs = (v: number | null): string => (v === null ? '–' : `${v.toFixed(v < 10 ? 2 : 0)} ms`);

function chart(r: DrillReport): string {
  const pts = r.timeline;
  const seconds = Math.max(1, pts.length);
  const maxLat = Math.max(1, ...pts.map((p) => p.p99Ms ?? 0));
  const maxFail = Math.max(1, ...pts.map((p) => p.failed));
  const x = (s: number) => PAD.left + (s / seconds) * (W - PAD.left - PAD.right);
  const yLat = (ms: number) => H - PAD.bottom - (ms / maxLat) * (H - PAD.top - PAD.bottom);
  const yFail = (n: number) => H - PAD.bottom - (n / maxFail) * (H - PAD.top - PAD.bottom);
  // A path that breaks where a second had no successful call (a gap is not a slope).
  const line = (f: (p: (typeof pts)[0]) => number | null) => {
    let d = '';
    let pen = 'M';
    for (const p of pts) {
      const v = f(p);
      if (v === null) {
        pen = 'M';
        continue;
      }
      d += `${pen}${x(p.second + 0.5).toFixed(1)},${yLat(v).toFixed(1)} `;
      pen = 'L';
    }
    return d.trim();
  };
  const faultEnd = r.faultEndMs ?? (r.phase === 'during' ? seconds * 1000 : r.faultStartMs);
  const shade = r.faultStartMs > 0 ? `<rect x="${x(r.faultStartMs / 1000)}" y="${PAD.top}" width="${Math.max(0, x(faultEnd / 1000) - x(r.faultStartMs / 1000))}" height="${H - PAD.top - PAD.bottom}" fill="#fde2e2"/><text x="${x(r.faultStartMs / 1000) + 4}" y="${PAD.top + 12}" font-size="11" fill="#a33">fault: ${esc(r.spec.scenario)} on ${esc(r.spec.provider)}</text>` : '';
  const bars = pts.filter((p) => p.failed > 0).map((p) => `<rect x="${x(p.second)}" y="${yFail(p.failed)}" width="${Math.max(1, x(1) - x(0) - 1)}" height="${H - PAD.bottom - yFail(p.failed)}" fill="#d33" opacity="0.7"/>`).join('');
  const marks = r.transitions.slice(1).map((t) => `<line x1="${x(t.t / 1000)}" x2="${x(t.t / 1000)}" y1="${PAD.top}" y2="${H - PAD.bottom}" stroke="#555" stroke-dasharray="4 3"/><title>${esc(`${(t.t / 1000).toFixed(1)} s: acting active ${t.actingActive ?? 'none'}, ${t.healthy ? 'healthy' : `unhealthy (${t.reason})`}, leader ${t.leader || 'none'}${t.redisUp === false ? ', redis DOWN' : ''}`)}</title>`).join('');
  const ticks = Array.from({ length: 6 }, (_, i) => (seconds * i) / 5).map((s) => `<text x="${x(s)}" y="${H - PAD.bottom + 16}" font-size="11" text-anchor="middle">${s.toFixed(0)} s</text>`).join('');
  const latTicks = [0, 0.5, 1].map((f) => `<text x="${PAD.left - 6}" y="${yLat(maxLat * f) + 4}" font-size="11" text-anchor="end">${(maxLat * f).toFixed(maxLat < 10 ? 1 : 0)}</text>`).join('');
  const failTicks = [0, 1].map((f) => `<text x="${W - PAD.right + 6}" y="${yFail(maxFail * f) + 4}" font-size="11" fill="#d33">${Math.round(maxFail * f)}</text>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="canary latency and failures over time">
<rect width="${W}" height="${H}" fill="#fff"/>${shade}${bars}
<path fill="none" stroke="#2b6cb0" stroke-width="2" d="${line((p) => p.p50Ms)}"/>
<path fill="none" stroke="#9f7aea" stroke-width="1.5" d="${line((p) => p.p99Ms)}"/>${marks}
<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${H - PAD.bottom}" y2="${H - PAD.bottom}" stroke="#333"/>
<line x1="${PAD.left}" x2="${PAD.left}" y1="${PAD.top}" y2="${H - PAD.bottom}" stroke="#333"/>${ticks}${latTicks}${failTicks}
<text x="12" y="${PAD.top + 8}" font-size="11" transform="rotate(-90 12 ${PAD.top + 8})" text-anchor="end">latency (ms)</text>
<text x="${PAD.left}" y="${H - 4}" font-size="11"><tspan fill="#2b6cb0">━ p50</tspan>  <tspan fill="#9f7aea">━ p99</tspan>  <tspan fill="#d33">▮ failed calls/s</tspan>  ┆ transition</text>
</svg>`;
}

export function renderDrillHtml(r: DrillReport): string {
  const color = r.state === 'passed' ? '#1a7f37' : r.state === 'running' ? '#9a6700' : '#cf222e';
  const row = (name: string, p: DrillReport['phases']['before']) => `<tr><td>${name}</td><td>${p.calls}</td><td>${p.failed}</td><td>${fmtMs(p.p50Ms)}</td><td>${fmtMs(p.p99Ms)}</td></tr>`;
  const transitions = r.transitions.map((t) => `<tr><td>${(t.t / 1000).toFixed(2)} s</td><td>${esc(t.actingActive ?? 'none')}</td><td>${t.healthy ? 'healthy' : 'UNHEALTHY'}</td><td>${esc(t.roles)}</td><td>${esc(t.leader || 'none')}</td><td>${t.redisUp === null ? '-' : t.redisUp ? 'up' : 'DOWN'}</td><td>${esc(t.reason)}</td></tr>`).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kekbroker drill ${esc(r.id)}: ${esc(r.spec.scenario)} — ${esc(r.state)}</title>
<style>body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1f2328;max-width:960px}h1{font-size:20px}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left}
.verdict{font-size:16px;font-weight:600;color:${color}}.kv td:first-child{color:#57606a}</style></head><body>
<h1>Drill ${esc(r.id)} — ${esc(r.spec.scenario)} on keyring ${esc(r.spec.keyring)}</h1>
<p class="verdict">${esc(r.state.toUpperCase())}: ${esc(r.verdict)}</p>
<table class="kv">
<tr><td>provider</td><td>${esc(r.spec.provider)}</td></tr>
<tr><td>started / ended</td><td>${esc(r.startedAt)} / ${esc(r.endedAt ?? 'running')}</td></tr>
<tr><td>requested by</td><td>${esc(r.requestedBy)}${r.spec.reason ? ` — ${esc(r.spec.reason)}` : ''}</td></tr>
<tr><td>plan</td><td>${r.spec.warmupSeconds} s before, ${r.spec.durationSeconds} s of fault, ${r.spec.recoverySeconds} s after; ${r.spec.canaryPerSecond} canary wrap+unwrap/s as tenant ${esc(r.spec.tenant)}</td></tr>
<tr><td>time to failover</td><td>${r.timeToFailoverMs === null ? 'no failover observed' : `${r.timeToFailoverMs} ms`}</td></tr>
<tr><td>time to recovery</td><td>${r.timeToRecoveryMs === null ? 'not within the recovery window' : `${r.timeToRecoveryMs} ms`}</td></tr>
<tr><td>wrong answers</td><td>${r.wrongAnswers}</td></tr>
</table>
${chart(r)}
<h2>Canary calls per phase</h2>
<table><tr><th>phase</th><th>calls</th><th>failed</th><th>p50</th><th>p99</th></tr>${row('before', r.phases.before)}${row('during fault', r.phases.during)}${row('after', r.phases.after)}</table>
<h2>Transitions</h2>
<table><tr><th>at</th><th>acting active</th><th>health</th><th>roles</th><th>leader</th><th>redis</th><th>reason</th></tr>${transitions}</table>
</body></html>`;
}
