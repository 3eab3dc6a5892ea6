#!/usr/bin/env node
// Self time per function (and per package) from a V8 .cpuprofile, as written by `node --cpu-prof`.
//
//   node bench/cpu-top.mjs profile.cpuprofile [--top 15] [--from <µs> --to <µs>]
//
// --from / --to restrict the samples to a window on the monotonic clock (process.hrtime in µs), which is the
// clock V8 stamps the profile with; run.mjs --cpu-prof passes the generator's measured window.
import fs from 'node:fs'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'

/** Returns { total, functions: [{name, where, pct, ms}], packages: [{name, pct, ms}] } */
export function cpuTop (file, { top = 15, from = -Infinity, to = Infinity } = {}) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'))
  const byId = new Map(prof.nodes.map(n => [n.id, n]))
  const counts = new Map()
  let t = prof.startTime
  let total = 0
  let totalUs = 0
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i] ?? 0
    t += dt
    if (t < from || t > to) continue
    counts.set(prof.samples[i], (counts.get(prof.samples[i]) ?? 0) + 1)
    total++
    totalUs += dt
  }
  const usPerSample = total > 0 ? totalUs / total : 0
  const fn = new Map()
  const pkg = new Map()
  for (const [id, c] of counts) {
    const n = byId.get(id)
    const cf = n.callFrame
    const url = cf.url ?? ''
    const short = url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, 'node_modules/').replace(/^.*\/(dist|src|bench)\//, '$1/')
    const name = cf.functionName || '(anonymous)'
    const where = url ? `${short}:${cf.lineNumber + 1}` : ''
    const key = `${name} ${where}`
    const e = fn.get(key) ?? { name, where, n: 0 }
    e.n += c
    fn.set(key, e)
    pkg.set(packageOf(url, name), (pkg.get(packageOf(url, name)) ?? 0) + c)
  }
  const pct = k => total ? 100 * k / total : 0
  return {
    total,
    ms: totalUs / 1000,
    functions: [...fn.values()].sort((a, b) => b.n - a.n).slice(0, top).map(e => ({ name: e.name, where: e.where, pct: pct(e.n), ms: e.n * usPerSample / 1000 })),
    packages: [...pkg.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, n]) => ({ name, pct: pct(n), ms: n * usPerSample / 1000 }))
  }
}

function packageOf (url, name) {
  if (!url) return name.startsWith('(') ? name : '(native)'
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (m) return m[1]
  if (url.startsWith('node:')) return 'node: ' + url.slice(5).split('/')[0]
  const d = /\/(dist|src)\/(.*?)(\/[^/]*)?$/.exec(url)
  if (d) return `culex ${d[1]}/${d[2].includes('/') ? d[2].split('/')[0] : d[2]}`
  return url
}

export function renderTop (r, title = '') {
  const lines = []
  if (title) lines.push(`#### ${title}`, '')
  lines.push(`${r.total} samples, ${r.ms.toFixed(0)} ms of profile`, '')
  lines.push('| self % | self ms | function | where |', '| --- | --- | --- | --- |')
  for (const f of r.functions) lines.push(`| ${f.pct.toFixed(1)} | ${f.ms.toFixed(0)} | \`${f.name}\` | ${f.where} |`)
  lines.push('', '| self % | package / area |', '| --- | --- |')
  for (const p of r.packages) lines.push(`| ${p.pct.toFixed(1)} | ${p.name} |`)
  return lines.join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '15' }, from: { type: 'string' }, to: { type: 'string' } } })
  for (const f of positionals) {
    const r = cpuTop(f, { top: Number(values.top), from: values.from ? Number(values.from) : -Infinity, to: values.to ? Number(values.to) : Infinity })
    process.stdout.write(renderTop(r, f) + '\n\n')
  }
}
