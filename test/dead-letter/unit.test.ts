import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { payloadProblem, payloadRulesField } from '../../src/dead-letter/payload-rules.js'
import { RateLimit } from '../../src/dead-letter/rate.js'
import { parseSince } from '../../src/dead-letter/filters.js'
import { envelopeTopic, isDeadLetterTopic } from '../../src/dead-letter/envelope.js'
import { loadConfig } from '../../src/config/load.js'
import { createLogger } from '../../src/log/logger.js'
import { checkStore, openStore } from '../../src/store/index.js'

function storeOptions (dir: string) {
  return {
    dir,
    sync: false,
    logger: createLogger({ level: 'error', format: 'json', destination: process.stderr }),
    limits: { maxQueuedMessages: 0, maxQueuedBytes: 0, maxTotalQueuedMessages: 0, maxTotalQueuedBytes: 0, overflowPolicy: 'dropOldest' as const, messageExpiryMs: 0, queueQos0: false, maxRetainedMessages: 0 }
  }
}

/** A dead letter as the store takes it, rejected at `at`. */
function letter (i: number, at: number, payload: Buffer = Buffer.from(`p${i}`)) {
  return { reason: 'unauthorized', detail: 'd', topic: `t/${i}`, qos: 1, retain: false, attempts: 1, firstRejectedAt: at, rejectedAt: at, payload }
}

