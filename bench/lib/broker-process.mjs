// Starting and stopping one broker process: a fresh free port, readiness by TCP connect, SIGTERM with a SIGKILL
// fallback. The offline-restart scenarios stop and start the same broker mid-run, so this is shared with run-one.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { BROKERS } from './brokers.mjs'
import { repoDir } from './paths.mjs'

export function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** Resolves with the ms until the port accepts a connection, polling every pollMs; rejects if proc exits first. */
export async function waitForPort (port, proc, timeoutMs = 30000, pollMs = 25) {
  const start = Date.now()
  while (Date.now() - start < timeoutMs) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`broker exited (${proc.exitCode ?? proc.signalCode}) before listening`)
    const ok = await new Promise(resolve => {
      const s = net.connect({ port, host: '127.0.0.1' })
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (ok) return Date.now() - start
    await sleep(pollMs)
  }
  throw new Error(`broker not listening on ${port} after ${timeoutMs} ms`)
}

/** `ports`: every port of a cluster broker (one node each; `port` is the first); all must accept before it is ready. */
export async function startBroker (name, port, dir, opts, profDir, ports = [port]) {
  const b = BROKERS[name]
  const argv = b.cmd(port, dir, ports)
  const nodeArgs = [...(b.nodeFlags ?? []), ...opts.nodeArgs, ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])]
  const [cmd, args] = b.node ? [process.execPath, [...nodeArgs, ...argv]] : [argv[0], argv.slice(1)]
  const log = fs.openSync(path.join(dir, `broker-${Date.now()}.log`), 'a')
  const proc = spawn(cmd, args, { cwd: repoDir, env: { ...process.env, ...b.env }, stdio: ['ignore', log, log] })
  fs.closeSync(log)
  proc.on('error', () => {})
  running.add(proc)
  proc.once('exit', () => running.delete(proc))
  const t0 = Date.now()
  try {
    for (const p of ports) await waitForPort(p, proc)
  } catch (err) {
    // never ready: stopped here, since the caller gets no process to stop
    await stopBroker(proc)
    throw err
  }
  const readyMs = Date.now() - t0
  return { proc, pid: proc.pid, readyMs }
}

/** Every broker started and not yet exited. */
const running = new Set()

/** Kills every broker still running (the driver interrupted): none outlives it, holding a port and a deleted dir. */
export function killRunningBrokers () {
  for (const proc of running) proc.kill('SIGKILL')
}

function exited (proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve()
  return new Promise(resolve => proc.once('exit', resolve))
}

export async function stopBroker (proc, signal = 'SIGTERM', timeoutMs = 15000) {
  if (proc.exitCode !== null || proc.signalCode !== null) return { code: proc.exitCode, signal: proc.signalCode }
  proc.kill(signal)
  const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
  await exited(proc)
  clearTimeout(t)
  return { code: proc.exitCode, signal: proc.signalCode }
}

export function tail (dir, lines = 15) {
  try {
    const logs = fs.readdirSync(dir).filter(f => f.startsWith('broker-')).sort()
    return logs.map(f => fs.readFileSync(path.join(dir, f), 'utf8').split('\n').slice(-lines).join('\n')).join('\n')
  } catch { return '' }
}
