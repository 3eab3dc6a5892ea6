// The issue's performance targets, checked against the medians of the same run so that machine noise between runs
// does not decide PASS / MISS.
import { fmtNum, med, ratio } from './report-format.mjs'

export function renderTargets (records) {
  const rows = []
  const target = (name, measure) => {
    const { measured, pass } = measure()
    rows.push(`| ${name} | ${measured} | ${pass === null ? 'n/a' : pass ? 'PASS' : 'MISS'} |`)
  }
  const has = (s, b) => records.some(r => r.ok && r.scenario === s && r.broker === b)
  const rateRatio = (s, b, ref, key, need) => () => {
    if (!has(s, b) || !has(s, ref)) return { measured: `needs ${b} and ${ref} in ${s}`, pass: null }
    const x = ratio(med(records, s, b, key), med(records, s, ref, key))
    return { measured: `${fmtNum(med(records, s, b, key), 0)} vs ${fmtNum(med(records, s, ref, key), 0)} = ${fmtNum(x, 2)}× (need ≥ ${need})`, pass: x !== null && x >= need }
  }
  for (const b of ['culex', 'culex-sync']) {
    if (!records.some(r => r.broker === b)) continue
    target(`${b}: fan-in QoS 1 to a persistent subscriber ≥ aedes-mem`, rateRatio('fanin-q1-persist', b, 'aedes-mem', 'rate', 1))
    target(`${b}: fan-in QoS 2 to a persistent subscriber ≥ aedes-mem`, rateRatio('fanin-q2-persist', b, 'aedes-mem', 'rate', 1))
    target(`${b}: offline drain ≥ 2× aedes-mem`, rateRatio('offline', b, 'aedes-mem', 'drainRate', 2))
    target(`${b}: offline drain ≥ 20× aedes-level`, rateRatio('offline', b, 'aedes-level', 'drainRate', 20))
    target(`${b}: SIGKILL between publish and reconnect, 0 lost`, () => {
      const rs = records.filter(r => r.scenario === 'offline-kill' && r.broker === b)
      if (rs.length === 0) return { measured: 'not run', pass: null }
      const ok = rs.filter(r => r.ok)
      const lost = ok.reduce((s, r) => s + r.lost, 0)
      const pending = ok.reduce((s, r) => s + (r.pending ?? 0), 0)
      const total = ok.reduce((s, r) => s + r.acked, 0)
      return { measured: `${fmtNum(lost, 0)} of ${fmtNum(total, 0)} acknowledged lost${pending ? ` (${fmtNum(pending, 0)} still pending at the drain cap)` : ''} over ${ok.length}/${rs.length} runs`, pass: ok.length === rs.length && lost === 0 && ok.every(r => r.received >= r.messages) }
    })
    target(`${b}: SUBSCRIBE with ${records.find(r => r.scenario === 'retained')?.stored ?? '100k'} retained → first message < 10 ms`, () => {
      if (!has('retained', b)) return { measured: 'not run', pass: null }
      const w = med(records, 'retained', b, 'wildFirstMs')
      const e = med(records, 'retained', b, 'exactFirstMs')
      const worst = Math.max(...records.filter(r => r.ok && r.scenario === 'retained' && r.broker === b).flatMap(r => [r.wildFirstMsMax, r.exactFirstMsMax]).map(v => v ?? Infinity))
      return { measured: `wildcard ${fmtNum(w, 2)} ms, exact ${fmtNum(e, 2)} ms (medians; worst probe ${fmtNum(worst, 2)} ms)`, pass: w !== null && e !== null && w < 10 && e < 10 }
    })
    retainedTargets(records, b, target, has, rateRatio)
    target(`${b}: shared subscription ≥ mosquitto (same scenario)`, rateRatio('shared', b, 'mosquitto', 'rate', 1))
    target(`${b}: shared subscription within 10 % of the same load on a plain subscription`, () => {
      if (!has('shared', b) || !has('shared-plain', b)) return { measured: `needs ${b} in shared and shared-plain`, pass: null }
      const x = ratio(med(records, 'shared', b, 'rate'), med(records, 'shared-plain', b, 'rate'))
      return { measured: `${fmtNum(med(records, 'shared', b, 'rate'), 0)} vs ${fmtNum(med(records, 'shared-plain', b, 'rate'), 0)} = ${fmtNum(x, 2)}× (need ≥ 0.9)`, pass: x !== null && x >= 0.9 }
    })
    connectionTargets(records, b, target, has)
    v5Targets(records, b, target, has, rateRatio)
  }
  if (rows.length === 0) return '(no culex runs: targets not evaluated)'
  return ['| target | measured (medians, same run) | result |', '| --- | --- | --- |', ...rows].join('\n')
}

