import { afterEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, connectV5, endClient, waitFor, type TestClient } from '../helpers/clients.js'
import { killAllChildren } from '../helpers/cli.js'
import { runMosquittoSub } from '../e2e/support/mosquitto.js'
import { scrape, value } from './prom.js'

/**
 * Each client's protocol version and the MQTT 5 reason codes sent, as an operator sees them (docs/operations.md):
 * /metrics, the `$SYS` tree read with `mosquitto_sub -V mqttv5`, the admin API.
 */
describe('protocol versions and MQTT 5 reason codes in /metrics and $SYS', () => {
  let t: TestBroker | undefined
  const clients: TestClient[] = []
  afterEach(async () => {
    await killAllChildren()
    await Promise.all(clients.splice(0).map(async c => await endClient(c, true)))
    await t?.close()
    t = undefined
  })

  it('counts the clients connected per protocol version, up and down', async () => {
    t = await startTestBroker({ 'admin.sysIntervalMs': 60_000 })
    clients.push(await connectV5(t.mqttUrl, { clientId: 'five-a' }), await connectV5(t.mqttUrl, { clientId: 'five-b' }))
    clients.push(await connectClient(t.mqttUrl, { clientId: 'four' }), await connectClient(t.mqttUrl, { clientId: 'three', protocolId: 'MQIsdp', protocolVersion: 3 }))
    const s = await scrape(t.adminUrl)
    expect([value(s, 'culex_clients_connected{protocol="5"}'), value(s, 'culex_clients_connected{protocol="3.1.1"}'), value(s, 'culex_clients_connected{protocol="3.1"}')]).toEqual([2, 1, 1])
    const stats = await (await fetch(`${t.adminUrl}/api/stats`)).json() as { clients: { byProtocol: Record<string, number> } }
    expect(stats.clients.byProtocol).toEqual({ '3.1': 1, '3.1.1': 1, 5: 2 })

    // mosquitto_sub at MQTT 5 counts itself
    const sub = await runMosquittoSub(t.mqttPort, ['-V', 'mqttv5', '-t', '$SYS/broker/clients/protocol/#', '-v', '-C', '3'])
    expect(sub.code).toBe(0)
    expect(sub.messages.sort()).toEqual(['$SYS/broker/clients/protocol/3.1 1', '$SYS/broker/clients/protocol/3.1.1 1', '$SYS/broker/clients/protocol/5 3'])

    await endClient(clients[0])
    const broker = t
    await waitFor(async () => value(await scrape(broker.adminUrl), 'culex_clients_connected{protocol="5"}') === 1, 'one v5 client fewer')
  })

  it('counts the reason codes sent to v5 clients by packet and code, not the successes', async () => {
    t = await startTestBroker({ 'limits.maxTopicLength': 20 })
    const c = await connectV5(t.mqttUrl, { clientId: 'codes' })
    clients.push(c)
    // mqtt.js rejects a SUBACK with a refusal in it: the codes are what this test is after
    await c.subscribeAsync(['ok/1', `long/${'x'.repeat(30)}`], { qos: 1 }).catch(() => undefined)
    await c.subscribeAsync(`long/${'y'.repeat(30)}`, { qos: 2 }).catch(() => undefined)
    await c.unsubscribeAsync(['ok/1', 'never/1'])
    await c.publishAsync('$SYS/x', 'no', { qos: 1 }).catch(() => undefined)
    await c.publishAsync('ok/1', 'yes', { qos: 1 })
    // an MQTT 3.1.1 client's refusals are not counted
    const old = await connectClient(t.mqttUrl, { clientId: 'old' })
    clients.push(old)
    await old.subscribeAsync(`long/${'z'.repeat(30)}`, { qos: 1 }).catch(() => undefined)
    const s = await scrape(t.adminUrl)
    const series = [...s.keys()].filter(k => k.startsWith('culex_mqtt5_reason_codes_sent_total{')).sort()
    expect(series.map(k => [k, s.get(k)])).toEqual([
      ['culex_mqtt5_reason_codes_sent_total{packet="puback",code="0x90"}', 1],
      ['culex_mqtt5_reason_codes_sent_total{packet="suback",code="0x8F"}', 2],
      ['culex_mqtt5_reason_codes_sent_total{packet="unsuback",code="0x11"}', 1]
    ])
  })
})
