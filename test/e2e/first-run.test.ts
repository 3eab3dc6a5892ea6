/**
 * What a new user runs into first, with the built `culex` command: environment variables with a typo, TLS files
 * that do not belong together, a mistyped --data-dir, finding the admin server from the config, a replay that fails,
 * and what a restart brought back.
 */
import net from 'node:net'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { runCli, startArgs, startCli, type LogLine } from '../helpers/cli.js'
import { cliTestFile } from '../helpers/cli-test-file.js'
import { makeCerts, type Certs } from '../auth/support.js'

const stackFrame = /^\s+at /m
const WARN = 40

const dataDir = cliTestFile()

/** A port nothing listens on right now (bound and released). */
async function freePort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>(resolve => server.close(() => resolve()))
  return port
}

describe('unknown CULEX_* environment variables', () => {
  it('start warns once per unknown variable, naming the closest known one, and starts anyway', async () => {
    const culex = await startCli(startArgs(await dataDir()), { CULEX_ADMIN_TOKEN: 's3cret', CULEX_NOPE: '1' })
    const warnings = culex.logs.filter(l => l.msg === 'unknown environment variable ignored')
    expect(warnings).toHaveLength(2)
    expect(warnings.find(l => l.variable === 'CULEX_ADMIN_TOKEN')).toMatchObject({ level: WARN, closest: 'CULEX_ADMIN_AUTH_TOKEN' })
    expect(warnings.find(l => l.variable === 'CULEX_NOPE')).toMatchObject({ level: WARN })
    expect(warnings.find(l => l.variable === 'CULEX_NOPE')?.closest).toBeUndefined()
    expect(await culex.stop()).toBe(0)
  })

  it('check-config calls the configuration valid and prints one warning line per unknown variable', async () => {
    const r = await runCli(['check-config'], { CULEX_LOG_LEVLE: 'debug', CULEX_ADMIN_PORT: '9000' })
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('configuration is valid')
    expect(r.stderr).toBe('culex: warning: CULEX_LOG_LEVLE: unknown setting, ignored (did you mean CULEX_LOG_LEVEL?)\n')
  })
})

describe('TLS files that do not load together', () => {
  let certs: Certs
  beforeAll(async () => { certs = await makeCerts() }, 60_000)

  const cases = [
    {
      what: 'a key that belongs to another certificate',
      files: (): [string, string] => [certs.serverCert, certs.clientKey],
      problem: (): string => `listeners.mqtts: keyFile ${certs.clientKey} is not the private key of certFile ${certs.serverCert}`
    },
    {
      what: 'a certificate file that holds no certificate',
      files: (): [string, string] => [certs.serverKey, certs.serverKey],
      problem: (): string => `listeners.mqtts: certFile ${certs.serverKey} is not a PEM certificate`
    }
  ]

  it.each(cases)('$what: check-config and start both exit 2 with ERR_TLS_FILES naming the listener and files', async ({ files, problem }) => {
    const [cert, key] = files()
    const env = { CULEX_LISTENERS_MQTTS_ENABLED: 'true', CULEX_LISTENERS_MQTTS_PORT: '0', CULEX_LISTENERS_MQTTS_CERT_FILE: cert, CULEX_LISTENERS_MQTTS_KEY_FILE: key }
    const check = await runCli(['check-config'], env)
    expect(check.code).toBe(2)
    expect(check.stdout).toBe('')
    expect(check.stderr).toContain(problem())
    expect(check.stderr).toContain('[ERR_TLS_FILES]')
    expect(check.stderr).not.toMatch(stackFrame)
    expect(check.stderr).not.toContain('unexpected error')

    const start = await runCli(startArgs(await dataDir()), env)
    expect(start.code).toBe(2)
    expect(start.stdout).not.toContain('broker started')
    expect(start.stderr).toContain(problem())
    expect(start.stderr).toContain('[ERR_TLS_FILES]')
    expect(start.stderr).not.toMatch(stackFrame)
  })
})

describe('a data directory that holds no store', () => {
  it.each([
    ['dlq list with no broker', (dir: string, adminUrl: string) => ['dlq', 'list', '--admin-url', adminUrl, '--data-dir', dir]],
    ['sessions list', (dir: string) => ['sessions', 'list', '--data-dir', dir]],
    ['sessions show', (dir: string) => ['sessions', 'show', 'c1', '--data-dir', dir]]
  ])('%s: refused with ERR_STORE_OPEN naming the directory; nothing is created', async (_name, args) => {
    const typo = path.join(await dataDir(), 'typo')
    const r = await runCli(args(typo, `http://127.0.0.1:${await freePort()}`))
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`no culex store in ${typo}`)
    expect(r.stderr).toContain('[ERR_STORE_OPEN]')
    expect(r.stderr).not.toMatch(stackFrame)
    expect(existsSync(typo)).toBe(false)
  })

  it('an existing but empty directory is refused too; one the broker has used is opened', async () => {
    const dir = await dataDir()
    const empty = await runCli(['sessions', 'list', '--data-dir', dir])
    expect(empty.code).toBe(1)
    expect(empty.stderr).toContain('[ERR_STORE_OPEN]')
    const culex = await startCli(startArgs(dir))
    expect(await culex.stop()).toBe(0)
    const used = await runCli(['sessions', 'list', '--data-dir', dir])
    expect(used.stderr).toBe('')
    expect(used.code).toBe(0)
  })
})

