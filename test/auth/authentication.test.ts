import { readFile, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { isCulexError } from '../../src/errors.js'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { passwordFileText, run, tempDir, tryConnect, writePasswordFile } from './support.js'

/** Logins over real sockets: the password file, anonymous access per listener, the backoff, and reloads. */
describe('authentication', () => {
  const brokers: TestBroker[] = []
  const start = async (settings: Record<string, unknown>): Promise<TestBroker> => {
    const b = await startTestBroker(settings)
    brokers.push(b)
    return b
  }
  afterEach(async () => {
    await Promise.all(brokers.splice(0).map(async b => await b.close()))
  })

  async function withUsers (users: Record<string, string>, settings: Record<string, unknown> = {}): Promise<{ t: TestBroker, file: string }> {
    const file = await writePasswordFile(path.join(await tempDir(), 'passwd'), users)
    const t = await start({ 'auth.passwordFile': file, 'auth.failedLoginDelayMs': 0, ...settings })
    return { t, file }
  }

  it('lets the right user in and refuses a wrong password or unknown user with CONNACK 4, logging no password', async () => {
    const { t } = await withUsers({ alice: 'correct horse' })
    expect((await tryConnect(t.mqttUrl, { username: 'alice', password: 'correct horse' })).result).toBe(0)
    expect((await tryConnect(t.wsUrl, { username: 'alice', password: 'correct horse' })).result).toBe(0)
    expect((await tryConnect(t.mqttUrl, { username: 'alice', password: 'battery staple' })).result).toBe(4)
    expect((await tryConnect(t.mqttUrl, { username: 'mallory', password: 'correct horse' })).result).toBe(4)
    expect((await tryConnect(t.mqttUrl, { username: 'alice' })).result).toBe(4)
    const failed = t.logs.filter(l => l.msg === 'login failed')
    expect(failed.map(l => [l.username, l.reason, l.returnCode])).toEqual([
      ['alice', 'wrong password', 4], ['mallory', 'unknown user', 4], ['alice', 'no password', 4]
    ])
    expect(JSON.stringify(t.logs)).not.toMatch(/battery staple|correct horse/)
    expect(t.broker.security.auth.loginFailures).toBe(3)
  })

  it('works with mosquitto_pub -u/-P', async () => {
    const { t } = await withUsers({ alice: 's3cret' })
    const sub = await connectClient(t.mqttUrl, { username: 'alice', password: 's3cret' })
    await sub.subscribeAsync('cli/#', { qos: 1 })
    const ok = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(t.mqttPort), '-u', 'alice', '-P', 's3cret', '-t', 'cli/x', '-m', 'hello', '-q', '1'])
    expect(ok.code).toBe(0)
    await waitFor(() => sub.received.length === 1, 'the message from mosquitto_pub')
    const bad = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(t.mqttPort), '-u', 'alice', '-P', 'wrong', '-t', 'cli/x', '-m', 'no'])
    expect(bad.code).not.toBe(0)
    expect(bad.stderr + bad.stdout).toMatch(/bad user name or password/i)
    const anon = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(t.mqttPort), '-t', 'cli/x', '-m', 'no'])
    expect(anon.stderr + anon.stdout).toMatch(/not authori[sz]ed/i)
    await endClient(sub)
    expect(sub.received.map(m => m.payload)).toEqual(['hello'])
  })

  it('allows anonymous clients on a loopback listener by default, with a warning at start', async () => {
    const t = await start({})
    expect((await tryConnect(t.mqttUrl)).result).toBe(0)
    expect(t.logs.filter(l => l.msg === 'anonymous access is enabled on this listener').map(l => l.listener)).toEqual(['mqtt', 'ws'])
    // A user name cannot be checked without a password file, so it is not taken on trust.
    expect((await tryConnect(t.mqttUrl, { username: 'alice', password: 'x' })).result).toBe(4)
  })

  it('applies allowAnonymous per listener: refused with CONNACK 5 where it is off', async () => {
    const { t } = await withUsers({ alice: 'pw' }, { 'listeners.ws.allowAnonymous': true })
    expect((await tryConnect(t.mqttUrl)).result).toBe(5)
    expect((await tryConnect(t.wsUrl)).result).toBe(0)
    const u = await start({ 'listeners.mqtt.allowAnonymous': false })
    expect((await tryConnect(u.mqttUrl)).result).toBe(5)
    expect((await tryConnect(u.wsUrl)).result).toBe(0)
    expect(u.logs.some(l => l.msg === 'login failed' && l.reason === 'anonymous not allowed' && l.listener === 'mqtt' && l.returnCode === 5)).toBe(true)
  })

  it('refuses to start a listener on a public address with auto and no password file (exit 2 error)', async () => {
    const err = await startTestBroker({ 'listeners.mqtt.host': '0.0.0.0' }).then(() => undefined, (e: unknown) => e)
    expect(isCulexError(err) && err.code).toBe('ERR_CONFIG_INVALID')
    expect(isCulexError(err) && err.details.join('\n')).toMatch(/listeners\.mqtt\.allowAnonymous: is auto .* set auth\.passwordFile .* listeners\.mqtt\.allowAnonymous: true/)
    const open = await start({ 'listeners.mqtt.host': '0.0.0.0', 'listeners.mqtt.allowAnonymous': true })
    expect((await tryConnect(`mqtt://127.0.0.1:${open.mqttPort}`)).result).toBe(0)
  })

  it('refuses to start with a password file it cannot use', async () => {
    const file = path.join(await tempDir(), 'passwd')
    await writeFile(file, 'alice:plaintext\n')
    const err = await startTestBroker({ 'auth.passwordFile': file }).then(() => undefined, (e: unknown) => e)
    expect(isCulexError(err) && err.code).toBe('ERR_AUTH_FILE')
    expect(isCulexError(err) && err.details[0]).toMatch(/^line 1 \(user "alice"\): not a hash/)
  })

  it('slows repeated failures from one address: every later answer waits longer, capped', async () => {
    const { t } = await withUsers({ alice: 'pw' }, { 'auth.failedLoginDelayMs': 300, 'auth.failedLoginMaxDelayMs': 600 })
    const times = []
    for (let i = 0; i < 4; i++) times.push((await tryConnect(t.mqttUrl, { username: 'alice', password: 'guess' + i })).ms)
    expect(times[0]).toBeLessThan(250)
    expect(times[1]).toBeGreaterThanOrEqual(290)
    expect(times[2]).toBeGreaterThanOrEqual(590)
    expect(times[3]).toBeGreaterThanOrEqual(590)
    expect(times[3]).toBeLessThan(1500)
    // The right password is held just as long, so a guesser cannot stop waiting early and learn from the timing.
    const right = await tryConnect(t.mqttUrl, { username: 'alice', password: 'pw' })
    expect(right.result).toBe(0)
    expect(right.ms).toBeGreaterThanOrEqual(590)
    expect((await tryConnect(t.mqttUrl, { username: 'alice', password: 'pw' })).ms).toBeLessThan(250)
    expect(t.logs.filter(l => l.msg === 'login failed').map(l => l.failures)).toEqual([1, 2, 3, 4])
  })

  it('keys the backoff by user name: behind one address a failing user does not slow another, and gets no timing signal', async () => {
    const { t } = await withUsers({ alice: 'pw', bob: 'bob' }, { 'auth.failedLoginDelayMs': 300, 'auth.failedLoginMaxDelayMs': 600 })
    const attempt = async (username: string, password: string): Promise<{ result: number | 'closed', ms: number }> =>
      await tryConnect(t.mqttUrl, { username, password, clientId: `${username}-${password}` })
    const alice = []
    for (let i = 0; i < 3; i++) alice.push((await attempt('alice', 'stale')).ms)
    expect(alice[0]).toBeLessThan(250)
    expect(alice[2]).toBeGreaterThanOrEqual(590)
    // bob logs in from the same address at once, and logs in again at once after one mistake of his own
    const bob = await attempt('bob', 'bob')
    expect(bob.result).toBe(0)
    expect(bob.ms).toBeLessThan(250)
    expect((await attempt('bob', 'typo')).ms).toBeLessThan(250)
    // alice, backing off, waits as long with her right password as with a wrong one
    const wrong = await attempt('alice', 'stale')
    const right = await attempt('alice', 'pw')
    expect([wrong.result, right.result]).toEqual([4, 0])
    expect(wrong.ms).toBeGreaterThanOrEqual(590)
    expect(right.ms).toBeGreaterThanOrEqual(590)
    expect(Math.abs(right.ms - wrong.ms)).toBeLessThan(200)
    expect((await attempt('alice', 'pw')).ms).toBeLessThan(250)
    expect(t.logs.filter(l => l.msg === 'login failed').map(l => [l.username, l.failures])).toEqual([
      ['alice', 1], ['alice', 2], ['alice', 3], ['bob', 1], ['alice', 4]
    ])
  })

  it('slows every login from an address where more user names than auth.failedLoginMaxUsersPerAddress failed', async () => {
    const { t } = await withUsers({ bob: 'bob', u1: 'p', u2: 'p', u3: 'p' }, { 'auth.failedLoginDelayMs': 300, 'auth.failedLoginMaxDelayMs': 600, 'auth.failedLoginMaxUsersPerAddress': 2 })
    for (const user of ['u1', 'u2', 'u3']) expect((await tryConnect(t.mqttUrl, { username: user, password: 'spray' })).ms).toBeLessThan(250)
    const bob = await tryConnect(t.mqttUrl, { username: 'bob', password: 'bob' })
    expect(bob.result).toBe(0)
    expect(bob.ms).toBeGreaterThanOrEqual(290)
  })

  it('reloads the password file without a restart, ending the connections of changed users', async () => {
    const { t, file } = await withUsers({ alice: 'old', bob: 'bob' }, { 'auth.watchFiles': false })
    const alice = await connectClient(t.mqttUrl, { username: 'alice', password: 'old' })
    const bob = await connectClient(t.mqttUrl, { username: 'bob', password: 'bob' })
    const bobText = (await readFile(file, 'utf8')).split('\n').find(l => l.startsWith('bob:')) ?? ''
    await writeFile(file, (await passwordFileText({ alice: 'new', carol: 'carol' })) + bobText + '\n')
    expect((await tryConnect(t.mqttUrl, { username: 'alice', password: 'new' })).result).toBe(4)
    expect(await t.broker.security.reload()).toEqual({ passwordFile: 'reloaded', aclFile: 'none' })
    expect((await tryConnect(t.mqttUrl, { username: 'alice', password: 'new' })).result).toBe(0)
    expect((await tryConnect(t.mqttUrl, { username: 'alice', password: 'old' })).result).toBe(4)
    expect((await tryConnect(t.mqttUrl, { username: 'carol', password: 'carol' })).result).toBe(0)
    await waitFor(() => !alice.connected, 'alice to be disconnected')
    expect(bob.connected).toBe(true)
    expect(t.logs.some(l => l.msg === 'disconnecting a client whose password was changed or removed' && l.username === 'alice')).toBe(true)
    await endClient(bob)
    await endClient(alice, true)
  })

  it('keeps the old table when a reload cannot parse the file, and logs why', async () => {
    const { t, file } = await withUsers({ alice: 'pw' }, { 'auth.watchFiles': false })
    await writeFile(file, 'alice\n')
    expect((await t.broker.security.reload()).passwordFile).toBe('failed')
    expect((await tryConnect(t.mqttUrl, { username: 'alice', password: 'pw' })).result).toBe(0)
    const line = t.logs.find(l => l.msg === 'password file reload failed, keeping the previous one')
    expect(line).toMatchObject({ code: 'ERR_AUTH_FILE', problems: ['line 1: expected username:hash'] })
    await rm(file)
    expect((await t.broker.security.reload()).passwordFile).toBe('failed')
    expect((await tryConnect(t.mqttUrl, { username: 'alice', password: 'pw' })).result).toBe(0)
  })

  it('reloads by itself when the file changes on disk', async () => {
    const { t, file } = await withUsers({ alice: 'pw' })
    await writeFile(file + '.new', await passwordFileText({ alice: 'pw', dave: 'dave' }))
    const { rename } = await import('node:fs/promises')
    await rename(file + '.new', file)
    await waitFor(() => t.logs.some(l => l.msg === 'password file reloaded' && l.trigger === 'change'), 'the reload after the change')
    expect((await tryConnect(t.mqttUrl, { username: 'dave', password: 'dave' })).result).toBe(0)
  })
})