describe('dead-letter pieces', () => {
  it('envelope topics stay within the topic-level and byte limits', () => {
    expect(envelopeTopic('unauthorized', 'a/b/c', 100, 65535)).toBe('$DLQ/unauthorized/a/b/c')
    expect(envelopeTopic('unauthorized', 'a/b/c/d/e', 4, 65535)).toBe('$DLQ/unauthorized/a/b')
    expect(envelopeTopic('too-large', 'x'.repeat(50) + '/y', 100, 40)).toBe('$DLQ/too-large')
    expect(envelopeTopic('too-large', 'ab/' + 'y'.repeat(50), 100, 40)).toBe('$DLQ/too-large/ab')
    expect(envelopeTopic('expired', '/lead', 100, 100)).toBe('$DLQ/expired//lead')
  })

  it('only $DLQ topics count as dead-letter topics', () => {
    expect(isDeadLetterTopic('$DLQ/unauthorized/a')).toBe(true)
    expect(isDeadLetterTopic('$DLQ')).toBe(true)
    expect(isDeadLetterTopic('$DLQX/a')).toBe(false)
    expect(isDeadLetterTopic('DLQ/a')).toBe(false)
  })

  it('payload rules: json, utf8, by filter; the config field parses mappings and env strings', () => {
    const rules = { 'orders/#': 'json', 'logs/+': 'utf8' } as const
    expect(payloadProblem(rules, 'orders/1', Buffer.from('{"a":1}'))).toBeUndefined()
    expect(payloadProblem(rules, 'orders/1', Buffer.from('nope'))).toMatch(/^payload rule orders\/#: json: the payload is not JSON/)
    expect(payloadProblem(rules, 'orders', Buffer.from([0xc3]))).toMatch(/not valid UTF-8/)
    expect(payloadProblem(rules, 'logs/a', Buffer.from('text'))).toBeUndefined()
    expect(payloadProblem(rules, 'logs/a/b', Buffer.from([0xff]))).toBeUndefined()
    const field = payloadRulesField('doc')
    expect(field.parse('orders/#=json, logs/+=utf8')).toEqual({ ok: true, value: { 'orders/#': 'json', 'logs/+': 'utf8' } })
    expect(field.parse({ 'a/#': 'json' })).toEqual({ ok: true, value: { 'a/#': 'json' } })
    expect(field.parse('a/#=xml')).toMatchObject({ ok: false, problem: expect.stringContaining('json, utf8, schema:<file>') })
    expect(field.parse('a/#/b=json')).toMatchObject({ ok: false })
    expect(field.parse('a/#')).toMatchObject({ ok: false })
  })

  it('schema:<file> rules validate JSON payloads against a JSON Schema; unreadable or invalid schema files are config problems', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'culex-dlq-schema-'))
    try {
      const file = path.join(dir, 'order.schema.json')
      await writeFile(file, JSON.stringify({ type: 'object', required: ['id', 'qty'], properties: { id: { type: 'string' }, qty: { type: 'integer', minimum: 1 } } }))
      const rules = { 'orders/#': `schema:${file}` } as const
      expect(payloadProblem(rules, 'orders/1', Buffer.from('{"id":"a","qty":2}'))).toBeUndefined()
      expect(payloadProblem(rules, 'orders/1', Buffer.from('{"id":"a","qty":0}'))).toBe(`payload rule orders/#: schema:${file}: #/qty: 0 is less than 1.`)
      expect(payloadProblem(rules, 'orders/1', Buffer.from('{"id":"a"}'))).toMatch(/required property "qty"/i)
      expect(payloadProblem(rules, 'orders/1', Buffer.from('not json'))).toMatch(/the payload is not JSON/)
      expect(payloadProblem(rules, 'other', Buffer.from('not json'))).toBeUndefined()
      const field = payloadRulesField('doc')
      expect(field.parse(`orders/#=schema:${file}`)).toEqual({ ok: true, value: rules })
      expect(field.parse(`a/#=schema:${path.join(dir, 'missing.json')}`)).toMatchObject({ ok: false, problem: expect.stringContaining('cannot be read as JSON') })
      await writeFile(path.join(dir, 'bad.json'), '[1]')
      expect(field.parse(`a/#=schema:${path.join(dir, 'bad.json')}`)).toMatchObject({ ok: false, problem: expect.stringContaining('must hold a JSON Schema object') })
      expect(field.parse('a/#=schema:')).toMatchObject({ ok: false })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('--since: ages, epoch ms, ISO times', () => {
    const now = 1_700_000_000_000
    expect(parseSince('2h', now)).toBe(now - 7_200_000)
    expect(parseSince('30s', now)).toBe(now - 30_000)
    expect(parseSince('7d', now)).toBe(now - 7 * 86_400_000)
    expect(parseSince('1700000000000', now)).toBe(now)
    expect(parseSince('2023-11-14T22:13:20.000Z', now)).toBe(now)
    expect(parseSince('yesterday', now)).toBeUndefined()
  })

  it('rate limit: a burst of one second, then perSecond; 0 = unlimited', () => {
    const r = new RateLimit(2, 0)
    expect([r.take(0), r.take(0), r.take(0)]).toEqual([true, true, false])
    expect(r.take(499)).toBe(false)
    expect(r.take(500)).toBe(true)
    const u = new RateLimit(0, 0)
    for (let i = 0; i < 1000; i++) expect(u.take(0)).toBe(true)
  })

  it('config: deadLetter defaults', async () => {
    const { config } = await loadConfig({ flags: {} })
    expect(config.deadLetter).toEqual({ enabled: true, maxMessages: 10_000, maxBytes: 67_108_864, maxAgeMs: 604_800_000, ratePerSecond: 100, onRejectedPublish: 'acknowledge', noSubscribers: false, payloadRules: {} })
  })

  it('store: bounded by count and age (oldest first, counted), survives reopen, checked by store check', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'culex-dlq-store-'))
    const opts = storeOptions(dir)
    try {
      let store = await openStore(opts)
      store.deadLetters.configure({ maxMessages: 3, maxBytes: 0, maxAgeMs: 1000 })
      const base = Date.now()
      const ids: string[] = []
      for (let i = 0; i < 5; i++) {
        const { entry, done } = store.deadLetters.add(letter(i, base + i), base + i)
        await done
        ids.push(entry.id)
      }
      expect(store.deadLetters.list().map(e => e.topic)).toEqual(['t/2', 't/3', 't/4'])
      expect(store.deadLetters.evicted).toBe(2)
      expect(ids).toEqual([...ids].sort())
      await store.close()
      store = await openStore(opts)
      expect(store.deadLetters.list().map(e => e.topic)).toEqual(['t/2', 't/3', 't/4'])
      expect((await store.deadLetters.payload(ids[4]))?.toString()).toBe('p4')
      store.deadLetters.configure({ maxMessages: 0, maxBytes: 0, maxAgeMs: 1000 })
      await store.deadLetters.expire(base + 1003)
      expect(store.deadLetters.list().map(e => e.topic)).toEqual(['t/3', 't/4'])
      // a new id is larger than every loaded one, even with the clock behind
      const { entry, done } = store.deadLetters.add(letter(9, base + 4), base - 10_000)
      await done
      expect(BigInt(entry.id) > BigInt(ids[4])).toBe(true)
      await store.close()
      const check = await checkStore(dir)
      expect(check.problems).toEqual([])
      expect(check.counts.deadLetters).toBe(3)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('store: a failed replay rewrites the dead letter under its id and makes it the newest, also after reopen; maxBytes evicts the oldest', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'culex-dlq-store-'))
    const opts = storeOptions(dir)
    try {
      let store = await openStore(opts)
      const base = Date.now()
      const ids: string[] = []
      for (let i = 0; i < 3; i++) {
        const { entry, done } = store.deadLetters.add(letter(i, base + i, Buffer.alloc(10, i)), base + i)
        await done
        ids.push(entry.id)
      }
      const retried = store.deadLetters.retry(ids[0], { reason: 'too-large', detail: 'again', attempts: 2, rejectedAt: base + 10 }, Buffer.alloc(10, 0))
      await retried?.done
      expect(store.deadLetters.retry('0000000000000001', { reason: 'too-large', detail: 'x', attempts: 2, rejectedAt: base }, Buffer.alloc(1))).toBeUndefined()
      const order = (): string[] => store.deadLetters.list().map(e => `${e.topic}:${e.attempts}`)
      expect(order()).toEqual(['t/1:1', 't/2:1', 't/0:2'])
      await store.close()
      store = await openStore(opts)
      expect(order()).toEqual(['t/1:1', 't/2:1', 't/0:2'])
      expect(store.deadLetters.get(ids[0])).toMatchObject({ reason: 'too-large', detail: 'again', firstRejectedAt: base, rejectedAt: base + 10 })
      expect((await store.deadLetters.payload(ids[0]))?.equals(Buffer.alloc(10, 0))).toBe(true)
      expect(store.deadLetters.bytes).toBe(30)
      store.deadLetters.configure({ maxMessages: 0, maxBytes: 25, maxAgeMs: 0 })
      await store.deadLetters.add(letter(3, base + 20, Buffer.alloc(10, 3)), base + 20).done
      expect(order()).toEqual(['t/0:2', 't/3:1'])
      expect(store.deadLetters.bytes).toBe(20)
      await store.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
