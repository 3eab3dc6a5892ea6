import { pbkdf2Sync, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { hashPassword, parseHash, verifyNothing, verifyPassword, type ParsedHash } from '../../src/auth/password-hash.js'
import { deleteUser, parsePasswordFile, setUser, usernameProblem } from '../../src/auth/password-file.js'

// Cheap parameters keep the suite fast; they are written into the hash, which is what this checks.
const fast = { ln: 10, r: 8, p: 1 }

function parsed (hash: string): ParsedHash {
  const p = parseHash(hash)
  if ('problem' in p) throw new Error(p.problem)
  return p
}

describe('password hashes', () => {
  it('writes scrypt with its parameters and a fresh salt, and verifies only the right password', async () => {
    const a = await hashPassword('s3cret', fast)
    const b = await hashPassword('s3cret', fast)
    expect(a).toMatch(/^\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/)
    expect(a).not.toBe(b)
    expect(await verifyPassword(Buffer.from('s3cret'), parsed(a))).toBe(true)
    expect(await verifyPassword(Buffer.from('s3cret '), parsed(a))).toBe(false)
    expect(await verifyPassword(Buffer.from(''), parsed(a))).toBe(false)
  })

  it('uses the default cost (N=2^15) when none is given', async () => {
    expect(await hashPassword('x')).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$/)
  })

  it('verifies a hash written with other parameters, so the cost can change later', async () => {
    const old = await hashPassword('pw', { ln: 11, r: 4, p: 2 })
    expect(parsed(old)).toMatchObject({ kind: 'scrypt', params: { ln: 11, r: 4, p: 2 } })
    expect(await verifyPassword(Buffer.from('pw'), parsed(old))).toBe(true)
  })

  it("accepts Mosquitto's $7$ PBKDF2-SHA512 hashes", async () => {
    const salt = randomBytes(12)
    const key = pbkdf2Sync('mosq', salt, 101, 64, 'sha512')
    const line = `$7$101$${salt.toString('base64')}$${key.toString('base64')}`
    expect(await verifyPassword(Buffer.from('mosq'), parsed(line))).toBe(true)
    expect(await verifyPassword(Buffer.from('nope'), parsed(line))).toBe(false)
  })

  it('refuses what it cannot verify, and costs a hostile file could use to stall logins', () => {
    expect(parseHash('plaintext')).toHaveProperty('problem')
    expect(parseHash('$argon2id$v=19$m=65536,t=3,p=4$abc$def')).toHaveProperty('problem')
    expect(parseHash('$scrypt$ln=30,r=8,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5')).toHaveProperty('problem')
    expect(parseHash('$scrypt$ln=10,r=8$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5')).toHaveProperty('problem')
    expect(parseHash('$scrypt$ln=10,r=8,p=1$!!$a2V5a2V5a2V5a2V5a2V5')).toHaveProperty('problem')
  })

  it('spends time on an unknown user and says no', async () => {
    expect(await verifyNothing(Buffer.from('anything'))).toBe(false)
  })
})

describe('the password file', () => {
  it('reads username:hash lines, skipping comments and blank lines', async () => {
    const h = await hashPassword('pw', fast)
    const r = parsePasswordFile(`# users\n\nalice:${h}\r\nbob:${h}\n`)
    expect(r.ok).toBe(true)
    if (r.ok) expect([...r.table.keys()]).toEqual(['alice', 'bob'])
  })

  it('rejects the whole file on one bad line, naming each problem by line', async () => {
    const h = await hashPassword('pw', fast)
    const r = parsePasswordFile(`alice:${h}\nbob\ncarol:plain\nalice:${h}\n`)
    expect(r.ok).toBe(false)
    if (!r.ok) {
      expect(r.problems[0]).toBe('line 2: expected username:hash')
      expect(r.problems[1]).toMatch(/^line 3 \(user "carol"\): not a hash/)
      expect(r.problems[2]).toBe('line 4: user "alice" is listed twice')
    }
  })

  it('adds, changes and deletes a user, keeping comments and the other lines', () => {
    let text = '# managed by culex passwd\nalice:$scrypt$old\n'
    const added = setUser(text, 'bob', '$scrypt$b')
    expect(added).toEqual({ text: '# managed by culex passwd\nalice:$scrypt$old\nbob:$scrypt$b\n', added: true })
    text = setUser(added.text, 'alice', '$scrypt$new').text
    expect(text).toBe('# managed by culex passwd\nalice:$scrypt$new\nbob:$scrypt$b\n')
    expect(deleteUser(text, 'alice')).toEqual({ text: '# managed by culex passwd\nbob:$scrypt$b\n', found: true })
    expect(deleteUser(text, 'zed').found).toBe(false)
  })

  it('refuses user names the file cannot hold', () => {
    expect(usernameProblem('alice')).toBeUndefined()
    expect(usernameProblem('')).toBeDefined()
    expect(usernameProblem('a:b')).toBeDefined()
    expect(usernameProblem('a\nb')).toBeDefined()
    expect(usernameProblem(' a')).toBeDefined()
    expect(usernameProblem('#a')).toBeDefined()
  })
})
