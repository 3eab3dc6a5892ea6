// Process statistics from /proc: CPU seconds (user + system, all threads) and resident memory of a pid.
import fs from 'node:fs'
import { execFileSync } from 'node:child_process'

let clkTck = 100
try { clkTck = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100 } catch {}

/** CPU seconds used so far by pid (utime + stime), or NaN if the process is gone. */
export function cpuSeconds (pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    // comm may contain spaces: fields after the closing parenthesis start with field 3 (state).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(rest[11]) + Number(rest[12])) / clkTck
  } catch {
    return NaN
  }
}

/** CPU seconds of pid's main thread alone (the JavaScript thread of a node process), or NaN if it is gone. */
export function mainThreadCpuSeconds (pid) {
  return cpuSeconds(`${pid}/task/${pid}`)
}

/**
 * CPU seconds per thread of pid, keyed by name and thread id (`main` for the main thread): where a node process
 * spends its CPU. Node's threads are all named `node`; their ids tell them apart (V8's helpers are made at start,
 * libuv's pool at its first use, LevelDB's compaction thread at its first compaction).
 */
export function threadCpuSeconds (pid) {
  const out = {}
  let tasks = []
  try { tasks = fs.readdirSync(`/proc/${pid}/task`) } catch { return out }
  for (const tid of tasks) {
    const s = cpuSeconds(`${pid}/task/${tid}`)
    if (!Number.isFinite(s)) continue
    const name = Number(tid) === pid ? 'main' : `${comm(`${pid}/task/${tid}`)}-${tid}`
    out[name] = (out[name] ?? 0) + s
  }
  return out
}

/** The pids of pid's descendants (children's children too), from /proc/<pid>/task/<tid>/children. */
function descendants (pid) {
  const out = []
  let tasks = []
  try { tasks = fs.readdirSync(`/proc/${pid}/task`) } catch { return out }
  for (const tid of tasks) {
    let kids = ''
    try { kids = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8') } catch { continue }
    for (const k of kids.split(' ').filter(Boolean).map(Number)) out.push(k, ...descendants(k))
  }
  return out
}

function comm (pid) {
  try { return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() } catch { return '' }
}

/**
 * CPU seconds of pid and every process under it (a cluster broker is a wrapper with a redis-server and its nodes as
 * children): `total`, and `redis` for the redis-server processes among them. A process that exited meanwhile is
 * not counted, so measure processes that live through the interval.
 */
export function treeCpuSeconds (pid) {
  let total = cpuSeconds(pid)
  let redis = 0
  for (const k of descendants(pid)) {
    const s = cpuSeconds(k)
    if (!Number.isFinite(s)) continue
    total += s
    if (comm(k).startsWith('redis-server')) redis += s
  }
  return { total, redis }
}

/** { rssKB, hwmKB } from /proc/<pid>/status (VmRSS, VmHWM), or NaNs if the process is gone. */
export function memory (pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
    const rss = /VmRSS:\s+(\d+) kB/.exec(status)
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status)
    return { rssKB: rss ? Number(rss[1]) : NaN, hwmKB: hwm ? Number(hwm[1]) : NaN }
  } catch {
    return { rssKB: NaN, hwmKB: NaN }
  }
}

export function rssMB (pid) { return memory(pid).rssKB / 1024 }

/**
 * Measures CPU of a broker (its pid and the processes under it: a cluster's nodes and redis-server) and of this
 * process over an interval: start() ... stop(). `redisCpu`: the redis-server share of `brokerCpu`.
 */
export class CpuMeter {
  constructor (pid) { this.pid = pid }
  start () {
    this.t0 = process.hrtime.bigint()
    this.b0 = treeCpuSeconds(this.pid)
    this.g0 = process.cpuUsage()
  }

  stop () {
    const t1 = process.hrtime.bigint()
    const wall = Number(t1 - this.t0) / 1e9
    const b = treeCpuSeconds(this.pid)
    const g = process.cpuUsage(this.g0)
    // windowUs: the interval on the monotonic clock, in µs (the clock of V8 .cpuprofile timestamps)
    return {
      wallS: wall,
      brokerCpu: (b.total - this.b0.total) / wall,
      redisCpu: (b.redis - this.b0.redis) / wall,
      brokerCpuS: b.total - this.b0.total,
      genCpu: (g.user + g.system) / 1e6 / wall,
      windowUs: [Number(this.t0 / 1000n), Number(t1 / 1000n)]
    }
  }
}
