// The summary table at the top of the report: one headline metric per row, every broker side by side with its
// ratios to the reference brokers.
import { REFERENCES } from './brokers.mjs'
import { fmtNum, med, ratio } from './report-format.mjs'

/**
 * One row per headline metric, one column per broker: median (× aedes-mem / × mosquitto). A fifth element names the
 * same load with MQTT 3.1.1 clients: the row of an MQTT 5 scenario also shows each broker against itself there.
 */
const SUMMARY = [
  ['fanin-q0', 'rate', 'fan-in QoS 0, 8→1 clean (msgs/s)'],
  ['fanin-q1', 'rate', 'fan-in QoS 1, 8→1 clean (msgs/s)'],
  ['fanin-q2', 'rate', 'fan-in QoS 2, 8→1 clean (msgs/s)'],
  ['fanin-q0-persist', 'rate', 'fan-in QoS 0, 8→1 persistent sub (msgs/s)'],
  ['fanin-q1-persist', 'rate', 'fan-in QoS 1, 8→1 persistent sub (msgs/s)'],
  ['fanin-q2-persist', 'rate', 'fan-in QoS 2, 8→1 persistent sub (msgs/s)'],
  ['fanout-q0', 'rate', 'fan-out QoS 0, 1→50 (deliveries/s)'],
  ['fanout-q1', 'rate', 'fan-out QoS 1, 1→50 (deliveries/s)'],
  ['fanin-q1-v5', 'rate', 'MQTT 5 fan-in QoS 1, 8→1 clean (msgs/s)', 0, 'fanin-q1'],
  ['fanin-q1-persist-v5', 'rate', 'MQTT 5 fan-in QoS 1, 8→1 persistent sub (msgs/s)', 0, 'fanin-q1-persist'],
  ['fanout-q1-v5', 'rate', 'MQTT 5 fan-out QoS 1, 1→50 (deliveries/s)', 0, 'fanout-q1'],
  ['fanin-q1-v5-props', 'rate', 'MQTT 5 fan-in QoS 1 with properties, 8→1 clean (msgs/s)', 0, 'fanin-q1'],
  ['latency-q1', 'p50', 'latency QoS 1 @ 2000/s, p50 (ms)', 3],
  ['latency-q1', 'p99', 'latency QoS 1 @ 2000/s, p99 (ms)', 3],
  ['connections', 'rate', 'connections: connects/s'],
  ['connections', 'kbPerConn', 'connections: RSS per connection, held (KB)', 1],
  ['connections', 'brokerUsPerConnect', 'connections: broker CPU per connect (µs)'],
  ['connections', 'probeLoadedP99', 'connections: QoS 1 probe p99 while held (ms)', 3],
  ['offline', 'enqueueRate', 'offline: enqueue QoS 1 (msgs/s)'],
  ['offline', 'drainRate', 'offline: drain after reconnect (msgs/s)'],
  ['offline', 'reconnectToAllS', 'offline: reconnect → all delivered (s)', 2],
  ['offline-restart', 'received', 'offline after SIGTERM restart: received (median)'],
  ['offline-kill', 'received', 'offline after SIGKILL restart: received (median)'],
  ['retained', 'wildFirstMs', 'retained: SUBSCRIBE wildcard → first msg (ms)', 2],
  ['retained', 'wildAllMs', 'retained: SUBSCRIBE wildcard → all 100 (ms)', 2],
  ['retained', 'bulkRate', 'retained: SUBSCRIBE matching 10,000 (msgs/s)'],
  ['retained', 'exactFirstMs', 'retained: SUBSCRIBE exact → first msg (ms)', 2],
  ['retained', 'storeRate', 'retained: store rate (msgs/s)'],
  ['shared', 'deliveredRatio', 'shared $share/g 1→4: delivered/sent', 2],
  ['shared', 'rate', 'shared $share/g 1→4 QoS 1 (msgs/s)'],
  ['shared-plain', 'rate', 'the shared load on a plain subscription (msgs/s)']
]

export function renderSummary (records, brokers) {
  const present = brokers.filter(b => records.some(r => r.broker === b))
  const lines = ['| scenario (metric) | ' + present.join(' | ') + ' |', '| --- | ' + present.map(() => '---').join(' | ') + ' |']
  for (const [s, key, label, d = 0, v311] of SUMMARY) {
    if (!records.some(r => r.scenario === s)) continue
    const cells = present.map(b => {
      if (!records.some(r => r.scenario === s && r.broker === b)) return ''
      const m = med(records, s, b, key)
      const rs = REFERENCES.filter(ref => ref !== b && present.includes(ref)).map(ref => {
        const x = ratio(m, med(records, s, ref, key))
        return x === null ? null : `${x.toFixed(2)}× ${ref === 'aedes-mem' ? 'aedes' : 'mosq'}`
      }).filter(Boolean)
      const same = v311 === undefined ? null : ratio(m, med(records, v311, b, key))
      if (same !== null) rs.push(`${same.toFixed(2)}× 3.1.1`)
      return fmtNum(m, d) + (rs.length ? ` (${rs.join(', ')})` : '')
    })
    lines.push(`| ${label} | ${cells.join(' | ')} |`)
  }
  return lines.join('\n')
}