describe('culex dlq --config', () => {
  it('finds the admin server and its token in the config file; a replay that is dead-lettered again exits 1', async () => {
    const dir = await dataDir()
    const adminPort = await freePort()
    const file = path.join(dir, 'culex.yaml')
    await writeFile(file, `dataDir: ${JSON.stringify(dir)}\nadmin:\n  port: ${adminPort}\n  authToken: s3cret\nlimits:\n  maxPayloadBytes: 8\n`)
    const culex = await startCli(['start', '--config', file, '--mqtt-port', '0', '--ws-port', '0', '--host', '127.0.0.1', '--log-format', 'json'])
    expect(culex.ports.admin).toBe(adminPort)
    const pub = await connectClient(`mqtt://127.0.0.1:${culex.ports.mqtt}`, { clientId: 'too-big' })
    await pub.publishAsync('big/one', 'far more than eight bytes', { qos: 1 })
    await endClient(pub)

    const list = await runCli(['dlq', 'list', '--json', '--config', file])
    expect(list.stderr).toBe('')
    expect(list.code).toBe(0)
    const { items } = JSON.parse(list.stdout) as { items: Array<{ id: string, reason: string }> }
    expect(items).toMatchObject([{ reason: 'too-large' }])
    // Without the config's token the same server refuses: the token above came from the file.
    const noToken = await runCli(['dlq', 'list', '--admin-url', `http://127.0.0.1:${adminPort}`])
    expect(noToken.code).toBe(1)
    expect(noToken.stderr).toContain('[ERR_ADMIN_API]')
    const byEnv = await runCli(['dlq', 'list', '--json', '--admin-url', `http://127.0.0.1:${adminPort}`], { CULEX_ADMIN_AUTH_TOKEN: 's3cret' })
    expect(byEnv.code).toBe(0)

    // Still too large: the replay does not publish it, and says so with exit 1.
    const replay = await runCli(['dlq', 'replay', items[0].id, '--json', '--config', file])
    expect(replay.code).toBe(1)
    expect(JSON.parse(replay.stdout)).toMatchObject({ id: items[0].id, outcome: 'dead-lettered', reason: 'too-large' })
    expect(replay.stderr).toContain(`1 replayed message was not published: ${items[0].id} (too-large)`)
    const replayAll = await runCli(['dlq', 'replay', '--all', '--json', '--config', file])
    expect(replayAll.code).toBe(1)
    expect(await culex.stop()).toBe(0)
  }, 60_000)
})

describe('the recovery line after a restart', () => {
  it('says how many sessions, queued messages, retained messages and wills came back, and how long it took', async () => {
    const dir = await dataDir()
    const first = await startCli(startArgs(dir))
    const url = `mqtt://127.0.0.1:${first.ports.mqtt}`
    const fresh = first.logs.find(l => l.msg === 'store recovered')
    expect(fresh).toMatchObject({ sessions: 0, queuedMessages: 0, retained: 0, wills: 0 })
    const sub = await connectClient(url, { clientId: 'keeps-queue', clean: false })
    await sub.subscribeAsync('rec/#', { qos: 1 })
    await endClient(sub)
    const pub = await connectClient(url, { clientId: 'rec-pub' })
    for (let i = 0; i < 3; i++) await pub.publishAsync(`rec/${i}`, `m${i}`, { qos: 1 })
    await pub.publishAsync('status/kept', 'on', { qos: 1, retain: true })
    await endClient(pub)
    const willed = await connectClient(url, { clientId: 'has-will', will: { topic: 'status/gone', payload: Buffer.from('gone'), qos: 1, retain: false } })
    await waitFor(() => first.logs.some(l => l.msg === 'client connected' && l.clientId === 'has-will'), 'has-will connected')
    await first.kill9()
    willed.end(true)

    const second = await startCli(startArgs(dir))
    const lines = second.logs.filter(l => l.msg === 'store recovered')
    expect(lines).toHaveLength(1)
    const line = lines[0] as LogLine & { ms: number }
    // keeps-queue subscribed to rec/# only: the three rec/ messages wait for it, the retained one is kept apart.
    expect(line).toMatchObject({ level: 30, sessions: 1, queuedMessages: 3, retained: 1, wills: 1 })
    expect(line.ms).toBeGreaterThanOrEqual(0)
    expect(await second.stop()).toBe(0)
  }, 60_000)
})
