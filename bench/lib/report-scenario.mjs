// The per-scenario tables: which columns each kind of scenario shows (TABLES) and how a row is built from the runs
// of one broker.
import { REFERENCES } from './brokers.mjs'
import { fmtNum, med, ratio } from './report-format.mjs'
import { median } from './stats.mjs'

/** Column kinds: m = median [min–max]; r = ratio of medians vs a reference broker; s = sum; c = custom(fn). */
const TABLES = {
  rate: [
    { label: 'msgs/s', key: 'rate', kind: 'm', d: 0, ratios: true, better: 'higher' },
    { label: 'warm-up round msgs/s', key: 'cold', kind: 'm', d: 0, noRange: true },
    { label: 'broker CPU', key: 'brokerCpu', kind: 'm', d: 2 },
    { label: 'gen CPU', key: 'genCpu', kind: 'm', d: 2 },
    { label: 'broker peak RSS MB', key: 'peakRssMB', kind: 'm', d: 0, noRange: true },
    { label: 'lost (sum)', key: 'lost', kind: 's' },
    { label: 'pending at cap (sum)', key: 'pending', kind: 's' },
    { label: 'dup (sum)', key: 'dup', kind: 's' },
    { label: 'unacked (sum)', key: 'unacked', kind: 's' }
  ],
  latency: [
    { label: 'p50 ms', key: 'p50', kind: 'm', d: 3, ratios: true, better: 'lower' },
    { label: 'p99 ms', key: 'p99', kind: 'm', d: 3, ratios: true, better: 'lower' },
    { label: 'p99.9 ms', key: 'p999', kind: 'm', d: 3 },
    { label: 'max ms', key: 'max', kind: 'm', d: 2, noRange: true },
    { label: 'achieved msg/s', key: 'achieved', kind: 'm', d: 0, noRange: true },
    { label: 'broker CPU', key: 'brokerCpu', kind: 'm', d: 2 },
    { label: 'lost (sum)', key: 'lost', kind: 's' },
    { label: 'dup (sum)', key: 'dup', kind: 's' }
  ],
  connections: [
    { label: 'connects/s', key: 'rate', kind: 'm', d: 0, ratios: true, better: 'higher' },
    { label: 'KB per conn (held)', key: 'kbPerConn', kind: 'm', d: 1, ratios: true, better: 'lower' },
    { label: 'KB per conn (just connected)', key: 'kbPerConnAtConnect', kind: 'm', d: 1 },
    { label: 'broker µs per connect', key: 'brokerUsPerConnect', kind: 'm', d: 0, ratios: true, better: 'lower' },
    { label: 'idle CPU', key: 'idleCpu', kind: 'm', d: 3 },
    { label: 'probe p99 alone ms', key: 'probeAloneP99', kind: 'm', d: 3 },
    { label: 'probe p99 held ms', key: 'probeLoadedP99', kind: 'm', d: 3, ratios: true, better: 'lower' },
    { label: 'probe p99 held / alone', key: 'probeRatio', kind: 'm', d: 2 },
    { label: 'connect p99 ms', key: 'connectP99Ms', kind: 'm', d: 0 },
    { label: 'RSS before / held / after MB', key: 'rssHeldMB', kind: 'c', fn: rs => rs.map(r => `${Math.round(r.rssBeforeMB)} / ${Math.round(r.rssHeldMB)} / ${Math.round(r.rssAfterMB)}`).join('; ') },
    { label: 'connected', key: 'connected', kind: 'm', d: 0, noRange: true },
    { label: 'failed (sum)', key: 'failed', kind: 's' },
    { label: 'dropped while held (sum)', key: 'dropped', kind: 's' }
  ],

  offline: [
    { label: 'drain msgs/s', key: 'drainRate', kind: 'm', d: 0, ratios: true, refs: ['aedes-mem', 'aedes-level', 'mosquitto'], better: 'higher' },
    { label: 'warm-up round drain msgs/s', key: 'cold', kind: 'm', d: 0, ratios: true, refs: ['aedes-mem', 'aedes-level', 'mosquitto'], better: 'higher' },
    { label: 'reconnect→1st ms', key: 'reconnectToFirstMs', kind: 'm', d: 1 },
    { label: 'reconnect→all s', key: 'reconnectToAllS', kind: 'm', d: 2 },
    { label: 'enqueue msgs/s', key: 'enqueueRate', kind: 'm', d: 0, ratios: true, better: 'higher' },
    { label: 'received', key: 'received', kind: 'm', d: 0 },
    { label: 'session present', key: 'sessionPresent', kind: 'c', fn: rs => `${rs.filter(r => r.sessionPresent).length}/${rs.length}` },
    { label: 'queued RSS MB', key: 'queuedRssMB', kind: 'm', d: 0, noRange: true },
    { label: 'restart s', key: 'restartMs', kind: 'm', d: 2, scale: 1 / 1000 },
    { label: 'lost (sum)', key: 'lost', kind: 's' },
    { label: 'pending at cap (sum)', key: 'pending', kind: 's' },
    { label: 'dup (sum)', key: 'dup', kind: 's' }
  ],
  retained: [
    { label: 'SUB wildcard → 1st ms', key: 'wildFirstMs', kind: 'm', d: 2, ratios: true, better: 'lower' },
    { label: 'wildcard → all ms', key: 'wildAllMs', kind: 'm', d: 2, ratios: true, better: 'lower' },
    { label: 'many matches msgs/s', key: 'bulkRate', kind: 'm', d: 0, ratios: true, better: 'higher' },
    { label: 'first SUBSCRIBE: wildcard → all ms', key: 'coldWildAllMs', kind: 'm', d: 2 },
    { label: 'first SUBSCRIBE: many msgs/s', key: 'coldBulkRate', kind: 'm', d: 0 },
    { label: 'SUB exact → 1st ms', key: 'exactFirstMs', kind: 'm', d: 2, ratios: true, better: 'lower' },
    { label: 'store msgs/s', key: 'storeRate', kind: 'm', d: 0, ratios: true, better: 'higher' },
    { label: 'RSS stored MB', key: 'rssAfterStoreMB', kind: 'm', d: 0, noRange: true },
    { label: 'wildcard got', key: 'wildReceived', kind: 'c', fn: rs => `${fmtNum(median(rs.map(r => r.wildReceived)), 0)}/${rs[0]?.wildExpected ?? '?'}` }
  ],
  // the cluster scenarios: ratios against the aedes recipe on the same Redis; CPU over every process of the cluster
  cluster: [
    { label: 'msgs/s', key: 'rate', kind: 'm', d: 0, ratios: true, refs: ['aedes-cluster'], better: 'higher' },
    { label: 'warm-up round msgs/s', key: 'cold', kind: 'm', d: 0, noRange: true },
    { label: 'CPU, nodes + Redis', key: 'brokerCpu', kind: 'm', d: 2 },
    { label: 'of which Redis', key: 'redisCpu', kind: 'm', d: 2 },
    { label: 'CPU µs per msg', key: 'cpuUsPerMsg', kind: 'm', d: 1, ratios: true, refs: ['aedes-cluster'], better: 'lower' },
    { label: 'Redis calls per msg', key: 'redisCallsPerMsg', kind: 'm', d: 2 },
    { label: 'commonest calls per msg (rep 1)', key: 'redisTopCalls', kind: 'c', fn: rs => rs[0]?.redisTopCalls ?? '–' },
    { label: 'gen CPU', key: 'genCpu', kind: 'm', d: 2 },
    { label: 'lost (sum)', key: 'lost', kind: 's' },
    { label: 'pending at cap (sum)', key: 'pending', kind: 's' },
    { label: 'dup (sum)', key: 'dup', kind: 's' },
    { label: 'unacked (sum)', key: 'unacked', kind: 's' }
  ],
  'cluster-offline': [
    { label: 'drain msgs/s', key: 'drainRate', kind: 'm', d: 0, ratios: true, refs: ['aedes-cluster'], better: 'higher' },
    { label: 'warm-up round drain msgs/s', key: 'cold', kind: 'm', d: 0, noRange: true },
    { label: 'reconnect→all s', key: 'reconnectToAllS', kind: 'm', d: 2 },
    { label: 'enqueue msgs/s', key: 'enqueueRate', kind: 'm', d: 0, ratios: true, refs: ['aedes-cluster'], better: 'higher' },
    { label: 'received', key: 'received', kind: 'm', d: 0 },
    { label: 'session present', key: 'sessionPresent', kind: 'c', fn: rs => `${rs.filter(r => r.sessionPresent).length}/${rs.length}` },
    { label: 'drain CPU µs per msg', key: 'drainCpuUsPerMsg', kind: 'm', d: 1 },
    { label: 'Redis calls per msg, enqueue', key: 'redisCallsEnqueue', kind: 'm', d: 2 },
    { label: 'Redis calls per msg, drain', key: 'redisCallsDrain', kind: 'm', d: 2 },
    { label: 'lost (sum)', key: 'lost', kind: 's' },
    { label: 'of the lost, delivered at a second CONNECT (sum)', key: 'secondConnectReceived', kind: 's' },
    { label: 'pending at cap (sum)', key: 'pending', kind: 's' },
    { label: 'dup (sum)', key: 'dup', kind: 's' }
  ],
  shared: [
    { label: 'delivered/sent', key: 'deliveredRatio', kind: 'm', d: 3 },
    { label: 'msgs/s', key: 'rate', kind: 'm', d: 0, ratios: true, refs: ['mosquitto'], better: 'higher' },
    { label: 'warm-up round msgs/s', key: 'cold', kind: 'm', d: 0, ratios: true, refs: ['mosquitto'], better: 'higher' },
    { label: 'SUBACK codes (rep 1)', key: 'granted', kind: 'c', fn: rs => (rs[0]?.granted ?? []).map(c => '0x' + c.toString(16).padStart(2, '0')).join(' ') },
    { label: 'members (rep 1)', key: 'perMember', kind: 'c', fn: rs => (rs[0]?.perMember ?? []).join('/') },
    { label: 'lost (sum)', key: 'lost', kind: 's' },
    { label: 'dup (sum)', key: 'dup', kind: 's' }
  ]
}

