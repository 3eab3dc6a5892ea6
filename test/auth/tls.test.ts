import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { grants, makeCerts, run, tempDir, tryConnect, writePasswordFile, type Certs } from './support.js'

/** TLS listeners with and without client certificates, and the certificate's CN as the user name. */
describe('TLS client certificates', () => {
  let certs: Certs
  let t: TestBroker | undefined
  beforeAll(async () => { certs = await makeCerts() }, 60_000)
  afterEach(async () => {
    await t?.close()
    t = undefined
  })

  const port = (b: TestBroker, name: string): number => b.broker.listeners.find(l => l.name === name)?.port ?? -1
  const tlsListener = (name: 'mqtts' | 'wss', extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    [`listeners.${name}.enabled`]: true,
    [`listeners.${name}.port`]: 0,
    [`listeners.${name}.certFile`]: certs.serverCert,
    [`listeners.${name}.keyFile`]: certs.serverKey,
    ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [`listeners.${name}.${k}`, v]))
  })
  const clientTls = async (which: 'client' | 'rogue' | 'none'): Promise<Record<string, unknown>> => ({
    ca: await readFile(certs.ca),
    ...(which === 'none' ? {} : { cert: await readFile(which === 'client' ? certs.clientCert : certs.rogueCert), key: await readFile(which === 'client' ? certs.clientKey : certs.rogueKey) }),
    rejectUnauthorized: true
  })

  it('requireClientCert: a client with a certificate from caFile gets in, one without or with another CA does not', async () => {
    t = await startTestBroker(tlsListener('mqtts', { caFile: certs.ca, requireClientCert: true }))
    const url = `mqtts://127.0.0.1:${port(t, 'mqtts')}`
    expect((await tryConnect(url, await clientTls('client'))).result).toBe(0)
    expect((await tryConnect(url, await clientTls('none'))).result).not.toBe(0)
    expect((await tryConnect(url, await clientTls('rogue'))).result).not.toBe(0)
  })

  it('without requireClientCert, TLS carries password logins (mosquitto_pub --cafile -u -P)', async () => {
    const passwd = await writePasswordFile(path.join(await tempDir(), 'passwd'), { alice: 'pw' })
    t = await startTestBroker({ ...tlsListener('mqtts'), 'auth.passwordFile': passwd, 'auth.failedLoginDelayMs': 0 })
    const p = String(port(t, 'mqtts'))
    const sub = await connectClient(`mqtts://127.0.0.1:${p}`, { username: 'alice', password: 'pw', ...await clientTls('none') })
    await sub.subscribeAsync('tls/#', { qos: 1 })
    const ok = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', p, '--cafile', certs.ca, '-u', 'alice', '-P', 'pw', '-t', 'tls/x', '-m', 'over tls', '-q', '1'])
    expect(ok.code).toBe(0)
    const bad = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', p, '--cafile', certs.ca, '-u', 'alice', '-P', 'nope', '-t', 'tls/x', '-m', 'x'])
    expect(bad.code).not.toBe(0)
    await waitFor(() => sub.received.length === 1, 'the message over TLS')
    expect(sub.received[0].payload).toBe('over tls')
    await endClient(sub)
  })

  it('useIdentityAsUsername: the certificate CN is the user name for the ACL, with no password (mosquitto_pub --cert --key)', async () => {
    const dir = await tempDir()
    const acl = path.join(dir, 'acl')
    await writeFile(acl, 'user sensor-1\ntopic readwrite sensors/sensor-1/#\n')
    t = await startTestBroker({ ...tlsListener('mqtts', { caFile: certs.ca, requireClientCert: true, useIdentityAsUsername: true }), 'auth.aclFile': acl })
    const p = String(port(t, 'mqtts'))
    const url = `mqtts://127.0.0.1:${p}`
    // CONNECT credentials are ignored: the certificate decides.
    const sensor = await connectClient(url, { clientId: 'sensor', username: 'someone-else', password: 'x', ...await clientTls('client') })
    expect(await grants(sensor, { 'sensors/sensor-1/#': 1, 'sensors/sensor-2/#': 1 })).toEqual([1, 128])
    const ok = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', p, '--cafile', certs.ca, '--cert', certs.clientCert, '--key', certs.clientKey, '-t', 'sensors/sensor-1/temp', '-m', '21', '-q', '1'])
    expect(ok.code).toBe(0)
    await waitFor(() => sensor.received.length === 1, 'the message published with the certificate identity')
    const noCert = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', p, '--cafile', certs.ca, '-t', 'sensors/sensor-1/temp', '-m', 'x'])
    expect(noCert.code).not.toBe(0)
    await endClient(sensor)
    // The plain listener is unaffected: anonymous on loopback, and no certificate identity.
    expect((await tryConnect(t.mqttUrl)).result).toBe(0)
  })

  it('useIdentityAsUsername over secure WebSocket', async () => {
    const dir = await tempDir()
    const acl = path.join(dir, 'acl.yaml')
    await writeFile(acl, 'users:\n  sensor-1: ["read cmd/sensor-1"]\n')
    t = await startTestBroker({ ...tlsListener('wss', { caFile: certs.ca, requireClientCert: true, useIdentityAsUsername: true }), 'auth.aclFile': acl })
    const url = `wss://127.0.0.1:${port(t, 'wss')}/mqtt`
    const c = await connectClient(url, { clientId: 'ws-sensor', wsOptions: await clientTls('client'), ...await clientTls('client') })
    expect(await grants(c, { 'cmd/sensor-1': 1, 'cmd/other': 1 })).toEqual([1, 128])
    await endClient(c)
    expect((await tryConnect(url, { wsOptions: await clientTls('none'), ...await clientTls('none') })).result).not.toBe(0)
  })

  it('refuses useIdentityAsUsername without requireClientCert at start', async () => {
    const err = await startTestBroker(tlsListener('mqtts', { useIdentityAsUsername: true })).then(() => undefined, (e: unknown) => e as Error & { details?: string[] })
    expect(err?.details?.[0]).toMatch(/listeners\.mqtts\.useIdentityAsUsername: needs listeners\.mqtts\.requireClientCert: true/)
  })
})
