import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Client } from 'aedes'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, transports, waitFor } from '../helpers/clients.js'
import { openRaw } from '../helpers/raw-client.js'
import { internals } from '../../src/protocol/aedes-internals.js'

/**
 * A throw on the read path or in the publish chain closes the one client it happened for, with a log line, and
 * never the process: other clients keep working and no rejection goes unhandled.
 */
describe('crash paths', () => {
  let t: TestBroker
  const unhandled: unknown[] = []
  const uncaught: unknown[] = []
  const onRejection = (reason: unknown): void => { unhandled.push(reason) }
  const onException = (err: unknown): void => { uncaught.push(err) }
  beforeEach(async () => {
    unhandled.length = 0
    uncaught.length = 0
    process.on('unhandledRejection', onRejection)
    process.on('uncaughtException', onException)
    t = await startTestBroker({ 'log.level': 'warn' })
  })
  afterEach(async () => {
    process.off('unhandledRejection', onRejection)
    process.off('uncaughtException', onException)
    await t.close()
  })

  /** A broker-side subscriber (aedes.subscribe, as an embedding application would add one) whose handler throws. */
  function throwingSubscriber (topic: string): void {
    t.broker.aedes.subscribe(topic, () => { throw new Error('subscriber bug') }, () => {})
  }

  async function othersStillServed (): Promise<void> {
    const c = await connectClient(t.mqttUrl, { clientId: 'bystander' })
    await c.subscribeAsync('ok/#', { qos: 1 })
    await c.publishAsync('ok/t', 'still', { qos: 1 })
    await waitFor(() => c.received.some(m => m.payload === 'still'), 'the bystander\'s own message')
    await endClient(c)
  }

  it('a throw after a held (asynchronous) publish was answered closes that publisher, not the process', async () => {
    await t.close()
    // A publish rate of 1 per second holds the second publish: the publish chain answers it asynchronously.
    t = await startTestBroker({ 'log.level': 'warn', 'limits.publishRateMessagesPerSecond': 1 })
    throwingSubscriber('boom/#')
    const pub = await connectClient(t.mqttUrl, { clientId: 'thrower', reconnectPeriod: 0 })
    let closed = false
    pub.on('close', () => { closed = true })
    // the first publish takes this second's allowance and is answered at once; the second, held, throws later
    pub.publish('warm/up', 'x', { qos: 0 })
    pub.publish('boom/b', 'y', { qos: 0 })
    await waitFor(() => closed || unhandled.length + uncaught.length > 0, 'the publisher closed', 5000)
    await othersStillServed()
    expect(unhandled).toEqual([])
    expect(uncaught).toEqual([])
    expect(t.logs.some(l => l.clientId === 'thrower' && l.msg === 'internal error, closing the connection' && (l.err as { message?: string }).message === 'subscriber bug')).toBe(true)
  })

  it.each(transports)('a throw while a read is parsed closes that client, not the process (%s)', async (transport) => {
    t.broker.aedes.on('client', (client: Client) => {
      internals(client)._parser.on('packet', (p: { topic?: string }) => { if (p.topic === 'parse/boom') throw new Error('packet listener bug') })
    })
    const raw = await openRaw(transport, t)
    expect((await raw.connect({ clientId: 'parser-thrower' })).returnCode).toBe(0)
    raw.send({ cmd: 'publish', topic: 'parse/boom', payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
    expect(await raw.waitClosed(2000)).toBe(true)
    await othersStillServed()
    expect(unhandled).toEqual([])
    expect(uncaught).toEqual([])
    expect(t.logs.some(l => l.clientId === 'parser-thrower' && l.msg === 'internal error, closing the connection' && (l.err as { message?: string }).message === 'packet listener bug')).toBe(true)
  })
})
