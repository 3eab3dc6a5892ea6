import { rm, writeFile } from 'node:fs/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { endClient, sleep, waitFor } from '../helpers/clients.js'
import { harness, listedIds, RELAXED_ACL, type Harness } from './support.js'

/** Replay publishes first and removes after: a replay that cannot publish leaves the dead letter in the log. */
describe('dead-letter replay', () => {
  let h: Harness | undefined
  afterEach(async () => {
    for (const c of h?.clients.splice(0) ?? []) await endClient(c, true)
    await h?.t.close()
    h = undefined
  })

  it('re-checks with the ACL the broker has loaded: the file deleted or half-written on disk changes nothing; a refusal keeps the dead letter with attempts + 1, on disk', async () => {
    h = await harness({}, { acl: true })
    const bob = await h.connect({ clientId: 'bob-1', username: 'bob', password: 'b' })
    await bob.publishAsync('home/lamp', 'on', { qos: 1 })
    const [lamp] = await listedIds(h)
    expect(lamp).toBeDefined()

    // The operator fixes the ACL and reloads; then the file disappears (a deploy, an editor's rename).
    await writeFile(h.aclFile, RELAXED_ACL)
    expect((await h.t.broker.security.reload()).aclFile).toBe('reloaded')
    await rm(h.aclFile)
    const alice = await h.connect({ clientId: 'alice-sub', username: 'alice', password: 'a' })
    await alice.subscribeAsync('home/#', { qos: 1 })
    const ok = await h.api('POST', `/api/dead-letters/${lamp}/replay`)
    expect(ok).toEqual({ status: 200, body: { id: lamp, outcome: 'published' } })
    await waitFor(() => alice.received.length === 1, 'the replayed message')
    expect(alice.received[0]).toMatchObject({ topic: 'home/lamp', payload: 'on', qos: 1 })
    expect(await listedIds(h)).toEqual([])

    // Refused by the loaded ACL while the file on disk is half-written: the dead letter stays, attempts 2.
    await bob.publishAsync('garden/tap', 'open', { qos: 1 })
    const [tap] = await listedIds(h)
    const before = (await h.api('GET', `/api/dead-letters/${tap}`)).body
    await writeFile(h.aclFile, 'user bob\ntopic write bob/#\nus') // cut off mid-word: does not parse
    const refused = await h.api('POST', `/api/dead-letters/${tap}/replay`)
    expect(refused.status).toBe(200)
    expect(refused.body).toMatchObject({ id: tap, outcome: 'dead-lettered', reason: 'unauthorized', attempts: 2, detail: expect.stringMatching(/^replay: the ACL/) })
    const kept = (await h.api('GET', `/api/dead-letters/${tap}`)).body
    expect(kept).toMatchObject({ id: tap, topic: 'garden/tap', clientId: 'bob-1', username: 'bob', attempts: 2, firstRejectedAt: before.firstRejectedAt })
    expect(Buffer.from(kept.payload, 'base64').toString()).toBe('open')
    expect(Date.parse(kept.rejectedAt)).toBeGreaterThanOrEqual(Date.parse(before.rejectedAt))

    await writeFile(h.aclFile, RELAXED_ACL)
    await h.restart()
    expect((await h.api('GET', `/api/dead-letters/${tap}`)).body).toMatchObject({ id: tap, attempts: 2 })
  })

  it('two replays of one dead letter at the same time publish it once', async () => {
    h = await harness({ 'deadLetter.noSubscribers': true })
    const pub = await h.connect({ clientId: 'pub' })
    await pub.publishAsync('jobs/1', 'job', { qos: 1 })
    const [id] = await listedIds(h, '?reason=no-subscribers')
    expect(id).toBeDefined()
    const sub = await h.connect({ clientId: 'sub' })
    await sub.subscribeAsync('jobs/#', { qos: 1 })
    const results = await Promise.all([h.api('POST', `/api/dead-letters/${id}/replay`), h.api('POST', `/api/dead-letters/${id}/replay`)])
    expect(results.map(r => r.status).sort()).toEqual([200, 404])
    await waitFor(() => sub.received.length === 1, 'the replayed message')
    await sleep(200)
    expect(sub.received.map(m => m.payload)).toEqual(['job'])
    expect(await listedIds(h)).toEqual([])
  })
})
