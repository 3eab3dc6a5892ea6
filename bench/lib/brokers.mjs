// The brokers the driver can measure and how each is started; kept apart from the process handling so that adding a
// broker is one entry here.
import fs from 'node:fs'
import path from 'node:path'
import { benchDir, repoDir } from './paths.mjs'

export const MOSQUITTO = process.env.MOSQUITTO ?? '/usr/sbin/mosquitto'
/** Where Culex runs from: a snapshot of dist/ taken at the start (see snapshotCulex), so a rebuild mid-run is harmless. */
let culexMain = path.join(repoDir, 'dist/main.js')

/**
 * The node flags Culex's entry points start it with (src/cli/node-flags.ts): the benchmark runs Culex as an operator
 * does. The bare aedes references run with node's defaults, as aedes' own recipe does.
 */
export const { NODE_FLAGS } = await import(path.join(repoDir, 'dist/cli/node-flags.js'))

/**
 * Every broker: how to start it on 127.0.0.1:port with its state under dir. `node` brokers take --node-args (after
 * their own `nodeFlags`). `mqtt5: false`: the broker refuses MQTT 5 clients, so the MQTT 5 scenarios leave it out
 * (aedes 1.2 has no MQTT 5).
 */
export const BROKERS = {
  culex: {
    desc: `Culex (node ${NODE_FLAGS.join(' ')} dist/main.js), LevelDB store, store.sync false (default)`,
    node: true,
    nodeFlags: NODE_FLAGS,
    cmd: (port, dir) => [culexMain, 'start', '--mqtt-port', String(port), '--ws-port', '0', '--admin-port', '0',
      '--host', '127.0.0.1', '--data-dir', dir, '--log-level', 'warn', '--log-format', 'json'],
    // limits.maxConnections lifted (default 10 000): the connections scenario holds 19 500
    env: { CULEX_STORE_SYNC: 'false', CULEX_LIMITS_MAX_CONNECTIONS: '0' }
  },
  'culex-sync': {
    desc: 'Culex with CULEX_STORE_SYNC=true (every write batch fsynced)',
    node: true,
    nodeFlags: NODE_FLAGS,
    cmd: (port, dir) => BROKERS.culex.cmd(port, dir),
    env: { CULEX_STORE_SYNC: 'true', CULEX_LIMITS_MAX_CONNECTIONS: '0' }
  },
  'culex-redis': {
    desc: 'Culex in cluster mode on a private redis-server (AOF on, appendfsync everysec), one node (bench/ref/cluster.mjs; SIGTERM scenarios only)',
    node: true,
    nodeFlags: NODE_FLAGS,
    cmd: (port, dir) => clusterCmd('culex', [port], dir),
    env: { CULEX_LIMITS_MAX_CONNECTIONS: '0' }
  },
  // `cluster`: one node per port on one private redis-server (the scenario's `nodes`, default 2); SIGTERM scenarios only
  'culex-cluster': {
    desc: 'Culex cluster: nodes in cluster mode on one private redis-server (AOF on, appendfsync everysec) (bench/ref/cluster.mjs)',
    node: true,
    nodeFlags: NODE_FLAGS,
    cluster: true,
    cmd: (port, dir, ports) => clusterCmd('culex', ports, dir),
    env: { CULEX_LIMITS_MAX_CONNECTIONS: '0' }
  },
  'aedes-cluster': {
    desc: "aedes' cluster recipe: aedes 1.2.0 nodes with mqemitter-redis 7.2.1 and aedes-persistence-redis 11.2.2 (defaults) on one private redis-server (AOF on, appendfsync everysec)",
    node: true,
    cluster: true,
    mqtt5: false,
    cmd: (port, dir, ports) => clusterCmd('aedes', ports, dir)
  },
  'aedes-mem': {
    desc: 'bare aedes 1.2.0, `await Aedes.createBroker()` defaults (in-memory persistence), net server',
    node: true,
    mqtt5: false,
    cmd: port => ['bench/ref/aedes-server.mjs', '--port', String(port)]
  },
  'aedes-level': {
    desc: 'aedes 1.2.0 + aedes-persistence-level 9.2.0 on level 10 (LevelDB)',
    node: true,
    mqtt5: false,
    cmd: (port, dir) => ['bench/ref/aedes-server.mjs', '--port', String(port), '--persistence', 'level', '--dir', path.join(dir, 'level')]
  },
  mosquitto: {
    desc: 'mosquitto (Debian), persistence on, max_queued_messages 100000, max_inflight_messages 0',
    node: false,
    cmd: (port, dir) => {
      const conf = path.join(dir, 'mosquitto.conf')
      fs.writeFileSync(conf, [
        `listener ${port} 127.0.0.1`,
        'allow_anonymous true',
        'persistence true',
        `persistence_location ${dir}/`,
        'max_queued_messages 100000',
        'max_queued_bytes 0',
        'max_inflight_messages 0',
        'user root',
        'log_dest stderr',
        'log_type error',
        'log_type warning',
        ''
      ].join('\n'))
      return [MOSQUITTO, '-c', conf]
    }
  }
}

/** A private redis-server and one node per port on it (the wrapper stops them together on SIGTERM). */
function clusterCmd (broker, ports, dir) {
  return ['bench/ref/cluster.mjs', '--broker', broker, ...(broker === 'culex' ? ['--main', culexMain] : []), '--ports', ports.join(','), '--dir', dir]
}

export const REFERENCES = ['aedes-mem', 'mosquitto']

/**
 * Copies dist/ and package.json under bench/results/ (git-ignored; node_modules still resolves from the repository)
 * and runs Culex from there: other people rebuilding dist/ during a 15-minute run must not change what is measured.
 * `dist`: another build to measure (an A/B against an earlier commit's dist/, copied aside).
 */
export function snapshotCulex (stamp, dist = path.join(repoDir, 'dist')) {
  const root = path.join(benchDir, 'results', `.culex-${stamp}`)
  fs.cpSync(dist, path.join(root, 'dist'), { recursive: true })
  fs.copyFileSync(path.join(repoDir, 'package.json'), path.join(root, 'package.json'))
  culexMain = path.join(root, 'dist/main.js')
  return root
}
