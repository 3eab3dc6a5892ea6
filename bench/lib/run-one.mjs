// One measurement: a fresh broker with an empty data dir, the generator forked with the scenario, restarts on the
// generator's request (offline-restart / offline-kill), and an optional CPU profile cut to the measured window.
import { fork } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { cpuTop, renderTop } from '../cpu-top.mjs'
import { BROKERS } from './brokers.mjs'
import { freePort, startBroker, stopBroker, tail } from './broker-process.mjs'
import { benchDir } from './paths.mjs'

export async function runOne (brokerName, scenarioName, spec, rep, opts) {
  const dir = fs.mkdtempSync(path.join(opts.tmp, `${brokerName}-${scenarioName}-`))
  const port = await freePort()
  // a cluster broker: one node per port (the scenario's `nodes`, default 2)
  const ports = [port]
  if (BROKERS[brokerName].cluster) while (ports.length < (spec.nodes ?? 2)) ports.push(await freePort())
  const record = { scenario: scenarioName, broker: brokerName, rep, ok: false, startedAt: new Date().toISOString() }
  const t0 = Date.now()
  const profDir = opts.cpuProf && BROKERS[brokerName].node ? path.resolve(opts.cpuProf, `${brokerName}-${scenarioName}-r${rep + 1}`) : undefined
  let broker
  let gen
  try {
    broker = await startBroker(brokerName, port, dir, opts, profDir, ports)
    record.brokerReadyMs = broker.readyMs
    const result = await new Promise((resolve, reject) => {
      gen = fork(path.join(benchDir, 'gen.mjs'), [JSON.stringify({ spec, port, ports, dir, pid: broker.pid })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      const timer = setTimeout(() => { gen.kill('SIGKILL'); reject(new Error('generator timed out')) }, opts.runTimeoutMs)
      let brokerDied = null
      const onBrokerExit = (code, sig) => { brokerDied = `broker exited unexpectedly (${code ?? sig})` }
      broker.proc.on('exit', onBrokerExit)
      gen.on('message', async m => {
        if (m.type === 'result') { clearTimeout(timer); resolve(m.result) }
        if (m.type === 'error') { clearTimeout(timer); reject(new Error((brokerDied ? brokerDied + '; ' : '') + m.error)) }
        if (m.type === 'restart') {
          try {
            broker.proc.off('exit', onBrokerExit)
            const stopped = await stopBroker(broker.proc, m.signal)
            record.stopped = stopped
            const r0 = Date.now()
            broker = await startBroker(brokerName, port, dir, opts, profDir, ports)
            broker.proc.on('exit', onBrokerExit)
            record.restartMs = Date.now() - r0
            gen.send({ type: 'restarted', pid: broker.pid })
          } catch (err) {
            gen.send({ type: 'restarted', error: String(err.message ?? err) })
          }
        }
      })
      gen.on('exit', code => {
        clearTimeout(timer)
        if (code !== 0) reject(new Error(`generator exited with ${code}${brokerDied ? '; ' + brokerDied : ''}`))
      })
    })
    Object.assign(record, result)
    record.ok = true
  } catch (err) {
    record.error = String(err.message ?? err).split('\n').slice(0, 4).join(' | ')
    record.brokerLog = tail(dir)
  } finally {
    if (gen && gen.exitCode === null) gen.kill('SIGKILL')
    if (broker) record.exit = await stopBroker(broker.proc)
  }
  record.wallS = (Date.now() - t0) / 1000
  if (profDir && fs.existsSync(profDir)) {
    // The profile covers the broker's whole life; keep only the generator's measured window when there is one.
    const [from, to] = record.windowUs ?? [-Infinity, Infinity]
    record.profiles = fs.readdirSync(profDir).filter(f => f.endsWith('.cpuprofile')).map(f => path.join(profDir, f))
    for (const f of record.profiles) {
      const top = cpuTop(f, { top: 15, from, to })
      record.profileTop = top
      process.stderr.write(renderTop(top, `${brokerName} ${scenarioName} rep ${rep + 1}: ${f}${record.windowUs ? ' (measured window)' : ''}`) + '\n\n')
    }
  }
  if (record.ok || !opts.keep) fs.rmSync(dir, { recursive: true, force: true })
  else record.dir = dir
  return record
}