/** Issue 16's retained targets: the last of 100 matches within 5 ms, 10 000 matches at ≥ 100 000 msgs/s, the store rate. */
function retainedTargets (records, b, target, has, rateRatio) {
  if (!has('retained', b)) return
  const m = key => med(records, 'retained', b, key)
  const rs = records.filter(r => r.ok && r.scenario === 'retained' && r.broker === b)
  target(`${b}: SUBSCRIBE matching ${rs[0]?.wildExpected ?? 100} of ${fmtNum(rs[0]?.stored, 0)} retained → all delivered within 5 ms`, () => ({
    measured: `${fmtNum(m('wildAllMs'), 2)} ms (median; worst probe ${fmtNum(Math.max(...rs.map(r => r.wildAllMsMax ?? Infinity)), 2)} ms)`,
    pass: m('wildAllMs') !== null && m('wildAllMs') <= 5
  }))
  target(`${b}: SUBSCRIBE matching ${fmtNum(rs[0]?.bulkExpected, 0)} retained → ≥ 100,000 msgs/s`, () => ({
    measured: `${fmtNum(m('bulkRate'), 0)} msgs/s (${fmtNum(m('bulkAllMs'), 1)} ms to the last)`,
    pass: m('bulkRate') !== null && m('bulkRate') >= 100000
  }))
  target(`${b}: retained store rate ≥ mosquitto`, rateRatio('retained', b, 'mosquitto', 'storeRate', 1))
}

/** Issue 14's MQTT 5 targets: each MQTT 5 scenario within 10 % of the same load with 3.1.1 clients, and ≥ mosquitto. */
const V5_SCENARIOS = [['fanin-q1-v5', 'fanin-q1'], ['fanin-q1-persist-v5', 'fanin-q1-persist'], ['fanout-q1-v5', 'fanout-q1']]

function v5Targets (records, b, target, has, rateRatio) {
  for (const [s, v311] of V5_SCENARIOS) {
    if (!has(s, b)) continue
    target(`${b}: ${s} (MQTT 5 clients) within 10 % of ${v311} (MQTT 3.1.1 clients)`, () => {
      if (!has(v311, b)) return { measured: `needs ${v311} in the same run`, pass: null }
      const x = ratio(med(records, s, b, 'rate'), med(records, v311, b, 'rate'))
      return { measured: `${fmtNum(med(records, s, b, 'rate'), 0)} vs ${fmtNum(med(records, v311, b, 'rate'), 0)} = ${fmtNum(x, 2)}× (need ≥ 0.9)`, pass: x !== null && x >= 0.9 }
    })
    target(`${b}: ${s} ≥ mosquitto (same MQTT 5 scenario)`, rateRatio(s, b, 'mosquitto', 'rate', 1))
  }
}

/** Issue 16's connection targets: memory, connect rate, keep-alive, idle CPU and the probe's p99 with the clients held. */
function connectionTargets (records, b, target, has) {
  if (!has('connections', b)) return
  const rs = records.filter(r => r.ok && r.scenario === 'connections' && r.broker === b)
  const m = key => med(records, 'connections', b, key)
  const held = Math.min(...rs.map(r => r.connected))
  target(`${b}: ${fmtNum(held, 0)} connections held, RSS ≤ 10 KB per connection`, () => ({ measured: `${fmtNum(m('kbPerConn'), 1)} KB`, pass: m('kbPerConn') !== null && m('kbPerConn') <= 10 }))
  target(`${b}: connect rate ≥ mosquitto`, () => {
    if (!has('connections', 'mosquitto')) return { measured: 'needs mosquitto in connections', pass: null }
    const x = ratio(m('rate'), med(records, 'connections', 'mosquitto', 'rate'))
    return { measured: `${fmtNum(m('rate'), 0)} vs ${fmtNum(med(records, 'connections', 'mosquitto', 'rate'), 0)} connects/s = ${fmtNum(x, 2)}× (need ≥ 1)`, pass: x !== null && x >= 1 }
  })
  target(`${b}: no client dropped while held (keep alive 60 s, one PINGREQ)`, () => {
    const dropped = rs.reduce((s, r) => s + r.dropped + r.failed, 0)
    return { measured: `${fmtNum(dropped, 0)} dropped or failed over ${rs.length} runs`, pass: dropped === 0 }
  })
  target(`${b}: idle CPU < 5 % of a core with the clients held`, () => ({ measured: `${fmtNum(m('idleCpu') * 100, 1)} %`, pass: m('idleCpu') !== null && m('idleCpu') < 0.05 }))
  target(`${b}: QoS 1 probe p99 with the clients held ≤ 2× alone`, () => ({
    measured: `${fmtNum(m('probeLoadedP99'), 3)} vs ${fmtNum(m('probeAloneP99'), 3)} ms = ${fmtNum(m('probeRatio'), 2)}× (median of the per-run ratios; need ≤ 2)`,
    pass: m('probeRatio') !== null && m('probeRatio') <= 2
  }))
}
