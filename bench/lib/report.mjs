// The markdown report (header with the machine facts, summary, targets, one table per scenario) and the one-line
// progress summary printed after each run.
import { fmtNum } from './report-format.mjs'
import { renderScenario } from './report-scenario.mjs'
import { renderSummary } from './report-summary.mjs'
import { renderCluster } from './report-cluster.mjs'
import { renderTargets } from './targets.mjs'

export function render (records, specs, brokers, meta) {
  const scenarios = [...new Set(records.map(r => r.scenario))]
  const out = []
  if (meta) {
    out.push(`# Culex benchmark ${meta.date}`, '')
    out.push(`- command: \`${meta.command}\``)
    const m = meta.machine
    out.push(`- machine: nproc ${m.nproc}, CPU "${m.cpu}", ${m.memGB} GiB RAM; Node ${m.node}; ${m.mosquitto}; aedes ${m.aedes}, aedes-persistence-level ${m.aedesPersistenceLevel}, level ${m.level}, mqtt-packet ${m.mqttPacket}; commit ${m.commit}`)
    out.push(`- load average at start: ${m.loadavg}${meta.loadEnd ? `; at end: ${meta.loadEnd}` : ''}${meta.wallS ? `; wall time ${(meta.wallS / 60).toFixed(1)} min` : ''}`)
    out.push(`- repetitions: ${meta.reps}, brokers interleaved and rotated each repetition; cells are median [min–max]; × = ratio of medians`)
    out.push('')
  }
  out.push('## Summary (median; in brackets the ratio vs aedes-mem and vs mosquitto)', '', renderSummary(records, brokers), '')
  out.push('## Targets', '', renderTargets(records), '')
  const cluster = renderCluster(records)
  if (cluster !== '') out.push(cluster, '')
  out.push('## Per scenario', '')
  for (const s of scenarios) out.push(renderScenario(records, s, brokers, specs), '')
  return out.join('\n')
}

export function summarizeRecord (r) {
  switch (r.table) {
    case 'rate': return `${fmtNum(r.rate, 0)} msgs/s, broker CPU ${fmtNum(r.brokerCpu, 2)}, gen CPU ${fmtNum(r.genCpu, 2)}, lost ${r.lost}, dup ${r.dup}${r.drained === true ? '' : r.drained === 'cap' ? `, pending ${r.pending} (drain cap)` : ' (stalled before drained)'}`
    case 'latency': return `p50 ${fmtNum(r.p50, 3)} ms, p99 ${fmtNum(r.p99, 3)} ms, lost ${r.lost}`
    case 'connections': return `${fmtNum(r.connected, 0)} held, ${fmtNum(r.rate, 0)} connects/s, ${fmtNum(r.kbPerConn, 1)} KB/conn, idle CPU ${fmtNum(r.idleCpu, 3)}, probe p99 ${fmtNum(r.probeAloneP99, 3)} → ${fmtNum(r.probeLoadedP99, 3)} ms, failed ${r.failed}, dropped ${r.dropped}`
    case 'cluster': return `${fmtNum(r.rate, 0)} msgs/s, CPU ${fmtNum(r.brokerCpu, 2)} (Redis ${fmtNum(r.redisCpu, 2)}), ${fmtNum(r.cpuUsPerMsg, 1)} µs/msg, Redis calls/msg ${fmtNum(r.redisCallsPerMsg, 2)}, lost ${r.lost}, dup ${r.dup}${r.drained === true ? '' : r.drained === 'cap' ? `, pending ${r.pending} (drain cap)` : ' (stalled before drained)'}`
    case 'cluster-offline':
    case 'offline': return `enqueue ${fmtNum(r.enqueueRate, 0)}/s, drain ${fmtNum(r.drainRate, 0)}/s (${fmtNum(r.reconnectToAllS, 2)} s), received ${r.received}/${r.messages}, session ${r.sessionPresent}, lost ${r.lost}${r.pending ? `, pending ${r.pending} (drain cap)` : ''}, dup ${r.dup}${r.restartMs ? `, restart ${(r.restartMs / 1000).toFixed(2)} s` : ''}${r.secondConnectReceived !== undefined ? `, second CONNECT got ${r.secondConnectReceived}` : ''}`
    case 'retained': return `store ${fmtNum(r.storeRate, 0)}/s, wildcard first ${fmtNum(r.wildFirstMs, 2)} ms, all ${fmtNum(r.wildAllMs, 2)} ms, many ${fmtNum(r.bulkRate, 0)}/s, exact first ${fmtNum(r.exactFirstMs, 2)} ms`
    case 'shared': return `${fmtNum(r.rate, 0)} msgs/s, delivered ${r.delivered}/${r.sent}, granted ${r.granted}, lost ${r.lost}, dup ${r.dup}`
    default: return ''
  }
}
