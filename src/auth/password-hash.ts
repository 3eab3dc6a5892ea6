import { pbkdf2, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto'

/**
 * Password hashes of the password file. New hashes are scrypt with the parameters written into the string, so the
 * cost can be raised later without invalidating existing entries:
 *
 *   $scrypt$ln=15,r=8,p=1$<salt, base64>$<key, base64>
 *
 * (the same layout as passlib's scrypt hashes). Mosquitto's `$7$` PBKDF2-SHA512 hashes are also accepted so a
 * Mosquitto password file can be used as it is; `culex passwd` rewrites an entry in scrypt when it changes it.
 */

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  ln: number
  r: number
  p: number
}

/** About 100 ms and 32 MiB per hash on a current server core: OWASP's scrypt floor is N=2^15 with r=8 and p=1..3. */
export const defaultScryptParams: ScryptParams = { ln: 15, r: 8, p: 1 }

// Bounds on what a password file may ask for, so a hostile or mistyped entry cannot make each login cost seconds
// or gigabytes.
const LIMITS = { ln: [1, 20], r: [1, 32], p: [1, 16] } as const
const SALT_BYTES = 16
const KEY_BYTES = 32

export type ParsedHash =
  | { kind: 'scrypt', params: ScryptParams, salt: Buffer, key: Buffer }
  | { kind: 'pbkdf2-sha512', iterations: number, salt: Buffer, key: Buffer }

/** Parses a hash string; returns a problem text when it is not a hash this module can verify. */
export function parseHash (text: string): ParsedHash | { problem: string } {
  const parts = text.split('$')
  if (parts[0] !== '') return { problem: 'not a hash (it must start with $scrypt$ or $7$; run culex passwd to set the password)' }
  if (parts[1] === 'scrypt' && parts.length === 5) {
    const params: Record<string, number> = {}
    for (const kv of parts[2].split(',')) {
      const [k, v] = kv.split('=')
      params[k] = Number(v)
    }
    for (const [name, [min, max]] of Object.entries(LIMITS)) {
      const v = params[name]
      if (!Number.isInteger(v) || v < min || v > max) return { problem: `scrypt parameter ${name} must be an integer ${min}..${max}` }
    }
    const salt = fromBase64(parts[3])
    const key = fromBase64(parts[4])
    if (salt === undefined || salt.length < 8 || key === undefined || key.length < 16) return { problem: 'scrypt salt or key is not valid base64 of a sensible length' }
    return { kind: 'scrypt', params: { ln: params.ln, r: params.r, p: params.p }, salt, key }
  }
  if (parts[1] === '7' && parts.length === 5) {
    const iterations = Number(parts[2])
    const salt = fromBase64(parts[3])
    const key = fromBase64(parts[4])
    if (!Number.isInteger(iterations) || iterations < 1 || iterations > 10_000_000) return { problem: 'PBKDF2 iteration count is not valid' }
    if (salt === undefined || key === undefined || key.length !== 64) return { problem: 'PBKDF2 salt or key is not valid base64' }
    return { kind: 'pbkdf2-sha512', iterations, salt, key }
  }
  if (parts[1] === 'argon2id' || parts[1] === '6') return { problem: `$${parts[1]}$ hashes are not supported by Node.js 20's crypto; set the password again with culex passwd` }
  return { problem: `unknown hash scheme $${parts[1] ?? ''}$ (supported: $scrypt$, and Mosquitto's $7$)` }
}

function fromBase64 (s: string | undefined): Buffer | undefined {
  if (s === undefined || s === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) return undefined
  return Buffer.from(s, 'base64')
}

const b64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '')

function scryptOptions (p: ScryptParams): ScryptOptions {
  const N = 2 ** p.ln
  // Node refuses above 32 MiB unless maxmem is raised; scrypt needs 128 * N * r bytes (plus a margin).
  return { N, r: p.r, p: p.p, maxmem: 128 * N * p.r * 2 + 1024 * 1024 }
}

async function scryptAsync (password: Buffer, salt: Buffer, length: number, params: ScryptParams): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    scrypt(password, salt, length, scryptOptions(params), (err, key) => err === null ? resolve(key) : reject(err))
  })
}

/** A new salted hash of `password` (run off the main thread by libuv's pool). */
export async function hashPassword (password: string | Buffer, params: ScryptParams = defaultScryptParams): Promise<string> {
  const salt = randomBytes(SALT_BYTES)
  const key = await scryptAsync(Buffer.from(password), salt, KEY_BYTES, params)
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`
}

/** Whether `password` matches the parsed hash; the comparison takes the same time wherever the bytes differ. */
export async function verifyPassword (password: Buffer, hash: ParsedHash): Promise<boolean> {
  let derived: Buffer
  if (hash.kind === 'scrypt') {
    derived = await scryptAsync(password, hash.salt, hash.key.length, hash.params)
  } else {
    derived = await new Promise<Buffer>((resolve, reject) => {
      pbkdf2(password, hash.salt, hash.iterations, hash.key.length, 'sha512', (err, key) => err === null ? resolve(key) : reject(err))
    })
  }
  return derived.length === hash.key.length && timingSafeEqual(derived, hash.key)
}

let dummy: ParsedHash | undefined

/**
 * Spends the time of a real verification on a user that does not exist, so the answer time does not tell an
 * attacker which user names are in the file.
 */
export async function verifyNothing (password: Buffer): Promise<false> {
  if (dummy === undefined) {
    const parsed = parseHash(await hashPassword(randomBytes(16)))
    if ('problem' in parsed) throw new Error(parsed.problem)
    dummy = parsed
  }
  await verifyPassword(password, dummy)
  return false
}
