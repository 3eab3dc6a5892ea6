import { describe, expect, it } from 'vitest'
import { anonymousAllowed, anonymousProblems, isLoopbackHost, type ListenerAuthSettings } from '../../src/auth/anonymous.js'
import { decideLogin, stillValid, type LoginPolicy } from '../../src/auth/authenticator.js'
import { LoginBackoff } from '../../src/auth/login-backoff.js'
import { parsePasswordFile, type PasswordTable } from '../../src/auth/password-file.js'
import { hashPassword } from '../../src/auth/password-hash.js'

async function table (users: Record<string, string>): Promise<PasswordTable> {
  const lines = await Promise.all(Object.entries(users).map(async ([u, p]) => `${u}:${await hashPassword(p, { ln: 8, r: 8, p: 1 })}`))
  const r = parsePasswordFile(lines.join('\n'))
  if (!r.ok) throw new Error(r.problems.join())
  return r.table
}

const listener = (host: string, allowAnonymous: ListenerAuthSettings['allowAnonymous'], extra: Partial<ListenerAuthSettings> = {}): ListenerAuthSettings =>
  ({ enabled: true, host, allowAnonymous, ...extra })

describe('anonymous access', () => {
  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) expect(isLoopbackHost(h)).toBe(true)
    for (const h of ['0.0.0.0', '::', '192.168.1.2', '10.0.0.1', 'example.com', '128.0.0.1']) expect(isLoopbackHost(h)).toBe(false)
  })

  it('auto allows anonymous clients only on loopback listeners and only without a password file', () => {
    expect(anonymousAllowed(listener('127.0.0.1', 'auto'), false)).toBe(true)
    expect(anonymousAllowed(listener('127.0.0.1', 'auto'), true)).toBe(false)
    expect(anonymousAllowed(listener('0.0.0.0', 'auto'), false)).toBe(false)
    expect(anonymousAllowed(listener('0.0.0.0', true), true)).toBe(true)
    expect(anonymousAllowed(listener('127.0.0.1', false), false)).toBe(false)
  })

  it('refuses to start a reachable listener at auto with no password file, saying what to set', () => {
    const problems = anonymousProblems({
      mqtt: listener('0.0.0.0', 'auto'),
      ws: listener('0.0.0.0', true),
      wss: listener('0.0.0.0', 'auto', { enabled: false }),
      mqtts: listener('::', 'auto', { useIdentityAsUsername: true, requireClientCert: true })
    }, '')
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^listeners\.mqtt\.allowAnonymous: is auto and listeners\.mqtt\.host 0\.0\.0\.0 is not a loopback address.*set auth\.passwordFile.*listeners\.mqtt\.allowAnonymous: true/)
    expect(anonymousProblems({ mqtt: listener('0.0.0.0', 'auto') }, '/etc/culex/passwd')).toEqual([])
    expect(anonymousProblems({ mqtts: listener('127.0.0.1', 'auto', { useIdentityAsUsername: true }) }, '')[0]).toMatch(/needs listeners\.mqtts\.requireClientCert: true/)
  })
})

describe('the login decision', () => {
  const policy = async (over: Partial<LoginPolicy> = {}): Promise<LoginPolicy> =>
    ({ anonymousAllowed: false, useIdentityAsUsername: false, passwords: await table({ alice: 'right' }), ...over })
  const attempt = (username?: string, password?: string, certificateCN?: string) =>
    ({ username, password: password === undefined ? undefined : Buffer.from(password), certificateCN })

  it('lets the right user in and refuses a wrong password, an unknown user or a missing password with code 4', async () => {
    const p = await policy()
    expect(await decideLogin(p, attempt('alice', 'right'))).toMatchObject({ ok: true, identity: { username: 'alice', via: 'password' } })
    expect(await decideLogin(p, attempt('alice', 'wrong'))).toEqual({ ok: false, code: 4, reason: 'wrong password' })
    expect(await decideLogin(p, attempt('mallory', 'right'))).toEqual({ ok: false, code: 4, reason: 'unknown user' })
    expect(await decideLogin(p, attempt('alice'))).toEqual({ ok: false, code: 4, reason: 'no password' })
  })

  it('refuses anonymous clients with code 5 unless the listener allows them', async () => {
    expect(await decideLogin(await policy(), attempt())).toEqual({ ok: false, code: 5, reason: 'anonymous not allowed' })
    expect(await decideLogin(await policy({ anonymousAllowed: true }), attempt())).toMatchObject({ ok: true, identity: { username: undefined, via: 'anonymous' } })
  })

  it('does not take a user name on trust when there is no password file', async () => {
    expect(await decideLogin(await policy({ passwords: undefined, anonymousAllowed: true }), attempt('alice', 'x'))).toEqual({ ok: false, code: 4, reason: 'no password file' })
  })

  it('uses the certificate CN as the user name, ignoring CONNECT credentials', async () => {
    const p = await policy({ useIdentityAsUsername: true })
    expect(await decideLogin(p, attempt('alice', 'wrong', 'sensor-7'))).toMatchObject({ ok: true, identity: { username: 'sensor-7', via: 'certificate' } })
    expect(await decideLogin(p, attempt('alice', 'right'))).toEqual({ ok: false, code: 5, reason: 'no certificate identity' })
  })

  it('tells whether a logged-in client survives a password file change', async () => {
    const before = await table({ alice: 'a', bob: 'b' })
    const alice = { username: 'alice', via: 'password' as const, hash: before.get('alice')?.hash }
    expect(stillValid(alice, before)).toBe(true)
    expect(stillValid(alice, await table({ alice: 'a' }))).toBe(false)
    expect(stillValid(alice, await table({ bob: 'b' }))).toBe(false)
    expect(stillValid({ username: 'x', via: 'certificate' }, undefined)).toBe(true)
    expect(stillValid({ username: undefined, via: 'anonymous' }, before)).toBe(true)
  })
})