function cellMedian (rs, col) {
  const scale = col.scale ?? 1
  const vals = rs.map(r => r[col.key]).filter(v => typeof v === 'number' && Number.isFinite(v)).map(v => v * scale)
  if (vals.length === 0) return '–'
  const m = median(vals)
  if (col.noRange || vals.length === 1) return fmtNum(m, col.d)
  return `${fmtNum(m, col.d)} [${fmtNum(Math.min(...vals), col.d)}–${fmtNum(Math.max(...vals), col.d)}]`
}

export function renderScenario (records, scenario, brokers, specs) {
  const spec = specs[scenario] ?? {}
  const cols = TABLES[spec.table ?? records.find(r => r.scenario === scenario)?.table ?? 'rate']
  const present = brokers.filter(b => records.some(r => r.scenario === scenario && r.broker === b))
  const header = ['broker']
  for (const c of cols) {
    header.push(c.label)
    if (c.ratios) for (const ref of c.refs ?? REFERENCES) if (present.includes(ref)) header.push(`× ${ref}`)
    if (c.ratios && spec.v311 !== undefined) header.push(`× itself in ${spec.v311} (MQTT 3.1.1)`)
  }
  header.push('runs ok')
  const lines = [`### ${scenario}`, '', spec.desc ?? '', '', `| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`]
  for (const b of present) {
    const all = records.filter(r => r.scenario === scenario && r.broker === b)
    const ok = all.filter(r => r.ok)
    const row = [b]
    for (const c of cols) {
      if (c.kind === 'm') row.push(cellMedian(ok, c))
      else if (c.kind === 's') row.push(ok.some(r => typeof r[c.key] === 'number') ? fmtNum(ok.reduce((s, r) => s + (r[c.key] ?? 0), 0), 0) : '–')
      else row.push(c.fn(ok))
      if (c.ratios) {
        for (const ref of c.refs ?? REFERENCES) {
          if (!present.includes(ref)) continue
          row.push(fmtNum(ratio(med(records, scenario, b, c.key), med(records, scenario, ref, c.key)), 2))
        }
        if (spec.v311 !== undefined) row.push(fmtNum(ratio(med(records, scenario, b, c.key), med(records, spec.v311, b, c.key)), 2))
      }
    }
    row.push(`${ok.length}/${all.length}`)
    lines.push(`| ${row.join(' | ')} |`)
  }
  const failures = records.filter(r => r.scenario === scenario && !r.ok)
  for (const f of failures) lines.push('', `- ${f.broker} rep ${f.rep + 1} failed: ${f.error}`)
  return lines.join('\n')
}
