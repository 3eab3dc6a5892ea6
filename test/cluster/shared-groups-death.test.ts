import { describe, expect, it } from 'vitest'
import { sleep, waitFor } from '../helpers/clients.js'
import { silentMember } from '../shared-subscriptions/support.js'
import { cliNode, counts, ownerHasMembers, prng, useCliNodes, useCluster } from './support.js'

const { node, client, redis } = useCluster()
const { newDir } = useCliNodes()

const numbers = (n: number): string[] => Array.from({ length: n }, (_, i) => String(i))

describe('shared subscriptions when a node is killed with kill -9', () => {
  it('the node of a member with unacknowledged deliveries: they go to the member on the other node', async () => {
    const b = await node('b', { 'sharedSubscriptions.ackTimeoutMs': 0 })
    // b takes the group first: it is the owner, a only has a member
    const live = await client(b.mqttUrl, { clientId: 'live' })
    await live.subscribeAsync('$share/kill/k1/#', { qos: 1 })
    const a = await cliNode(redis().url, 'a', await newDir(), { CULEX_SHARED_SUBSCRIPTIONS_ACK_TIMEOUT_MS: '0' })
    const silent = await silentMember(`mqtt://127.0.0.1:${a.ports.mqtt}`, 'silent', '$share/kill/k1/#')
    await ownerHasMembers(b, 'a', 'kill/k1/#', 'k1/x', 2)
    const pub = await client(b.mqttUrl, { clientId: 'k-pub' })
    const n = 40
    for (let i = 0; i < n; i++) await pub.publishAsync('k1/x', String(i), { qos: 1 })
    await waitFor(() => silent.publishes().length + live.received.length >= n, `${n} messages over the group`)
    const held = silent.publishes().map(p => p.payload.toString())
    expect(held.length).toBeGreaterThan(0)
    await a.kill9()
    await waitFor(() => live.received.length >= n, `the ${held.length} messages the killed node's member held`, 10_000)
    await sleep(300)
    const seen = counts(live.received.map(m => m.payload))
    expect([...seen.keys()].sort((x, y) => Number(x) - Number(y))).toEqual(numbers(n))
    expect([...seen.values()].every(k => k === 1)).toBe(true)
    expect(live.received.filter(m => held.includes(m.payload)).every(m => m.dup)).toBe(true)
    silent.destroy()
  }, 30_000)

  it('the owner of a durable group, while a publisher goes on: the other node takes the group over and its member gets every acknowledged message (seeded, 3 runs)', async () => {
    for (let run = 0; run < 3; run++) {
      const random = prng(77 + run)
      const filter = `$share/own/own${run}/#`
      // a takes the group first (its member subscribes first): it is the owner
      const a = await cliNode(redis().url, `a${run}`, await newDir(), { CULEX_SHARED_SUBSCRIPTIONS_ACK_TIMEOUT_MS: '0' })
      const silent = await silentMember(`mqtt://127.0.0.1:${a.ports.mqtt}`, `held-${run}`, filter, 1, false)
      const b = await node(`b${run}`, { 'sharedSubscriptions.ackTimeoutMs': 0 })
      const live = await client(b.mqttUrl, { clientId: `keeper-${run}`, clean: false })
      await live.subscribeAsync(filter, { qos: 1 })
      await ownerHasMembers(b, `a${run}`, `own/own${run}/#`, `own${run}/x`, 2)
      const pub = await client(b.mqttUrl, { clientId: `own-pub-${run}` })
      const n = 60
      const killAt = 10 + Math.floor(random() * 30)
      const acked: string[] = []
      for (let i = 0; i < n; i++) {
        if (i === killAt) {
          // so far each message went to one member of the two
          await waitFor(() => silent.publishes().length + live.received.length >= killAt, `the first ${killAt} messages over the group (run ${run})`)
          const held = silent.publishes().map(p => p.payload.toString())
          expect(held.filter(p => live.received.some(m => m.payload === p))).toEqual([])
          expect([...held, ...live.received.map(m => m.payload)].sort((x, y) => Number(x) - Number(y))).toEqual(acked)
          await a.kill9()
        }
        await pub.publishAsync(`own${run}/x`, String(i), { qos: 1 })
        acked.push(String(i))
      }
      await waitFor(() => new Set(live.received.map(m => m.payload)).size >= n, `every acknowledged message on b's member (run ${run}, killed at ${killAt}; have ${new Set(live.received.map(m => m.payload)).size})`, 15_000)
      expect([...new Set(live.received.map(m => m.payload))].sort((x, y) => Number(x) - Number(y))).toEqual(acked)
      expect(b.logs.some(l => l.msg === 'shared group taken over' && l.share === filter)).toBe(true)
      silent.destroy()
      await b.close()
    }
  }, 90_000)

  it('the owner stopped (SIGSTOP) longer than the lease: the other node takes the group over; back (SIGCONT), the stopped node gives it up and its member joins the new owner, each message still delivered once', async () => {
    const a = await cliNode(redis().url, 'a', await newDir())
    const onA = await client(`mqtt://127.0.0.1:${a.ports.mqtt}`, { clientId: 'on-a', keepalive: 0 })
    await onA.subscribeAsync('$share/stop/stop/#', { qos: 1 })
    const b = await node('b')
    const onB = await client(b.mqttUrl, { clientId: 'on-b' })
    await onB.subscribeAsync('$share/stop/stop/#', { qos: 1 })
    await ownerHasMembers(b, 'a', 'stop/stop/#', 'stop/x', 2)
    const pub = await client(b.mqttUrl, { clientId: 'stop-pub' })
    a.proc.kill('SIGSTOP')
    try {
      await waitFor(() => b.logs.some(l => l.msg === 'shared group taken over' && l.share === '$share/stop/stop/#'), 'b taking the group over', 5000)
      for (let i = 0; i < 20; i++) await pub.publishAsync('stop/x', String(i), { qos: 1 })
    } finally {
      a.proc.kill('SIGCONT')
    }
    await a.waitForLog(l => l.msg === 'shared group taken over by another node')
    await waitFor(() => onB.received.length + onA.received.length >= 20, 'the twenty published while a was stopped')
    await ownerHasMembers(b, 'a', 'stop/stop/#', 'stop/x', 2)
    for (let i = 20; i < 60; i++) await pub.publishAsync('stop/x', String(i), { qos: 1 })
    await waitFor(() => onB.received.length + onA.received.length >= 60, 'sixty messages over the group')
    await sleep(500)
    const seen = counts([...onA.received, ...onB.received].map(m => m.payload))
    expect([...seen.keys()].sort((x, y) => Number(x) - Number(y))).toEqual(numbers(60))
    expect([...seen.values()].every(k => k === 1)).toBe(true)
    // a's member is a member of the group again, on b
    expect(onA.received.some(m => Number(m.payload) >= 20)).toBe(true)
    await a.stop()
  }, 30_000)
})
