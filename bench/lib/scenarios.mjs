// Scenario definitions (follow research/perf-baseline.md; durations are shorter to fit the run in ~15 minutes).
// Each spec goes to the generator (bench/gen.mjs) as JSON; `table` picks the report columns, `sync` marks the
// scenarios where culex-sync is run by default. `warmupRound` (overrides of the spec) makes the generator run the
// load once unmeasured against the same broker first; `headline` names the figure kept from that round as `cold`.
// The restart scenarios have none: a restarted broker is cold by nature, and that is what they measure.
// `protocolVersion: 5` runs the scenario with MQTT 5 clients (only on the brokers that speak it: brokers.mjs `mqtt5`),
// and `v311` names the same load with MQTT 3.1.1 clients, which the report sets it against broker by broker.

export function scenarioTable (quick) {
  const dur = quick ? 1 : 3
  const latDur = quick ? 1.5 : 4
  const fanin = (qos, persistent) => ({
    kind: 'fanin',
    qos,
    persistent,
    duration: dur,
    sync: persistent && qos > 0,
    warmupRound: { duration: 1 },
    table: 'rate',
    desc: `8 publishers -> 1 ${persistent ? 'persistent (clean=false)' : 'clean'} subscriber on bench/#, QoS ${qos} (sub QoS ${qos}), 64 B, 1 s warm-up + ${dur} s; ` +
      (qos === 0 ? 'at most 1000 msgs per publisher ahead of the subscriber' : 'window 64 unacknowledged per publisher, at most 1000 ahead of the subscriber')
  })
  // MQTT 5 variants: the same load and clients, at protocol level 5; culex-sync is left to the 3.1.1 scenarios
  const v5 = (base, spec, extra = {}) => ({
    ...spec,
    ...extra,
    protocolVersion: 5,
    sync: false,
    v311: base,
    desc: `as ${base}, with MQTT 5 clients (a persistent subscriber asks for a Session Expiry Interval of 1 day)${extra.properties ? ', every PUBLISH with a Content Type and two User Properties' : ', PUBLISH without properties'}; ` + spec.desc
  })
  const fanout = (qos) => ({ kind: 'fanout', qos, duration: dur, warmupRound: { duration: 1 }, table: 'rate' })
  const offlineN = quick ? 3000 : 20000
  const idleMs = quick ? 2000 : 3000
  const maxDrainMs = quick ? 10000 : 15000
  const sharedN = quick ? 3000 : 100000
  return {
    'fanin-q0': fanin(0, false),
    'fanin-q1': fanin(1, false),
    'fanin-q2': fanin(2, false),
    'fanin-q0-persist': fanin(0, true),
    'fanin-q1-persist': fanin(1, true),
    'fanin-q2-persist': fanin(2, true),
    'fanout-q0': { ...fanout(0), desc: `1 publisher -> 50 clean subscribers on one topic, QoS 0, 64 B, 1 s warm-up + ${dur} s; msgs/s = deliveries/s summed over subscribers` },
    'fanout-q1': { ...fanout(1), desc: `1 publisher -> 50 clean subscribers on one topic, QoS 1, window 64, 1 s warm-up + ${dur} s; deliveries/s` },
    'fanin-q1-v5': v5('fanin-q1', fanin(1, false)),
    'fanin-q1-persist-v5': v5('fanin-q1-persist', fanin(1, true)),
    'fanout-q1-v5': v5('fanout-q1', { ...fanout(1), desc: `1 publisher -> 50 clean subscribers on one topic, QoS 1, window 64, 1 s warm-up + ${dur} s; deliveries/s` }),
    'fanin-q1-v5-props': v5('fanin-q1', fanin(1, false), { properties: { contentType: 'application/octet-stream', userProperties: { source: 'bench', run: '1' } } }),
    'latency-q1': { kind: 'latency', qos: 1, rate: 2000, warmup: 1, duration: latDur, table: 'latency', desc: `1 publisher -> 1 clean subscriber, QoS 1, fixed 2000 msg/s, 1 s warm-up + ${latDur} s measured; ms publish -> deliver (generator sockets with TCP_NODELAY)` },
    // 19 500: the open-files limit of the machines this runs on is 20 000 for the broker and for the generator
    connections: quick
      ? { kind: 'connections', clients: 1000, concurrency: 200, keepaliveS: 60, holdS: 12, pingAtS: 10, table: 'connections', desc: '1000 clean clients (keep alive 60 s, one QoS 1 subscription each, from 8 source addresses) connect (200 in flight), held 12 s; QoS 1 probe at 2000 msg/s alone and while they are held' }
      : { kind: 'connections', clients: 19500, concurrency: 200, keepaliveS: 60, holdS: 75, pingAtS: 50, table: 'connections', desc: '19 500 clean clients (keep alive 60 s, one QoS 1 subscription each, from 8 source addresses 127.0.<1-8>.1) connect (200 in flight) and are held 75 s, each sending one PINGREQ at 50-60 s; RSS per connection at the end of the hold (the broker settled), idle CPU over 10-50 s; QoS 1 probe at 2000 msg/s (1 s warm-up + 3 s) alone before (after one unmeasured probe) and while they are held' },
    offline: { kind: 'offline', messages: offlineN, idleMs, maxDrainMs, sync: true, warmupRound: {}, headline: 'drainRate', table: 'offline', desc: `persistent session (clean=false) subscribes QoS 1, disconnects; ${offlineN} QoS 1 msgs published; reconnect and time until all arrive (drain capped at ${maxDrainMs / 1000} s; what is still arriving then counts as pending, not lost); measured after one unmeasured warm-up round of the same` },
    'offline-restart': { kind: 'offline', messages: offlineN, idleMs, maxDrainMs, restart: 'SIGTERM', table: 'offline', desc: 'as offline, but the broker is stopped with SIGTERM right after the last PUBACK and started again before the reconnect' },
    'offline-kill': { kind: 'offline', messages: offlineN, idleMs, maxDrainMs, restart: 'SIGKILL', table: 'offline', desc: 'as offline, but the broker is killed with SIGKILL (crash) right after the last PUBACK and started again before the reconnect' },
    retained: { kind: 'retained', messages: quick ? 20000 : 100000, probes: 3, table: 'retained', desc: `${quick ? 20000 : 100000} retained QoS 1 messages on bench/r/<i>/x (every 1000th i), bench/r/<i>/z (every 10th) or bench/r/<i>/y; then SUBSCRIBE bench/r/+/x (${quick ? 20 : 100} matches: ms to the first and the last), an exact topic (1 match) and bench/r/+/z (${quick ? '2,000' : '10,000'} matches: msgs/s from SUBSCRIBE to the last), each once unmeasured (the cold figures), then 3 probes each on fresh clients` },
    shared: { kind: 'shared', members: 4, messages: sharedN, warmupRound: {}, table: 'shared', desc: `1 publisher -> 4 subscribers in $share/g/bench/shared, QoS 1, window 64, ${sharedN} msgs after a warm-up round of the same; each message must reach exactly one member` },
    'shared-plain': { kind: 'shared', members: 4, plain: true, messages: sharedN, warmupRound: {}, table: 'shared', desc: `the shared load on plain subscriptions: 1 publisher -> 4 subscribers, each on its own topic bench/shared/<i>, the publisher taking the topics in turn, QoS 1, window 64, ${sharedN} msgs after a warm-up round of the same` },
    ...clusterScenarios({ dur, offlineN, idleMs, maxDrainMs })
  }
}

