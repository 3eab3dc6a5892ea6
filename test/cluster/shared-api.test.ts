import { describe, expect, it } from 'vitest'
import type { TestBroker } from '../helpers/broker.js'
import { endClient, waitFor } from '../helpers/clients.js'
import { groupKnown, useCluster } from './support.js'

interface SharedView {
  share: string
  owner?: string
  queued: number
  members: Array<{ clientId: string, online: boolean, persistent: boolean, node?: string }>
}

async function groupOn (node: TestBroker, share: string): Promise<SharedView | undefined> {
  const body = await (await fetch(`${node.adminUrl}/api/shared`)).json() as { items: SharedView[] }
  return body.items.find(g => g.share === share)
}

describe('GET /api/shared across nodes', () => {
  const { node, client } = useCluster()

  it('every node shows a cluster-wide group with its owner, its members on every node and its queue', async () => {
    const [a, b, c] = [await node('a'), await node('b'), await node('c')]
    const share = '$share/work/jobs/#'
    const onA = await client(a.mqttUrl, { clientId: 'w-a', clean: false })
    await onA.subscribeAsync(share, { qos: 1 })
    const onB = await client(b.mqttUrl, { clientId: 'w-b', clean: false })
    await onB.subscribeAsync(share, { qos: 1 })
    await groupKnown(c, [a, b], 'work/jobs/#', 'jobs/1')
    const owner = c.broker.cluster?.groupOwner('work/jobs/#')
    expect(['a', 'b']).toContain(owner)

    // a node learns of a member on another node with its connection first and of its being ready to receive (online)
    // a moment later, so a view showing both members may still show one offline: the view is awaited whole
    const expected = [['w-a', true, true, 'a'], ['w-b', true, true, 'b']]
    const members = (group: SharedView | undefined): unknown[] => (group?.members ?? []).map(m => [m.clientId, m.online, m.persistent, m.node]).sort()
    for (const n of [a, b, c]) {
      let group: SharedView | undefined
      await waitFor(async () => {
        group = await groupOn(n, share)
        return JSON.stringify(members(group)) === JSON.stringify(expected)
      }, `node ${String(n.broker.cluster?.nodeId)} showing both members online`).catch(() => undefined)
      expect(group?.owner).toBe(owner)
      expect(members(group)).toEqual(expected)
    }

    // both members offline: what is published waits in the group's queue, which every node shows
    await endClient(onA)
    await endClient(onB)
    const pub = await client(c.mqttUrl, { clientId: 'pub' })
    for (let i = 0; i < 3; i++) await pub.publishAsync('jobs/1', String(i), { qos: 1 })
    for (const n of [a, b, c]) {
      await waitFor(async () => {
        const group = await groupOn(n, share)
        return group?.queued === 3 && group.members.every(m => !m.online)
      }, `node ${String(n.broker.cluster?.nodeId)} showing 3 queued and both members offline`)
    }
    expect((await groupOn(c, share))?.owner).toBe(owner)
  })
})
