// The cluster part of the report: Culex's cluster against aedes' Redis recipe (same run), the single-node cost of
// the Redis store against LevelDB, aggregate throughput over 1-2-3 nodes, and the cluster targets with PASS / MISS.
import { fmtNum, med, ratio } from './report-format.mjs'

const CULEX = 'culex-cluster'
const AEDES = 'aedes-cluster'
const SCALE = ['cluster-scale-1', 'cluster-scale-2', 'cluster-scale-3']
const LOSSY = ['cluster-fanin', 'cluster-offline', 'cluster-offline-a', ...SCALE]

function range (records, s, b, key) {
  const vs = records.filter(r => r.ok && r.scenario === s && r.broker === b).map(r => r[key]).filter(Number.isFinite)
  if (vs.length === 0) return '–'
  const m = med(records, s, b, key)
  return vs.length === 1 ? fmtNum(m, 0) : `${fmtNum(m, 0)} [${fmtNum(Math.min(...vs), 0)}–${fmtNum(Math.max(...vs), 0)}]`
}

const sum = (records, s, b, key) => records.filter(r => r.ok && r.scenario === s && r.broker === b).reduce((t, r) => t + (r[key] ?? 0), 0)
const runs = (records, s, b) => `${records.filter(r => r.ok && r.scenario === s && r.broker === b).length}/${records.filter(r => r.scenario === s && r.broker === b).length}`

/** Markdown for the cluster section, or '' when the run had no cluster scenario. */
export function renderCluster (records) {
  if (!records.some(r => r.scenario.startsWith('cluster-'))) return ''
  const out = ['## Cluster (median [min–max]; × = Culex / the aedes recipe, same run)', '']
  out.push(`| figure | ${CULEX} | ${AEDES} | × |`, '| --- | --- | --- | --- |')
  const row = (label, s, key, lossKey) => {
    if (!records.some(r => r.scenario === s)) return
    const x = ratio(med(records, s, CULEX, key), med(records, s, AEDES, key))
    const lost = b => lossKey ? `; lost ${fmtNum(sum(records, s, b, lossKey), 0)} of ${fmtNum(sum(records, s, b, 'acked'), 0)}` : ''
    out.push(`| ${label} | ${range(records, s, CULEX, key)} (${runs(records, s, CULEX)} runs${lost(CULEX)}) | ${range(records, s, AEDES, key)} (${runs(records, s, AEDES)} runs${lost(AEDES)}) | ${fmtNum(x, 2)} |`)
  }
  row('fan-in, 8 publishers on A → persistent subscriber on B (msgs/s)', 'cluster-fanin', 'rate', 'lost')
  row('offline: enqueue on A for a session of B (msgs/s)', 'cluster-offline', 'enqueueRate')
  row('offline: drain, reconnect to B (msgs/s)', 'cluster-offline', 'drainRate', 'lost')
  row('offline: drain, reconnect to A (msgs/s)', 'cluster-offline-a', 'drainRate', 'lost')
  for (const [i, s] of SCALE.entries()) row(`6 pairs over ${i + 1} node${i ? 's' : ''}, aggregate (msgs/s)`, s, 'rate', 'lost')
  const growth = b => SCALE.map(s => med(records, s, b, 'rate')).map((v, i, all) => i === 0 ? '1.00' : fmtNum(ratio(v, all[0]), 2)).join(' → ')
  if (SCALE.some(s => records.some(r => r.scenario === s))) out.push(`| growth 1 → 2 → 3 nodes | ${growth(CULEX)} | ${growth(AEDES)} | |`)
  if (records.some(r => r.scenario === 'fanin-q1-persist' && r.broker === 'culex-redis')) {
    const x = ratio(med(records, 'fanin-q1-persist', 'culex-redis', 'rate'), med(records, 'fanin-q1-persist', 'culex', 'rate'))
    out.push('', `Single node, fan-in QoS 1 to a persistent subscriber: LevelDB (culex) ${range(records, 'fanin-q1-persist', 'culex', 'rate')} msgs/s, Redis (culex-redis) ${range(records, 'fanin-q1-persist', 'culex-redis', 'rate')} msgs/s: Redis at ${fmtNum(x, 2)}× LevelDB.`)
  }
  out.push('', '### Cluster targets', '', '| target | measured (medians, same run) | result |', '| --- | --- | --- |')
  const target = (name, s, key) => {
    const c = med(records, s, CULEX, key)
    const a = med(records, s, AEDES, key)
    const x = ratio(c, a)
    out.push(`| ${name} | ${c === null || a === null ? `needs ${CULEX} and ${AEDES} in ${s}` : `${fmtNum(c, 0)} vs ${fmtNum(a, 0)} = ${fmtNum(x, 2)}× (need ≥ 2)`} | ${x === null ? 'n/a' : x >= 2 ? 'PASS' : 'MISS'} |`)
  }
  target('cluster fan-in ≥ 2× the aedes recipe', 'cluster-fanin', 'rate')
  target('cluster offline drain (reconnect to B) ≥ 2× the aedes recipe', 'cluster-offline', 'drainRate')
  target('cluster offline drain (reconnect to A) ≥ 2× the aedes recipe', 'cluster-offline-a', 'drainRate')
  const ran = LOSSY.filter(s => records.some(r => r.scenario === s && r.broker === CULEX))
  if (ran.length > 0) {
    const lost = b => ran.reduce((t, s) => t + sum(records, s, b, 'lost'), 0)
    const failed = ran.reduce((t, s) => t + records.filter(r => r.scenario === s && r.broker === CULEX && !r.ok).length, 0)
    out.push(`| 0 lost where the aedes recipe loses (${ran.join(', ')}) | Culex ${fmtNum(lost(CULEX), 0)} lost${failed ? ` (${failed} runs failed)` : ''}; the aedes recipe ${fmtNum(lost(AEDES), 0)} | ${lost(CULEX) === 0 && failed === 0 ? 'PASS' : 'MISS'} |`)
  }
  return out.join('\n')
}