/**
 * The cluster scenarios (`cluster: true`: run on the cluster brokers only, `nodes` of them on one Redis). Node 0 is
 * "A", node 1 "B". The subscriber waits until the publishers' node routes to it (a probe) before the measurement.
 */
function clusterScenarios ({ dur, offlineN, idleMs, maxDrainMs }) {
  const offline = (reconnectNode, name) => ({
    kind: 'offline', cluster: true, nodes: 2, subNode: 1, pubNode: 0, reconnectNode, messages: offlineN, idleMs, maxDrainMs, secondConnect: true,
    warmupRound: {}, headline: 'drainRate', table: 'cluster-offline',
    desc: `persistent QoS 1 session on node B subscribes and disconnects; ${offlineN} QoS 1 msgs published on node A; the session reconnects to node ${name} and drains (capped at ${maxDrainMs / 1000} s); what has not arrived ${idleMs / 1000} s after the last message counts as lost, and a second CONNECT shows how much of it was only stranded; after a warm-up round of the same`
  })
  const scale = nodes => ({
    kind: 'pairs', cluster: true, nodes, pairs: 6, qos: 1, duration: dur, warmupRound: { duration: 1 }, table: 'cluster',
    desc: `6 pairs, each a QoS 1 publisher (window 64) and a persistent QoS 1 subscriber of its own topic; publisher j on node j, subscriber on node j+1 (mod ${nodes}${nodes === 1 ? ': all on the one node' : ': every message crosses nodes'}), 1 s warm-up + ${dur} s; aggregate delivered msgs/s`
  })
  return {
    'cluster-fanin': {
      kind: 'fanin', cluster: true, nodes: 2, pubNode: 0, subNode: 1, qos: 1, persistent: true, duration: dur, warmupRound: { duration: 1 }, table: 'cluster',
      desc: `2 nodes on one Redis: 8 QoS 1 publishers on node A -> 1 persistent (clean=false) QoS 1 subscriber of bench/# on node B, 64 B, window 64 per publisher, 1 s warm-up + ${dur} s; delivered msgs/s`
    },
    'cluster-offline': offline(1, 'B'),
    'cluster-offline-a': offline(0, 'A (where the messages were published)'),
    'cluster-scale-1': scale(1),
    'cluster-scale-2': scale(2),
    'cluster-scale-3': scale(3)
  }
}
