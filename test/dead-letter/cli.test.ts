import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { run } from '../auth/support.js'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { ensureBuilt, killAllChildren, removeDir, runCli, startArgs, startCli, tempDataDir } from '../helpers/cli.js'
import { expectEnvelope, type EnvelopeJson } from './support.js'

beforeAll(async () => { await ensureBuilt() }, 180_000)
afterEach(async () => { await killAllChildren() })
afterAll(async () => { await killAllChildren() })

/** The real culex process: mosquitto_pub's refused publish survives kill -9 and `culex dlq` reads it, online and offline. */
describe('culex dlq', () => {
  it('mosquitto_pub too-large → envelope; dlq list/show through the admin API, then from the data dir after kill -9; replay and purge', async () => {
    const dir = await tempDataDir()
    const env = { CULEX_LIMITS_MAX_PAYLOAD_BYTES: '8' }
    try {
      const culex = await startCli(startArgs(dir), env)
      const adminUrl = `http://127.0.0.1:${culex.ports.admin}`
      const watcher = await connectClient(`mqtt://127.0.0.1:${culex.ports.mqtt}`, { clientId: 'watcher' })
      await watcher.subscribeAsync('$DLQ/#', { qos: 1 })
      const pub = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(culex.ports.mqtt), '-V', 'mqttv311', '-q', '1', '-i', 'mosq-pub', '-t', 'sensors/big', '-m', 'far too long for the limit'])
      expect(pub.code).toBe(0) // mosquitto_pub exits 0 only once its QoS 1 publish is acknowledged
      await waitFor(() => watcher.received.length === 1, 'the envelope')
      expect(watcher.received[0].topic).toBe('$DLQ/too-large/sensors/big')
      const envelope = JSON.parse(watcher.received[0].payload) as EnvelopeJson
      const brokerId = culex.logs.find(l => l.msg === 'broker started')?.brokerId as string
      expectEnvelope(envelope, {
        reason: 'too-large', topic: 'sensors/big', payload: 'far too long for the limit', qos: 1, clientId: 'mosq-pub', username: null, target: null,
        brokerId, detail: /maxPayloadBytes/
      })
      await endClient(watcher, true)

      const online = await runCli(['dlq', 'list', '--json', '--admin-url', adminUrl])
      expect(online.stderr).toBe('')
      expect(online.code).toBe(0)
      expect(JSON.parse(online.stdout)).toMatchObject({ total: 1, items: [{ id: envelope.id, reason: 'too-large', topic: 'sensors/big', clientId: 'mosq-pub' }] })
      const shown = await runCli(['dlq', 'show', envelope.id, '--json', '--admin-url', adminUrl])
      expect(JSON.parse(shown.stdout)).toEqual(envelope)

      await culex.kill9()
      const offline = await runCli(['dlq', 'list', '--json', '--reason', 'too-large', '--admin-url', adminUrl, '--data-dir', dir])
      expect(offline.stderr).toBe('')
      expect(JSON.parse(offline.stdout)).toMatchObject({ total: 1, items: [{ id: envelope.id, topic: 'sensors/big' }] })
      const offlineShow = await runCli(['dlq', 'show', envelope.id, '--json', '--admin-url', adminUrl, '--data-dir', dir])
      expect(JSON.parse(offlineShow.stdout)).toEqual(envelope)
      const offlineReplay = await runCli(['dlq', 'replay', envelope.id, '--admin-url', adminUrl, '--data-dir', dir])
      expect(offlineReplay.code).toBe(1)
      expect(offlineReplay.stderr).toContain('[ERR_ADMIN_API]')
      const missing = await runCli(['dlq', 'show', '0000000000000001', '--admin-url', adminUrl, '--data-dir', dir])
      expect(missing.code).toBe(1)
      expect(missing.stderr).toContain('[ERR_DEAD_LETTER_NOT_FOUND]')
      const usage = await runCli(['dlq', 'replay', '--admin-url', adminUrl])
      expect(usage.code).toBe(2)

      // Still too large after a restart: replay puts it back with attempts 2; purge removes it.
      const again = await startCli(startArgs(dir), env)
      const adminUrl2 = `http://127.0.0.1:${again.ports.admin}`
      const replay = await runCli(['dlq', 'replay', '--all', '--json', '--admin-url', adminUrl2])
      expect(replay.code).toBe(1) // a replay that did not publish is a failure
      const result = JSON.parse(replay.stdout)
      expect(result).toMatchObject({ replayed: 1, published: 0, deadLettered: 1, results: [{ id: envelope.id, outcome: 'dead-lettered', reason: 'too-large' }] })
      const after = JSON.parse((await runCli(['dlq', 'list', '--json', '--admin-url', adminUrl2])).stdout)
      expect(after.items).toMatchObject([{ id: envelope.id, attempts: 2 }])
      const purge = await runCli(['dlq', 'purge', '--all', '--json', '--admin-url', adminUrl2])
      expect(JSON.parse(purge.stdout)).toEqual({ removed: 1 })
      expect(JSON.parse((await runCli(['dlq', 'list', '--json', '--admin-url', adminUrl2])).stdout).total).toBe(0)
      expect(await again.stop()).toBe(0)
    } finally {
      await removeDir(dir)
    }
  }, 60_000)
})
