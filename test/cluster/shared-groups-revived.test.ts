import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/clients.js'
import { silentMember } from '../shared-subscriptions/support.js'
import { counts, ownerHasMembers, useCluster } from './support.js'

const { node, client, redis } = useCluster()

describe('shared subscriptions when the owner takes a live node for dead', () => {
  it("a member joining from a node taken for dead gets nothing until its node registers again, then joins the owner's group; every message is delivered once", async () => {
    // a beats every 3 s, so that a's removal by b and a's own return are seconds apart; b beats every 100 ms
    const a = await node('a', { 'cluster.heartbeatIntervalMs': 3000, 'cluster.nodeTimeoutMs': 10_000 })
    const b = await node('b')
    const onB = await client(b.mqttUrl, { clientId: 'rv-on-b' })
    await onB.subscribeAsync('$share/rv/rv/#', { qos: 1 })
    await ownerHasMembers(b, 'a', 'rv/rv/#', 'rv/x', 1)
    const pub = await client(b.mqttUrl, { clientId: 'rv-pub' })
    const admin = new Redis(redis().url)
    try {
      // right after one of a's heartbeats (its key's time to live renewed), a's key goes: b takes a for dead and
      // removes it, while a runs on until its next heartbeat, about 3 s later
      const alive = 'culex:cluster:alive:a'
      let ttl = await admin.pttl(alive)
      await waitFor(async () => {
        const now = await admin.pttl(alive)
        const renewed = now > ttl
        ttl = now
        return renewed
      }, "one of a's heartbeats", 8000)
      await admin.del(alive)
      await waitFor(() => b.logs.some(l => l.msg === 'cluster node dead; removed' && l.nodeId === 'a'), 'b removing a')
      expect(a.logs.some(l => l.msg === 'cluster node had been taken for dead; registered again, its sessions caught up')).toBe(false)

      // The state of the race this is about: a has opened its inbox again (its stream, which b deleted with the
      // rest of a's keys) and goes on sending, while b still holds a for dead until its next heartbeat reads the
      // cluster. Here that state lasts seconds instead of a few milliseconds.
      await admin.xadd('culex:cluster:bus:a', '*', 'open', 'a')
      // a member subscribes on a meanwhile: a sends its join to the owner, b
      const silent = await silentMember(a.mqttUrl, 'rv-silent', '$share/rv/rv/#')
      // published over the seconds until a is back, paced so that they span them
      const back = (): boolean => a.logs.some(l => l.msg === 'cluster node had been taken for dead; registered again, its sessions caught up')
      const whileDead: string[] = []
      for (let i = 0; i < 400 && !back(); i++) {
        await pub.publishAsync('rv/x', `dead-${i}`, { qos: 1 })
        if (!back()) whileDead.push(`dead-${i}`)
        await new Promise(resolve => setTimeout(resolve, 10))
      }
      expect(whileDead.length).toBeGreaterThan(20)

      // a registers again and joins its member to b's group
      await waitFor(back, 'a registering again', 8000)
      await ownerHasMembers(b, 'a', 'rv/rv/#', 'rv/x', 2)
      const after: string[] = []
      for (let i = 0; i < 20; i++) {
        await pub.publishAsync('rv/x', `back-${i}`, { qos: 1 })
        after.push(`back-${i}`)
      }
      await waitFor(() => silent.publishes().some(p => p.payload.toString().startsWith('back-')), "a message for the member on a, once a is back")
      const published = new Set([...whileDead, ...after])
      await waitFor(() => [...onB.received.map(m => m.payload), ...silent.publishes().map(p => p.payload.toString())].filter(p => published.has(p)).length >= published.size, 'every message over the group')

      const onSilent = silent.publishes().map(p => p.payload.toString())
      expect(onSilent.filter(p => p.startsWith('dead-'))).toEqual([])
      const seen = counts([...onB.received.map(m => m.payload), ...onSilent].filter(p => published.has(p)))
      expect([...seen.keys()].sort()).toEqual([...published].sort())
      expect([...seen.entries()].filter(([, k]) => k !== 1)).toEqual([])
      silent.destroy()
    } finally {
      admin.disconnect()
    }
  }, 40_000)
})
