// Small DOM and formatting helpers shared by the console's scripts (classic scripts: one global scope).
'use strict'

const $ = (sel) => document.querySelector(sel)
function el (tag, props = {}, ...children) {
  const node = document.createElement(tag)
  Object.assign(node, props)
  for (const child of children) node.append(child)
  return node
}

const num = (n) => Number(n).toLocaleString('en-US')
const bytes = (n) => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`
const sum = (values) => values.reduce((a, b) => a + b, 0)
function age (iso) {
  if (!iso) return '—'
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor(s % 3600 / 60)}m`
}
function uptime (s) {
  const d = Math.floor(s / 86400)
  const h = Math.floor(s % 86400 / 3600)
  const m = Math.floor(s % 3600 / 60)
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`
}

function emptyRow (table, text) {
  const cols = table.querySelectorAll('thead th').length || 1
  return el('tr', {}, el('td', { className: 'empty', colSpan: cols, textContent: text }))
}
