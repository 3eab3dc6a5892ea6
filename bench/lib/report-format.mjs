// Number formatting and ratio helpers used by every report table (per scenario, summary, targets, progress line),
// so a cell reads the same wherever it appears.
import { median } from './stats.mjs'

const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })

export function fmtNum (v, digits) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–'
  if (digits === 0) return nf0.format(v)
  return v.toFixed(digits)
}

export function ratio (a, b) {
  if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null
  return a / b
}

export function med (records, scenario, broker, key) {
  return median(records.filter(r => r.ok && r.scenario === scenario && r.broker === broker).map(r => r[key]))
}
