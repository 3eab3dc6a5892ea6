/**
 * What the log and the admin API say about each connection: who logged in, and that a client dropping its
 * connection (a TCP reset) is an everyday event, not a warning.
 */
import net from 'node:net'
import path from 'node:path'
import mqttPacket from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { tempDir, writePasswordFile } from '../auth/support.js'

const WARN = 40

describe('connection log lines and /api/clients', () => {
  let t: TestBroker
  beforeAll(async () => {
    const passwd = await writePasswordFile(path.join(await tempDir(), 'passwd'), { alice: 'pw' })
    t = await startTestBroker({ 'auth.passwordFile': passwd, 'auth.failedLoginDelayMs': 0, 'listeners.mqtt.allowAnonymous': 'true', 'log.level': 'debug' })
  })
  afterAll(async () => { await t.close() })

  const connectedLine = (clientId: string): Record<string, unknown> | undefined => t.logs.find(l => l.msg === 'client connected' && l.clientId === clientId)

  it('names the user a client logged in as in "client connected" and /api/clients; null for an anonymous one', async () => {
    const alice = await connectClient(t.mqttUrl, { clientId: 'who-alice', username: 'alice', password: 'pw' })
    const anon = await connectClient(t.mqttUrl, { clientId: 'who-anon' })
    await waitFor(() => connectedLine('who-alice') !== undefined && connectedLine('who-anon') !== undefined, 'both "client connected" lines')
    expect(connectedLine('who-alice')).toMatchObject({ username: 'alice', clean: true })
    expect(connectedLine('who-anon')).toMatchObject({ username: null })
    const res = await fetch(`${t.adminUrl}/api/clients?prefix=who-`)
    const body = await res.json() as { items: Array<{ clientId: string, username: string | null }> }
    expect(body.items.map(c => [c.clientId, c.username])).toEqual([['who-alice', 'alice'], ['who-anon', null]])
    await endClient(alice)
    await endClient(anon)
  })

  it('logs a client that resets its connection at info ("client disconnected"), with no warning', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: t.mqttPort })
    socket.on('error', () => { /* the reset is ours */ })
    await new Promise<void>(resolve => socket.once('connect', () => resolve()))
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'resetter', clean: true, keepalive: 0 }))
    await waitFor(() => connectedLine('resetter') !== undefined, '"client connected" for resetter')
    socket.resetAndDestroy()
    await waitFor(() => t.logs.some(l => l.msg === 'client disconnected' && l.clientId === 'resetter'), '"client disconnected" for resetter')
    const lines = t.logs.filter(l => l.clientId === 'resetter')
    expect(lines.filter(l => (l.level as number) >= WARN)).toEqual([])
    expect(lines.find(l => l.msg === 'connection dropped by the client')).toMatchObject({ code: 'ECONNRESET' })
    expect(lines.find(l => l.msg === 'client disconnected')?.reason).toMatch(/ECONNRESET/)
  })
})
