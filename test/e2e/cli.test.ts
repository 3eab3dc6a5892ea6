/**
 * The `culex` command as a user runs it: the built dist/main.js (the Docker image's entry point) in a child
 * process. Exit codes, what lands on stdout and stderr, signals, and the admin health endpoints.
 */
import net from 'node:net'
import { existsSync, readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NODE_FLAGS } from '../../src/cli/node-flags.js'
import { repoRoot, runCli, spawnTracked, startArgs, startCli, type LogLine, type RunningCli } from '../helpers/cli.js'
import { cliTestFile } from '../helpers/cli-test-file.js'
import { mosquittoPub, mosquittoSub } from './support/mosquitto.js'

const pkgVersion = (JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version
const stackFrame = /^\s+at /m
const holdSessions = path.join(repoRoot, 'test', 'e2e', 'support', 'hold-sessions.mjs')

const dataDir = cliTestFile()

/** The "  - ..." detail lines of a culex error report. */
function detailLines (stderr: string): string[] {
  return stderr.split('\n').filter(l => l.startsWith('  - '))
}

describe('culex --help and --version', () => {
  it('--help prints the usage on stdout and exits 0', async () => {
    const r = await runCli(['--help'])
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('')
    expect(r.stdout).toContain('Usage:')
    expect(r.stdout).toContain('culex [start] [options]')
    expect(r.stdout).toContain('culex check-config')
    expect(r.stdout).toContain('Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage.')
  })

  it('start --help lists the configuration flags and exits 0 without starting', async () => {
    const r = await runCli(['start', '--help'])
    expect(r.code).toBe(0)
    for (const flag of ['--config', '--mqtt-port', '--ws-port', '--admin-port', '--host', '--data-dir', '--log-level', '--log-format']) {
      expect(r.stdout).toContain(flag)
    }
    expect(r.stdout).not.toContain('broker started')
  })

  it('--version prints the package version and exits 0', async () => {
    const r = await runCli(['--version'])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(`${pkgVersion}\n`)
    expect(r.stderr).toBe('')
  })
})

describe('culex check-config', () => {
  it('accepts a valid configuration (file, environment and flags) with exit 0 and says where each setting came from', async () => {
    const dir = await dataDir()
    const file = path.join(dir, 'culex.yaml')
    await writeFile(file, 'listeners:\n  mqtt:\n    port: 1884\nsessions:\n  maxQueuedMessages: 500\n')
    const r = await runCli(['check-config', '--config', file, '--ws-port', '8090'], { CULEX_SHUTDOWN_TIMEOUT_MS: '2000' })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('configuration is valid')
    expect(r.stdout).toContain('listeners.mqtt.port (from file)')
    expect(r.stdout).toContain('sessions.maxQueuedMessages (from file)')
    expect(r.stdout).toContain('shutdown.timeoutMs (from env)')
    expect(r.stdout).toContain('listeners.ws.port (from flag)')
  })

  it('runs the start-up security checks: a broken ACL file and a public listener nobody can log in to exit 2', async () => {
    const dir = await dataDir()
    const acl = path.join(dir, 'acl.conf')
    await writeFile(acl, 'user\n')
    const broken = await runCli(['check-config'], { CULEX_AUTH_ACL_FILE: acl })
    expect(broken.code).toBe(2)
    expect(broken.stderr).toContain('[ERR_AUTH_FILE]')
    expect(broken.stderr).toContain(acl)
    expect(broken.stderr).not.toContain('    at ')
    const open = await runCli(['check-config', '--host', '0.0.0.0'])
    expect(open.code).toBe(2)
    expect(open.stderr).toContain('allowAnonymous')
  })

  it('accepts the shipped config/culex.yaml', async () => {
    const r = await runCli(['check-config', '--config', path.join(repoRoot, 'config', 'culex.yaml')])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  })

  it('reports every problem from file, environment and flags at once: exit 2, one line each naming key and source, no stack trace', async () => {
    const dir = await dataDir()
    const file = path.join(dir, 'bad.yaml')
    await writeFile(file, 'listeners:\n  mqtt:\n    port: 70000\nbogusKey: 1\n')
    const r = await runCli(['check-config', '--config', file, '--ws-port', 'eighty'], { CULEX_ADMIN_PORT: 'abc', CULEX_LOG_LEVEL: 'loud' })
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).not.toMatch(stackFrame)
    expect(r.stderr).toContain('[ERR_CONFIG_INVALID]')
    const lines = detailLines(r.stderr)
    expect(lines).toHaveLength(5)
    const line = (key: string): string => lines.find(l => l.startsWith(`  - ${key}:`)) ?? `(no line for ${key} in:\n${r.stderr})`
    expect(line('listeners.mqtt.port')).toContain('70000')
    expect(line('listeners.mqtt.port')).toContain(`(from ${file})`)
    expect(line('bogusKey')).toContain('unknown setting')
    expect(line('bogusKey')).toContain(`(from ${file})`)
    expect(line('admin.port')).toContain('"abc"')
    expect(line('admin.port')).toContain('CULEX_ADMIN_PORT')
    expect(line('log.level')).toContain('CULEX_LOG_LEVEL')
    expect(line('listeners.ws.port')).toContain('"eighty"')
    expect(line('listeners.ws.port')).toContain('command line')
    // Everything on stderr is the summary line and one line per problem.
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(6)
  })

  const noEnv: Record<string, string> = {}
  it.each([
    { source: 'file', args: (file: string) => ['--config', file], env: noEnv, key: 'sessions.overflowPolicy', where: (file: string) => file },
    { source: 'environment', args: () => [], env: { CULEX_STORE_SYNC: 'maybe' } as Record<string, string>, key: 'store.sync', where: () => 'CULEX_STORE_SYNC' },
    { source: 'flag', args: () => ['--mqtt-port', '65536'], env: noEnv, key: 'listeners.mqtt.port', where: () => 'command line' }
  ])('an invalid value from the $source: exit 2, one line naming $key and where it came from', async ({ args, env, key, where }) => {
    const dir = await dataDir()
    const file = path.join(dir, 'culex.yaml')
    await writeFile(file, 'sessions:\n  overflowPolicy: dropRandom\n')
    const r = await runCli(['check-config', ...args(file)], env)
    expect(r.code).toBe(2)
    expect(r.stderr).not.toMatch(stackFrame)
    const lines = detailLines(r.stderr)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(new RegExp(`^  - ${key.replace(/\./g, '\\.')}: `))
    expect(lines[0]).toContain(where(file))
  })

  it('a conflict between two settings names the key and where the conflicting value came from', async () => {
    // listeners.ws.port comes from the file and collides with listeners.mqtt.port from the command line.
    const dir = await dataDir()
    const file = path.join(dir, 'culex.yaml')
    await writeFile(file, 'listeners:\n  ws:\n    port: 1884\n')
    const r = await runCli(['check-config', '--config', file, '--mqtt-port', '1884'])
    expect(r.code).toBe(2)
    expect(r.stderr).not.toMatch(stackFrame)
    const lines = detailLines(r.stderr)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain('listeners.ws.port')
    expect(lines[0]).toContain('1884')
    // README: "one line per problem naming the key and where it came from".
    expect(lines[0]).toMatch(/\(from [^)]*(culex\.yaml|command line)/)
  })

  it('a config file that is not valid YAML: exit 2 with the file and line, no stack trace', async () => {
    const dir = await dataDir()
    const file = path.join(dir, 'broken.yaml')
    await writeFile(file, 'listeners:\n  mqtt:\n    port: [1883\n')
    const r = await runCli(['check-config', '--config', file])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('[ERR_CONFIG_FILE]')
    expect(r.stderr).toContain(file)
    expect(r.stderr).toMatch(/line \d+/)
    expect(r.stderr).not.toMatch(stackFrame)
  })

  it('a config file that does not exist: exit 2 naming the file', async () => {
    const r = await runCli(['check-config', '--config', '/nonexistent/culex.yaml'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('/nonexistent/culex.yaml')
    expect(r.stderr).toContain('[ERR_CONFIG_FILE]')
    expect(r.stderr).not.toMatch(stackFrame)
  })

  it('start with an invalid configuration exits 2 without starting', async () => {
    const r = await runCli(['start', '--mqtt-port', '99999', '--data-dir', await dataDir(), '--log-format', 'json'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('listeners.mqtt.port')
    expect(r.stderr).not.toMatch(stackFrame)
    expect(r.stdout).not.toContain('broker started')
  })
})

describe('usage errors', () => {
  it.each([
    'start --no-such-flag',
    'check-config --no-such-flag',
    '--no-such-flag'
  ])('unknown flag: culex %s exits 2 naming the flag', async command => {
    const r = await runCli(command.split(' '))
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('--no-such-flag')
    expect(r.stderr).toContain('[ERR_USAGE]')
    expect(r.stderr).not.toMatch(stackFrame)
    expect(r.stdout).not.toContain('broker started')
  })

  it('unknown command: exit 2', async () => {
    const r = await runCli(['frobnicate'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('frobnicate')
    expect(r.stderr).toContain('[ERR_USAGE]')
  })
})

describe('listener port already in use', () => {
  let blocker: net.Server
  let busyPort: number
  beforeAll(async () => {
    blocker = net.createServer()
    await new Promise<void>(resolve => blocker.listen(0, '127.0.0.1', () => resolve()))
    busyPort = (blocker.address() as net.AddressInfo).port
  })
  afterAll(async () => { await new Promise(resolve => blocker.close(resolve)) })

  it.each([
    { flag: '--mqtt-port', listener: 'mqtt' },
    { flag: '--ws-port', listener: 'ws' },
    { flag: '--admin-port', listener: 'admin' }
  ])('$listener: exit 1 with ERR_LISTENER_BIND naming the listener and the port, no stack trace', async ({ flag, listener }) => {
    const args = startArgs(await dataDir())
    args[args.indexOf(flag) + 1] = String(busyPort)
    const r = await runCli(args)
    expect(r.timedOut).toBe(false)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('[ERR_LISTENER_BIND]')
    expect(r.stderr).toContain(`listener ${listener} cannot bind 127.0.0.1:${busyPort}`)
    expect(r.stderr).toContain('already in use')
    expect(r.stderr).not.toMatch(stackFrame)
    expect(r.stdout).not.toContain('"broker started"')
  })
})

describe('running broker', () => {
  it('logs JSON lines with the chosen ports, and answers healthz and readyz', async () => {
    const cli = await startCli(startArgs(await dataDir()))
    expect(cli.badLines).toEqual([])
    for (const port of Object.values(cli.ports)) expect(port).toBeGreaterThan(0)
    const started = cli.logs.find(l => l.msg === 'broker started')
    expect(started?.version).toBe(pkgVersion)

    const healthz = await fetch(`http://127.0.0.1:${cli.ports.admin}/healthz`)
    expect(healthz.status).toBe(200)
    const readyz = await fetch(`http://127.0.0.1:${cli.ports.admin}/readyz`)
    expect(readyz.status).toBe(200)
    expect(readyz.headers.get('content-type')).toMatch(/^application\/json/)
    expect(await readyz.json()).toEqual({ status: 'ready' })
    const missing = await fetch(`http://127.0.0.1:${cli.ports.admin}/nope`)
    expect(missing.status).toBe(404)

    // The ports it logged are the ones it serves: an MQTT round trip on the logged mqtt port.
    const pub = await mosquittoPub(cli.ports.mqtt, ['-t', 'e2e/ping', '-m', 'pong', '-q', '1'])
    expect(pub.code).toBe(0)

    expect(await cli.stop('SIGTERM')).toBe(0)
  })

  it('started as the entry point starts it, it says nothing of node flags; started as a bare `node dist/main.js`, it warns with the command to use', async () => {
    const withFlags = await startCli(startArgs(await dataDir()))
    const bare = await startCli(startArgs(await dataDir()), {}, { nodeFlags: [] })
    const given = await startCli(startArgs(await dataDir()), {}, { nodeFlags: ['--max-semi-space-size=16'] })
    const warning = (cli: RunningCli): LogLine | undefined => cli.logs.find(l => l.msg === 'node started without the entry point\'s flags')
    expect(warning(withFlags)).toBeUndefined()
    expect(warning(bare)).toMatchObject({ level: 40, missing: ['--max-semi-space-size=32'], command: 'node --max-semi-space-size=32 dist/main.js start' })
    // another value of the same flag is the operator's choice
    expect(warning(given)).toBeUndefined()
    for (const cli of [withFlags, bare, given]) expect(await cli.stop('SIGTERM')).toBe(0)
  })

  it('the built culex command (dist/main.js, the package\'s bin) starts node with the entry point\'s flags', () => {
    expect(readFileSync(path.join(repoRoot, 'dist', 'main.js'), 'utf8').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`)
  })

  it('a bare `culex <options>` (no command) starts the broker, like `culex start`', async () => {
    const cli = await startCli(startArgs(await dataDir()).slice(1))
    expect(cli.ports.mqtt).toBeGreaterThan(0)
    expect(await cli.stop('SIGTERM')).toBe(0)
  })

  it('configured by CULEX_* variables alone, as in the Docker image: JSON logs on a pipe, the store in <dataDir>/store', async () => {
    const dir = await dataDir()
    const cli = await startCli(['start'], {
      NODE_ENV: 'production',
      CULEX_DATA_DIR: dir,
      CULEX_LISTENERS_MQTT_HOST: '127.0.0.1',
      CULEX_LISTENERS_MQTT_PORT: '0',
      CULEX_LISTENERS_WS_HOST: '127.0.0.1',
      CULEX_LISTENERS_WS_PORT: '0',
      CULEX_ADMIN_PORT: '0'
    })
    // log.format auto: stdout is not a terminal, so every line is JSON.
    expect(cli.badLines).toEqual([])
    expect(cli.logs.length).toBeGreaterThan(0)
    expect(existsSync(path.join(dir, 'store'))).toBe(true)
    const pub = await mosquittoPub(cli.ports.mqtt, ['-t', 'e2e/env', '-m', 'ok', '-q', '2'])
    expect(pub.code, pub.stderr).toBe(0)
    expect(await cli.stop('SIGTERM')).toBe(0)
  })

  it.each(['SIGTERM', 'SIGINT'] as const)('%s: graceful exit 0 within shutdown.timeoutMs, clients disconnected, "broker stopped" logged last', async signal => {
    const timeoutMs = 5000
    const dir = await dataDir()
    const cli = await startCli(startArgs(dir), { CULEX_SHUTDOWN_TIMEOUT_MS: String(timeoutMs) })
    const sub = mosquittoSub(cli.ports.mqtt, ['-t', 'e2e/#', '-q', '1', '-c', '-i', 'e2e-shutdown'])
    await sub.subscribed
    const t0 = Date.now()
    const code = await cli.stop(signal, timeoutMs + 5000)
    const elapsed = Date.now() - t0
    expect(code).toBe(0)
    expect(elapsed).toBeLessThan(timeoutMs)
    const msgs = cli.logs.map(l => l.msg)
    expect(cli.logs.find(l => l.msg === 'shutting down')?.signal).toBe(signal)
    expect(msgs.at(-1)).toBe('broker stopped')
    expect(msgs).not.toContain('shutdown timed out, exiting')
    // The connected client was disconnected, and the log says so.
    expect(cli.logs.some(l => l.msg === 'client disconnected' && l.clientId === 'e2e-shutdown')).toBe(true)
    // The data dir is left consistent: the broker starts again on it.
    const again = await startCli(startArgs(dir))
    expect(await again.stop('SIGTERM')).toBe(0)
  })

  it('a second signal during shutdown exits at once with code 1 (no "broker stopped")', async () => {
    const dir = await dataDir()
    // A long shutdown timeout, so only the second signal can explain a quick exit.
    const cli = await startCli(startArgs(dir), { CULEX_SHUTDOWN_TIMEOUT_MS: '60000' })
    // Connected clients with persistent sessions give the shutdown some work: sessions to close, the store to flush.
    const subs = Array.from({ length: 5 }, (_, i) => mosquittoSub(cli.ports.mqtt, ['-t', `e2e/second/${i}`, '-q', '1', '-c', '-i', `e2e-second-${i}`]))
    await Promise.all(subs.map(async s => await s.subscribed))
    // Both signals are sent back to back, so the second one arrives while the first shutdown is still under way.
    // The shutdown needs several event-loop turns (listener close callbacks, aedes close, LevelDB close on the
    // thread pool), and both signals are normally handled in the same turn.
    const t0 = Date.now()
    process.kill(cli.pid, 'SIGTERM')
    process.kill(cli.pid, 'SIGINT')
    const exit = await cli.exited
    const elapsed = Date.now() - t0
    const msgs = cli.logs.map(l => l.msg)
    expect(exit.code, `logs: ${JSON.stringify(msgs)}`).toBe(1)
    expect(elapsed).toBeLessThan(5000)
    expect(msgs).toContain('shutting down')
    expect(msgs).toContain('second signal, exiting now')
    expect(msgs).not.toContain('broker stopped')
    // Exiting mid-shutdown must not damage the data dir.
    const again = await startCli(startArgs(dir))
    expect(await again.stop('SIGTERM')).toBe(0)
  })

  it('Ctrl-C twice: a second SIGINT while a slow shutdown is under way exits at once with code 1', async () => {
    const dir = await dataDir()
    const cli = await startCli(startArgs(dir), { CULEX_SHUTDOWN_TIMEOUT_MS: '60000' })
    // Two identical signals sent back to back can merge into one, so the second SIGINT is sent only once the
    // broker logged "shutting down". 200 connected persistent sessions make that shutdown take a few hundred
    // milliseconds (about 350 ms measured on 2 cores), far longer than it takes to see the log line and signal.
    // The sessions live in a child process so that their sockets closing does not slow this process down.
    const holder = spawnTracked(process.execPath, [holdSessions, String(cli.ports.mqtt), '200', 'e2e-ctrlc-'])
    await holder.waitFor(() => holder.stdoutLines.includes('ready'), '200 sessions connected', 20_000)
    // React to the log line as soon as it arrives (no polling interval).
    const sawShuttingDown = new Promise<void>(resolve => {
      const onData = (chunk: Buffer | string): void => {
        if (String(chunk).includes('"msg":"shutting down"')) {
          cli.proc.child.stdout?.off('data', onData)
          resolve()
        }
      }
      cli.proc.child.stdout?.on('data', onData)
    })
    process.kill(cli.pid, 'SIGINT')
    await Promise.race([sawShuttingDown, cli.exited])
    try { process.kill(cli.pid, 'SIGINT') } catch { /* already gone: the assertions below say so */ }
    const exit = await cli.exited
    const msgs = cli.logs.map(l => l.msg)
    expect(exit.code, `the shutdown finished before the second SIGINT arrived: ${JSON.stringify(msgs.slice(-3))}`).toBe(1)
    expect(msgs).toContain('second signal, exiting now')
    expect(msgs).not.toContain('broker stopped')
  })
})
