// What the run was measured on (CPU, Node, mosquitto and aedes versions, commit, load), recorded in the results so
// that figures from different machines or commits are not compared by mistake.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { MOSQUITTO } from './brokers.mjs'
import { repoDir } from './paths.mjs'

export function machineFacts () {
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? os.cpus()[0]?.model
  let mosq = 'not installed'
  try { mosq = execFileSync(MOSQUITTO, ['-h'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split('\n')[0] } catch (err) { mosq = (err.stdout?.toString() ?? '').split('\n')[0] || mosq }
  let commit = ''
  try { commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoDir, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() } catch {}
  const ver = p => { try { return JSON.parse(fs.readFileSync(path.join(repoDir, 'node_modules', p, 'package.json'), 'utf8')).version } catch { return '?' } }
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu,
    memGB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    mosquitto: mosq.trim(),
    aedes: ver('aedes'),
    aedesPersistenceLevel: ver('aedes-persistence-level'),
    level: ver('level'),
    mqttPacket: ver('mqtt-packet'),
    commit,
    loadavg: os.loadavg().map(x => x.toFixed(2)).join(' ')
  }
}
