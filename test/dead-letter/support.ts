import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { afterEach, expect } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import type { Envelope } from '../../src/dead-letter/envelope.js'
import { tempDir, writePasswordFile } from '../auth/support.js'

export type Client = Awaited<ReturnType<typeof connectClient>>

/** What a `$DLQ/#` subscriber parses from an envelope's payload. */
export type EnvelopeJson = Envelope

/** alice may do everything on home/# and read $DLQ/#; bob may only read home/#, write bob/#. */
export const ACL = `user alice
topic readwrite home/#
topic read $DLQ/#
user bob
topic read home/#
topic write bob/#
`

export const RELAXED_ACL = ACL + 'topic write home/#\n'

export interface Harness {
  t: TestBroker
  aclFile: string
  clients: Client[]
  connect: (opts?: Parameters<typeof connectClient>[1]) => Promise<Client>
  /** A `$DLQ/#` subscriber (alice when there is an ACL), collecting parsed envelopes by topic. */
  watch: () => Promise<{ client: Client, envelopes: () => Array<{ topic: string, envelope: EnvelopeJson }> }>
  api: (method: string, p: string) => Promise<{ status: number, body: any }>
  restart: () => Promise<void>
}

export async function harness (settings: Record<string, unknown> = {}, opts: { acl?: boolean } = {}): Promise<Harness> {
  const dir = await tempDir('culex-dlq-')
  const aclFile = path.join(dir, 'acl.conf')
  let all = { ...settings }
  if (opts.acl === true) {
    await writeFile(aclFile, ACL)
    const passwd = await writePasswordFile(path.join(dir, 'passwd'), { alice: 'a', bob: 'b' })
    all = { 'auth.passwordFile': passwd, 'auth.aclFile': aclFile, 'auth.watchFiles': false, 'listeners.mqtt.allowAnonymous': false, ...all }
  }
  const h: Harness = {
    t: await startTestBroker(all),
    aclFile,
    clients: [],
    connect: async (o = {}) => {
      const c = await connectClient(h.t.mqttUrl, o)
      h.clients.push(c)
      return c
    },
    watch: async () => {
      const client = await h.connect(opts.acl === true ? { clientId: `watcher-${h.clients.length}`, username: 'alice', password: 'a' } : {})
      await client.subscribeAsync('$DLQ/#', { qos: 1 })
      const envelopes = (): Array<{ topic: string, envelope: EnvelopeJson }> =>
        client.received.filter(m => m.topic.startsWith('$DLQ/')).map(m => ({ topic: m.topic, envelope: JSON.parse(m.payload) as EnvelopeJson }))
      return { client, envelopes }
    },
    api: async (method, p) => {
      const res = await fetch(h.t.adminUrl + p, { method })
      return { status: res.status, body: await res.json() }
    },
    restart: async () => {
      for (const c of h.clients.splice(0)) c.end(true)
      h.t = await h.t.restart()
    }
  }
  return h
}

/**
 * One harness per test: the function returned starts it with the settings given; its clients are ended and its
 * broker closed after the test.
 */
export function harnessPerTest (): (settings?: Record<string, unknown>, opts?: { acl?: boolean }) => Promise<Harness> {
  let h: Harness | undefined
  afterEach(async () => {
    for (const c of h?.clients.splice(0) ?? []) await endClient(c, true)
    await h?.t.close()
    h = undefined
  })
  return async (settings, opts) => (h = await harness(settings, opts))
}

/** Checks every field of an envelope against what the test expects; times must be ISO 8601 and recent. */
export function expectEnvelope (e: EnvelopeJson, want: {
  reason: string, topic: string, payload: string | Buffer, qos: number, retain?: boolean,
  clientId: string | null, username: string | null, target: string | null, attempts?: number, brokerId: string, detail: RegExp,
  properties?: unknown
}): void {
  expect(e.id).toMatch(/^\d{16}$/)
  expect(e.reason).toBe(want.reason)
  expect(e.detail).toMatch(want.detail)
  expect(e.topic).toBe(want.topic)
  expect(e.qos).toBe(want.qos)
  expect(e.retain).toBe(want.retain ?? false)
  expect(e.payloadEncoding).toBe('base64')
  expect(Buffer.from(e.payload, 'base64').equals(Buffer.from(want.payload))).toBe(true)
  expect(e.clientId).toBe(want.clientId)
  expect(e.username).toBe(want.username)
  expect(e.target).toBe(want.target)
  expect(e.attempts).toBe(want.attempts ?? 1)
  expect(e.brokerId).toBe(want.brokerId)
  expect(e.properties).toEqual(want.properties ?? null)
  for (const t of [e.firstRejectedAt, e.rejectedAt]) {
    expect(new Date(t).toISOString()).toBe(t)
    expect(Date.now() - Date.parse(t)).toBeLessThan(60_000)
  }
  if ((want.attempts ?? 1) === 1) expect(e.firstRejectedAt).toBe(e.rejectedAt)
  expect(Object.keys(e).sort()).toEqual(['attemptTimes', 'attempts', 'brokerId', 'clientId', 'detail', 'firstRejectedAt', 'id', 'payload', 'payloadEncoding', 'properties', 'qos', 'reason', 'rejectedAt', 'retain', 'target', 'topic', 'username'])
}

export async function waitForEnvelopes (w: { envelopes: () => unknown[] }, n: number, what: string): Promise<void> {
  await waitFor(() => w.envelopes().length >= n, what)
}

/** Listed by the admin API (ids of the rows matching `reason`). */
export async function listedIds (h: Harness, query = ''): Promise<string[]> {
  const { status, body } = await h.api('GET', `/api/dead-letters${query}`)
  expect(status).toBe(200)
  return (body.items as Array<{ id: string }>).map(r => r.id)
}
