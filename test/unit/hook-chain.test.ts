import type { Client, PublishPacket } from 'aedes'
import { describe, expect, it } from 'vitest'
import { chainAuthorizePublish, type PublishStep } from '../../src/hook-chain.js'

const packet = { cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 1, retain: false, dup: false } as unknown as PublishPacket

async function authorize (checks: PublishStep[], opts: { disconnectOnDrop?: boolean, commitError?: Error, commitThrows?: Error } = {}): Promise<{ err: Error | null | undefined, committed: boolean, settled: boolean, dropped: string[], answeredAtOnce: boolean }> {
  let committed = false
  let settled = false
  const dropped: string[] = []
  const hook = chainAuthorizePublish({
    checks,
    onDrop: (_c, _p, drop) => { dropped.push(drop.drop) },
    commit: (_c, _p, done) => {
      committed = true
      if (opts.commitThrows !== undefined) throw opts.commitThrows
      done(opts.commitError ?? null)
    },
    settle: () => { settled = true },
    disconnectOnDrop: opts.disconnectOnDrop ?? false,
    onError: (_c, err) => { throw err }
  })
  let answeredAtOnce = false
  const err = await new Promise<Error | null | undefined>(resolve => {
    let returned = false
    hook({} as Client, packet, e => {
      answeredAtOnce = !returned
      resolve(e)
    })
    returned = true
  })
  return { err, committed, settled, dropped, answeredAtOnce }
}

describe('the publish check chain', () => {
  it('runs synchronous and asynchronous checks in order, stopping at the first drop', async () => {
    const seen: string[] = []
    const result = await authorize([
      () => { seen.push('sync'); return undefined },
      async () => { seen.push('async'); return undefined },
      () => { seen.push('drops'); return { drop: 'unauthorized', detail: 'no' } },
      () => { seen.push('never'); return undefined }
    ])
    expect(seen).toEqual(['sync', 'async', 'drops'])
    expect(result).toEqual({ err: null, committed: false, settled: true, dropped: ['unauthorized'], answeredAtOnce: false })
  })

  it('commits a publish every check lets through, synchronous or not', async () => {
    expect(await authorize([() => undefined, async () => undefined])).toMatchObject({ err: null, committed: true, settled: false })
    expect(await authorize([])).toMatchObject({ err: null, committed: true })
  })

  it('answers within the call when every check and the commit do (no microtask per publish)', async () => {
    expect(await authorize([() => undefined, () => undefined])).toMatchObject({ err: null, committed: true, answeredAtOnce: true })
    expect(await authorize([() => ({ drop: 'too-large', detail: 'big' })])).toMatchObject({ settled: true, answeredAtOnce: true })
    expect(await authorize([async () => undefined])).toMatchObject({ committed: true, answeredAtOnce: false })
  })

  it('passes a failed commit to aedes as an error (no acknowledgement), also when it throws', async () => {
    const result = await authorize([() => undefined], { commitError: new Error('store write failed') })
    expect(result.err?.message).toBe('store write failed')
    expect((await authorize([() => undefined], { commitThrows: new Error('sync') })).err?.message).toBe('sync')
    expect((await authorize([async () => undefined], { commitThrows: new Error('after await') })).err?.message).toBe('after await')
  })

  it('hands an exception thrown after the answer (from aedes\' own callback) to onError, synchronous or not, and answers once', async () => {
    for (const checks of [[() => undefined], [async () => undefined]] as PublishStep[][]) {
      const errors: unknown[] = []
      let calls = 0
      const hook = chainAuthorizePublish({
        checks,
        onDrop: () => undefined,
        commit: (_c, _p, done) => { done(null) },
        settle: () => undefined,
        disconnectOnDrop: false,
        onError: (_c, err) => { errors.push(err) }
      })
      hook({} as Client, packet, () => { calls++; throw new Error('aedes bug') })
      await new Promise(resolve => setImmediate(resolve))
      expect(calls).toBe(1)
      expect(errors.map(e => (e as Error).message)).toEqual(['aedes bug'])
    }
  })

  it('turns a check that throws, synchronously or not, into an error for aedes (the connection closes, no acknowledgement)', async () => {
    const sync = await authorize([() => { throw new Error('sync boom') }])
    expect(sync.err?.message).toBe('sync boom')
    expect(sync.committed).toBe(false)
    const async = await authorize([async () => { throw new Error('async boom') }])
    expect(async.err?.message).toBe('async boom')
  })

  it('with disconnectOnDrop, answers a refused publish with an error instead of an acknowledgement', async () => {
    const result = await authorize([() => ({ drop: 'too-large', detail: 'big' })], { disconnectOnDrop: true })
    expect(result.err?.message).toBe('publish refused (too-large): big')
    expect(result.settled).toBe(false)
  })
})