describe('failed-login backoff', () => {
  const A = '1.2.3.4'
  it('doubles the delay per failure of one user name from one address, caps it, and forgets on success or after a while', () => {
    let now = 0
    const b = new LoginBackoff({ baseMs: 100, maxMs: 1000, maxUsersPerAddress: 10, now: () => now })
    expect(b.delayMs(A, 'alice')).toBe(0)
    const delays = []
    for (let i = 0; i < 6; i++) {
      b.failed(A, 'alice')
      delays.push(b.delayMs(A, 'alice'))
    }
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000])
    expect(b.delayMs('5.6.7.8', 'alice')).toBe(0)
    b.succeeded(A, 'alice')
    expect(b.delayMs(A, 'alice')).toBe(0)
    b.failed(A, 'alice')
    now += 10_001
    expect(b.delayMs(A, 'alice')).toBe(0)
  })

  it('does not slow another user name from the same address, nor an anonymous client', () => {
    const b = new LoginBackoff({ baseMs: 100, maxMs: 1000, maxUsersPerAddress: 10 })
    for (let i = 0; i < 20; i++) b.failed(A, 'stale-device')
    expect(b.delayMs(A, 'stale-device')).toBe(1000)
    expect(b.delayMs(A, 'bob')).toBe(0)
    expect(b.delayMs(A, undefined)).toBe(0)
    b.failed(A, undefined)
    expect(b.delayMs(A, undefined)).toBe(100)
    expect(b.delayMs(A, '')).toBe(0)
  })

  it('slows every login from an address once more user names than the bound have failed there', () => {
    const b = new LoginBackoff({ baseMs: 100, maxMs: 1000, maxUsersPerAddress: 3 })
    for (const u of ['u1', 'u2', 'u3']) b.failed(A, u)
    expect(b.delayMs(A, 'bob')).toBe(0)
    b.failed(A, 'u4')
    expect(b.delayMs(A, 'bob')).toBe(100)
    for (let i = 5; i < 60; i++) b.failed(A, `u${i}`)
    expect(b.delayMs(A, 'bob')).toBe(1000)
    expect(b.delayMs('5.6.7.8', 'bob')).toBe(0)
    // A user name that logs in is no longer counted against the address; the others still are.
    const c = new LoginBackoff({ baseMs: 100, maxMs: 1000, maxUsersPerAddress: 1 })
    c.failed(A, 'u1')
    c.failed(A, 'u2')
    expect(c.delayMs(A, 'bob')).toBe(100)
    c.succeeded(A, 'u2')
    expect(c.delayMs(A, 'bob')).toBe(0)
    expect(c.delayMs(A, 'u1')).toBe(100)
    expect(new LoginBackoff({ baseMs: 100, maxMs: 1000, maxUsersPerAddress: 0 }).delayMs(A, 'x')).toBe(0)
  })

  it('remembers a bounded number of (address, user name) pairs, keyed by a digest of long user names', () => {
    const b = new LoginBackoff({ baseMs: 100, maxMs: 1000, maxUsersPerAddress: 10, maxEntries: 3 })
    for (let i = 0; i < 10; i++) b.failed(`10.0.0.${i}`, 'x'.repeat(65_535))
    expect(b.size).toBe(3)
    expect(b.failures('10.0.0.9', 'x'.repeat(65_535))).toBe(1)
    expect(b.failures('10.0.0.0', 'x'.repeat(65_535))).toBe(0)
  })

  it('is off with a base delay of 0', () => {
    const b = new LoginBackoff({ baseMs: 0, maxMs: 1000, maxUsersPerAddress: 1 })
    for (const u of ['a', 'b', 'c']) b.failed(A, u)
    expect(b.delayMs(A, 'a')).toBe(0)
    expect(b.delayMs(A, 'z')).toBe(0)
  })
})
