// The Culex web console: plain browser JavaScript, no build step. It polls the admin API, draws a throughput chart
// on a canvas and runs a topic explorer over MQTT-over-WebSocket with the mqtt.js browser build (window.mqtt).
'use strict'

const params = new URLSearchParams(location.search)
const pollMs = Math.max(250, Number(params.get('interval')) || 2000)
const TOKEN_KEY = 'culex.adminToken'
let token = sessionStorage.getItem(TOKEN_KEY) || ''
let info
let features = []
let pollTimer

class Unauthorized extends Error {}

async function api (path, options = {}) {
  const headers = token === '' ? {} : { authorization: `Bearer ${token}` }
  const res = await fetch(path, { ...options, headers })
  if (res.status === 401) throw new Unauthorized('admin token needed')
  const body = await res.json()
  if (!res.ok) throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${res.status}`)
  return body
}

function setStatus (text, bad = false) {
  const s = $('#status')
  s.textContent = text
  s.classList.toggle('bad', bad)
}

// ---- counters and chart ----------------------------------------------------------------------------------------

const samples = []
let previous

function renderCounters (s) {
  const inRate = previous ? (sum(s.messages.received) - sum(previous.messages.received)) * 1000 / Math.max(1, s.time - previous.time) : 0
  const outRate = previous ? (sum(s.messages.sent) - sum(previous.messages.sent)) * 1000 / Math.max(1, s.time - previous.time) : 0
  previous = s
  samples.push({ in: inRate, out: outRate })
  if (samples.length > 90) samples.shift()
  const counters = [
    ['connected', 'clients connected', num(s.clients.connected)],
    ['accepted', 'connections accepted', num(s.clients.accepted)],
    ['refused', 'connections refused', num(s.clients.refused)],
    ['rate-in', 'msgs/s received', inRate.toFixed(1)],
    ['rate-out', 'msgs/s sent', outRate.toFixed(1)],
    ['received', 'messages received', num(sum(s.messages.received))],
    ['sent', 'messages sent', num(sum(s.messages.sent))],
    ['retained', 'retained messages', num(s.retained)],
    ['subscriptions', 'subscriptions', num(s.subscriptions)],
    ['sessions', 'persistent sessions', num(s.sessions.persistent)],
    ['queued', 'queued messages', num(s.queued.messages)],
    ['queued-bytes', 'queued bytes', bytes(s.queued.bytes)],
    ['inflight', 'in flight (out / in)', `${num(s.inflight.out)} / ${num(s.inflight.in)}`],
    ['dropped', 'messages dropped', num(s.messages.dropped)],
    ['uptime', 'uptime', uptime(s.uptimeSeconds)]
  ]
  $('#counters').replaceChildren(...counters.map(([key, label, value]) => {
    const node = el('div', { className: 'counter' }, el('div', { className: 'value', textContent: value }), el('div', { className: 'label', textContent: label }))
    node.dataset.key = key
    return node
  }))
  drawChart()
}

function drawChart () {
  const canvas = $('#chart')
  const ctx = canvas.getContext('2d')
  const w = canvas.width
  const h = canvas.height
  const max = Math.max(1, ...samples.map(p => Math.max(p.in, p.out)))
  ctx.clearRect(0, 0, w, h)
  ctx.strokeStyle = '#e5e7eb'
  for (let i = 1; i < 4; i++) {
    ctx.beginPath()
    ctx.moveTo(0, h * i / 4)
    ctx.lineTo(w, h * i / 4)
    ctx.stroke()
  }
  const line = (key, color) => {
    ctx.strokeStyle = color
    ctx.lineWidth = 2
    ctx.beginPath()
    samples.forEach((p, i) => {
      const x = w - (samples.length - 1 - i) * (w / 89)
      const y = h - 4 - (p[key] / max) * (h - 8)
      if (i === 0) ctx.moveTo(x, y)
      else ctx.lineTo(x, y)
    })
    ctx.stroke()
  }
  line('in', '#2563eb')
  line('out', '#16a34a')
  $('#chart-max').textContent = `peak ${max.toFixed(1)}/s`
}

// ---- tables ----------------------------------------------------------------------------------------------------

function actionButton (label, onClick, confirmFirst = false) {
  const button = el('button', { type: 'button', className: 'danger', textContent: label })
  button.addEventListener('click', async () => {
    if (confirmFirst && !button.classList.contains('armed')) {
      button.classList.add('armed')
      button.textContent = `confirm ${label.toLowerCase()}`
      setTimeout(() => { button.classList.remove('armed'); button.textContent = label }, 4000)
      return
    }
    button.disabled = true
    try {
      await onClick()
    } catch (err) {
      setStatus(err.message, true)
    }
    await refresh()
  })
  return button
}

/** MQTT protocol level → the version a user knows it by. */
const protocolNames = { 3: '3.1', 4: '3.1.1', 5: '5' }

function renderClients (page) {
  $('#clients-total').textContent = `${num(page.total)} connected`
  const rows = page.items.map(c => {
    const tr = el('tr', {},
      el('td', { className: 'client-id', textContent: c.clientId }),
      el('td', { textContent: c.remote ?? '' }),
      el('td', { textContent: protocolNames[c.protocolVersion] ?? String(c.protocolVersion) }),
      el('td', { textContent: c.clean ? 'clean' : 'persistent' }),
      el('td', { textContent: num(c.subscriptions) }),
      el('td', { className: 'inflight', textContent: `${c.inflight.out} / ${c.inflight.in}` }),
      el('td', { textContent: `${num(c.messages.in)} / ${num(c.messages.out)}` }),
      el('td', {}, actionButton('Kick', () => api(`/api/clients/${encodeURIComponent(c.clientId)}`, { method: 'DELETE' }))))
    tr.dataset.clientId = c.clientId
    return tr
  })
  $('#clients tbody').replaceChildren(...(rows.length > 0 ? rows : [emptyRow($('#clients'), 'no client connected')]))
}

function renderSessions (page) {
  $('#sessions-total').textContent = `${num(page.total)} stored`
  const rows = page.items.map(s => {
    const tr = el('tr', {},
      el('td', { className: 'client-id', textContent: s.clientId }),
      el('td', { className: s.connected ? 'online' : 'offline', textContent: s.connected ? 'connected' : 'offline' }),
      el('td', { textContent: num(s.subscriptions) }),
      el('td', { className: 'queued', textContent: num(s.queued) }),
      el('td', { textContent: num(s.inflight) }),
      el('td', { textContent: bytes(s.queuedBytes) }),
      el('td', { textContent: age(s.oldestQueuedAt) }),
      el('td', {}, actionButton('Purge', () => api(`/api/sessions/${encodeURIComponent(s.clientId)}`, { method: 'DELETE' }), true)))
    tr.dataset.clientId = s.clientId
    return tr
  })
  $('#sessions tbody').replaceChildren(...(rows.length > 0 ? rows : [emptyRow($('#sessions'), 'no persistent session')]))
}

/**
 * A table for a feature panel (shared groups, dead letters): one column per field of the items, and one button per
 * entry of the response's `actions`, e.g. { label: 'Replay', method: 'POST', path: '/api/dead-letters/{id}/replay' }
 * where {field} is replaced by that row's value.
 */
function renderGeneric (table, body) {
  const items = body.items ?? []
  const actions = body.actions ?? []
  const columns = [...new Set(items.flatMap(item => Object.keys(item)))]
  table.querySelector('thead').replaceChildren(el('tr', {}, ...columns.map(c => el('th', { textContent: c })), ...(actions.length > 0 ? [el('th')] : [])))
  const rows = items.map(item => el('tr', {},
    ...columns.map(c => el('td', { textContent: typeof item[c] === 'object' ? JSON.stringify(item[c]) : String(item[c] ?? '') })),
    ...(actions.length > 0
      ? [el('td', {}, ...actions.map(a => actionButton(a.label, () => api(a.path.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(item[k])), { method: a.method }), a.confirm === true)))]
      : [])))
  table.querySelector('tbody').replaceChildren(...(rows.length > 0 ? rows : [el('tr', {}, el('td', { className: 'empty', textContent: 'none' }))]))
}

const featurePanels = {
  shared: ['#panel-shared', '#shared', '/api/shared'],
  lag: ['#panel-lag', '#lag', '/api/lag'],
  'dead-letters': ['#panel-dead-letters', '#dead-letters', '/api/dead-letters'],
  cluster: ['#panel-cluster', '#cluster', '/api/cluster']
}

async function refresh () {
  try {
    const prefix = encodeURIComponent($('#client-prefix').value)
    const [stats, clients, sessions] = await Promise.all([api('/api/stats'), api(`/api/clients?limit=200&prefix=${prefix}`), api('/api/sessions?limit=200')])
    renderCounters(stats)
    renderClients(clients)
    renderSessions(sessions)
    for (const feature of features) {
      const panel = featurePanels[feature]
      if (panel === undefined) continue
      $(panel[0]).hidden = false
      renderGeneric($(panel[1]), await api(panel[2]))
    }
    setStatus(`live · updated ${new Date().toLocaleTimeString()}`)
  } catch (err) {
    if (err instanceof Unauthorized) return showLogin('the token was refused')
    setStatus(`cannot reach the broker: ${err.message}`, true)
  }
}

// ---- start -----------------------------------------------------------------------------------------------------

function showLogin (message = '') {
  $('#main').hidden = true
  $('#login').hidden = false
  $('#login-error').textContent = message
  setStatus('signed out', true)
}

async function start () {
  try {
    const auth = await (await fetch('/api/auth')).json()
    if (auth.required && token === '') return showLogin()
    info = await api('/api/info')
  } catch (err) {
    if (err instanceof Unauthorized) return showLogin(token === '' ? '' : 'the token was refused')
    setStatus(`cannot reach the broker: ${err.message}`, true)
    return
  }
  features = info.features
  $('#login').hidden = true
  $('#main').hidden = false
  $('#broker-info').textContent = `version ${info.version} · broker ${info.brokerId}`
  renderTopics()
  await refresh()
  clearInterval(pollTimer)
  pollTimer = setInterval(refresh, pollMs)
}

$('#login').addEventListener('submit', (event) => {
  event.preventDefault()
  token = $('#token').value
  sessionStorage.setItem(TOKEN_KEY, token)
  start()
})
$('#explorer-form').addEventListener('submit', startExplorer)
$('#explorer-stop').addEventListener('click', () => { stopExplorer(); $('#explorer-status').textContent = 'stopped' })
$('#client-prefix').addEventListener('input', () => refresh())
start()
