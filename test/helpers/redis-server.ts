import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import tls from 'node:tls'
import os from 'node:os'
import path from 'node:path'

export interface TestRedis {
  /** redis://127.0.0.1:<port>, or rediss:// with `tls` */
  url: string
  port: number
  /** Its working directory (AOF and RDB files live here). */
  dir: string
  /** SIGKILL: what a crash of the Redis host looks like. */
  kill: () => Promise<void>
  /** SIGTERM and wait for exit (Redis writes its RDB on a clean shutdown unless `save ''`). */
  stop: () => Promise<void>
  /** Starts again on the same port and directory (after stop or kill). */
  start: () => Promise<void>
  /** SIGSTOP / SIGCONT: a server that holds its connections but answers nothing meanwhile (a stalled replica). */
  pause: () => void
  resume: () => void
  /** Stops it and removes its directory. */
  close: () => Promise<void>
}

export interface TestRedisOptions {
  /** Append-only file: 'everysec' (Redis' default when on), 'always', or false (off, the default here). */
  appendfsync?: 'everysec' | 'always' | false
  /** A Redis Sentinel (not a server) monitoring the server on this port as master `mymaster`. */
  sentinelOf?: number
  /** A replica of the server on this port (`--replicaof`). */
  replicaOf?: number
  /**
   * The Sentinel's `down-after-milliseconds` and `failover-timeout` (with `sentinelOf`): how long the master may not
   * answer before it is taken for down, and how long a failover may take. Redis' defaults, 30 s and 3 min, are too
   * slow for a test.
   */
  sentinelDownAfterMs?: number
  sentinelFailoverTimeoutMs?: number
  /** TLS only (`--port 0 --tls-port`): this certificate and key, clients not asked for one; the probe trusts `caFile`. */
  tls?: { certFile: string, keyFile: string, caFile: string }
}

/** A port nothing listens on now (127.0.0.1). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0) })
    })
  })
}

/**
 * A private `redis-server` on a free loopback port with a temporary directory, started and stopped by the test
 * (the Debian package `redis-server`; scripts/test.sh installs it). Never a Redis already running on the machine.
 */
export async function startTestRedis (opts: TestRedisOptions = {}): Promise<TestRedis> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'culex-redis-'))
  let port = 0
  let child: ChildProcess | undefined

  const conf = path.join(dir, 'sentinel.conf')
  const args = (): string[] => opts.sentinelOf !== undefined
    ? [conf, '--sentinel', '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning', '--protected-mode', 'no']
    : [
    ...(opts.tls === undefined
      ? ['--port', String(port)]
      : ['--port', '0', '--tls-port', String(port), '--tls-cert-file', opts.tls.certFile, '--tls-key-file', opts.tls.keyFile,
          '--tls-ca-cert-file', opts.tls.caFile, '--tls-auth-clients', 'no', '--tls-replication', 'yes']),
    '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', opts.appendfsync === undefined || opts.appendfsync === false ? 'no' : 'yes',
    ...(opts.appendfsync !== undefined && opts.appendfsync !== false ? ['--appendfsync', opts.appendfsync] : []),
    '--daemonize', 'no', '--loglevel', 'warning', '--protected-mode', 'no',
    // a replica's first sync starts at once, not after Redis' default 5 s wait for more replicas
    '--repl-diskless-sync-delay', '0',
    ...(opts.replicaOf !== undefined ? ['--replicaof', '127.0.0.1', String(opts.replicaOf)] : [])
  ]

  const caPem = opts.tls === undefined ? undefined : await readFile(opts.tls.caFile)
  const launch = async (): Promise<void> => {
    // the Sentinel rewrites its file: one of its own, written before each launch
    if (opts.sentinelOf !== undefined) {
      await writeFile(conf, [
        `sentinel monitor mymaster 127.0.0.1 ${opts.sentinelOf} 1`,
        ...(opts.sentinelDownAfterMs === undefined ? [] : [`sentinel down-after-milliseconds mymaster ${opts.sentinelDownAfterMs}`]),
        ...(opts.sentinelFailoverTimeoutMs === undefined ? [] : [`sentinel failover-timeout mymaster ${opts.sentinelFailoverTimeoutMs}`])
      ].join('\n') + '\n')
    }
    const proc = spawn('redis-server', args(), { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    let output = ''
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`redis-server did not start within 10 s: ${output}`)) }, 10_000)
      const probe = (): void => {
        const socket = opts.tls === undefined
          ? net.connect(port, '127.0.0.1')
          : tls.connect({ port, host: '127.0.0.1', ca: caPem })
        socket.once(opts.tls === undefined ? 'connect' : 'secureConnect', () => {
          socket.write('PING\r\n')
          socket.once('data', (data) => {
            socket.destroy()
            if (data.toString().startsWith('+PONG')) { clearTimeout(timer); resolve() } else setTimeout(probe, 20)
          })
        })
        socket.once('error', () => { socket.destroy(); if (proc.exitCode === null) setTimeout(probe, 20) })
      }
      proc.stdout?.on('data', (d: Buffer) => { output += d.toString() })
      proc.stderr?.on('data', (d: Buffer) => { output += d.toString() })
      proc.once('error', (err) => { clearTimeout(timer); reject(new Error(`redis-server could not be started (apt-get install redis-server): ${err.message}`)) })
      proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`redis-server exited with ${String(code)}: ${output}`)) })
      probe()
    })
  }

  const waitExit = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    await new Promise<void>((resolve) => { proc.once('exit', () => { resolve() }); proc.kill(signal) })
    child = undefined
  }

  for (let attempt = 0; ; attempt++) {
    port = await freePort()
    try { await launch(); break } catch (err) {
      // Another process may take the port between freePort() and redis-server binding it: try another one.
      if (attempt >= 4) throw err
    }
  }

  return {
    url: `${opts.tls === undefined ? 'redis' : 'rediss'}://127.0.0.1:${port}`,
    port,
    dir,
    kill: async () => { await waitExit('SIGKILL') },
    stop: async () => { await waitExit('SIGTERM') },
    start: launch,
    pause: () => { child?.kill('SIGSTOP') },
    resume: () => { child?.kill('SIGCONT') },
    close: async () => { await waitExit('SIGKILL'); await rm(dir, { recursive: true, force: true }) }
  }
}
