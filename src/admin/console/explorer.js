// The topic explorer: subscribes over MQTT-over-WebSocket with the mqtt.js browser build (window.mqtt) and shows
// the last message of every topic that matches the filter.
'use strict'

let explorer
const topics = new Map()
let renderQueued = false
const decoder = new TextDecoder('utf-8', { fatal: true })

function showPayload (payload) {
  if (payload.length === 0) return '(empty)'
  let text
  try { text = decoder.decode(payload) } catch { return `(${payload.length} bytes binary)` }
  return text.length > 300 ? `${text.slice(0, 300)}…` : text
}

function renderTopics () {
  renderQueued = false
  const rows = [...topics.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([topic, t]) => {
    const tr = el('tr', {},
      el('td', { className: 'topic', textContent: topic }),
      el('td', { className: 'count', textContent: num(t.count) }),
      el('td', { className: 'payload', textContent: t.payload }),
      el('td', { textContent: String(t.qos) }),
      el('td', { textContent: t.retain ? 'yes' : '' }),
      el('td', { textContent: t.at.toLocaleTimeString() }))
    tr.dataset.topic = topic
    return tr
  })
  $('#topics tbody').replaceChildren(...(rows.length > 0 ? rows : [emptyRow($('#topics'), 'no message yet')]))
}

function wsUrl () {
  const ws = info.listeners.find(l => l.name === (location.protocol === 'https:' ? 'wss' : 'ws')) ?? info.listeners.find(l => l.name === 'ws' || l.name === 'wss')
  if (!ws) return undefined
  const anyHost = ws.host === '0.0.0.0' || ws.host === '::' || ws.host === ''
  const host = anyHost ? location.hostname : ws.host
  return `${ws.name}://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${ws.port}${ws.path}`
}

function stopExplorer () {
  if (explorer) explorer.end(true)
  explorer = undefined
  $('#explorer-start').disabled = false
  $('#explorer-stop').disabled = true
}

function startExplorer (event) {
  event.preventDefault()
  stopExplorer()
  const url = wsUrl()
  const status = $('#explorer-status')
  if (!url) { status.textContent = 'no WebSocket listener is enabled'; return }
  const filter = $('#explorer-filter').value
  topics.clear()
  renderTopics()
  const username = $('#explorer-username').value
  const client = window.mqtt.connect(url, {
    protocolVersion: 4,
    clean: true,
    clientId: `culex-console-${Math.random().toString(16).slice(2, 10)}`,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...(username === '' ? {} : { username, password: $('#explorer-password').value })
  })
  explorer = client
  $('#explorer-start').disabled = true
  $('#explorer-stop').disabled = false
  status.textContent = `connecting to ${url}…`
  client.on('connect', () => {
    client.subscribe(filter, { qos: 1 }, (err, granted) => {
      if (err || !granted || granted[0].qos === 128) status.textContent = `subscription to ${filter} refused`
      else status.textContent = `subscribed to ${filter}`
    })
  })
  client.on('message', (topic, payload, packet) => {
    const t = topics.get(topic) ?? { count: 0 }
    topics.set(topic, { count: t.count + 1, payload: showPayload(payload), qos: packet.qos, retain: packet.retain, at: new Date() })
    if (!renderQueued) { renderQueued = true; requestAnimationFrame(renderTopics) }
  })
  client.on('error', (err) => { status.textContent = `MQTT error: ${err.message}` })
  client.on('close', () => {
    if (explorer === client) { status.textContent = 'disconnected'; stopExplorer() }
  })
}
