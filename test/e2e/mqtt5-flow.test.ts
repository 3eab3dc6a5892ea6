/**
 * The built culex command against mosquitto_sub at MQTT 5 with the limits a subscriber sets in its CONNECT
 * (-D connect maximum-packet-size / receive-maximum): what it cannot take goes to the dead-letter topic, the rest
 * arrives in order.
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { ensureBuilt, killAllChildren, removeDir, startArgs, startCli, tempDataDir } from '../helpers/cli.js'
import { mosquittoPub, mosquittoSub } from './support/mosquitto.js'

const V5 = ['-V', 'mqttv5']
let dir: string | undefined

beforeAll(async () => { await ensureBuilt() }, 180_000)
afterEach(async () => { await killAllChildren('client') })
afterAll(async () => {
  await killAllChildren()
  if (dir !== undefined) await removeDir(dir)
})

it('mosquitto_sub with maximum-packet-size 100 and receive-maximum 1: the large message is dead-lettered as too-large-for-client, the others arrive in order', async () => {
  dir = await tempDataDir()
  const cli = await startCli(startArgs(dir))
  const dlq = mosquittoSub(cli.ports.mqtt, ['-V', 'mqttv311', '-t', '$DLQ/#', '-q', '1', '-v'])
  const sub = mosquittoSub(cli.ports.mqtt, [...V5, '-i', 'e5-small', '-t', 'e5/flow/#', '-q', '1', '-v', '-D', 'connect', 'maximum-packet-size', '100', '-D', 'connect', 'receive-maximum', '1'])
  expect(await dlq.subscribed).toEqual([1])
  expect(await sub.subscribed).toEqual([1])
  const messages = ['small 1', 'x'.repeat(200), 'small 2', 'small 3']
  for (const m of messages) {
    const r = await mosquittoPub(cli.ports.mqtt, [...V5, '-q', '1', '-t', 'e5/flow/t', '-m', m])
    expect(r.code, r.stderr).toBe(0)
  }
  expect(await sub.waitForMessages(3)).toEqual(['e5/flow/t small 1', 'e5/flow/t small 2', 'e5/flow/t small 3'])
  const [line] = await dlq.waitForMessages(1)
  expect(line.startsWith('$DLQ/too-large-for-client/e5/flow/t ')).toBe(true)
  const envelope = JSON.parse(line.slice(line.indexOf(' ') + 1)) as { reason: string, target: string, payload: string, detail: string }
  expect(envelope).toMatchObject({ reason: 'too-large-for-client', target: 'e5-small' })
  expect(Buffer.from(envelope.payload, 'base64').toString()).toBe(messages[1])
  expect(envelope.detail).toMatch(/Maximum Packet Size \(100 bytes\)/)
  expect(await cli.stop('SIGTERM')).toBe(0)
})
