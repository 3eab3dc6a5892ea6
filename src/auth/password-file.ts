import { parseHash, type ParsedHash } from './password-hash.js'

/**
 * The password file: one `username:hash` per line, `#` comments and blank lines allowed (Mosquitto's layout).
 * Parsing is strict: one bad line makes the whole file invalid, so a half-edited file never silently locks users
 * out or lets them in; the broker keeps the table it had and logs the problems.
 */

export interface PasswordEntry {
  /** The hash exactly as written; a change to it (a new password) ends the user's open connections on reload. */
  readonly hash: string
  readonly parsed: ParsedHash
}

export type PasswordTable = ReadonlyMap<string, PasswordEntry>

export type ParseResult = { ok: true, table: PasswordTable } | { ok: false, problems: string[] }

export function parsePasswordFile (text: string): ParseResult {
  const table = new Map<string, PasswordEntry>()
  const problems: string[] = []
  const lines = text.split(/\r?\n/)
  lines.forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const where = `line ${i + 1}`
    const colon = line.indexOf(':')
    if (colon <= 0) {
      problems.push(`${where}: expected username:hash`)
      return
    }
    const user = line.slice(0, colon)
    const hash = line.slice(colon + 1)
    const parsed = parseHash(hash)
    if ('problem' in parsed) {
      problems.push(`${where} (user ${JSON.stringify(user)}): ${parsed.problem}`)
      return
    }
    if (table.has(user)) {
      problems.push(`${where}: user ${JSON.stringify(user)} is listed twice`)
      return
    }
    table.set(user, { hash, parsed })
  })
  return problems.length === 0 ? { ok: true, table } : { ok: false, problems }
}

/** Why a user name cannot go into the file, or undefined when it can. */
export function usernameProblem (user: string): string | undefined {
  if (user === '') return 'the user name must not be empty'
  if (user.includes(':')) return 'the user name must not contain ":"'
  if (/[\u0000-\u001f\u007f]/.test(user)) return 'the user name must not contain control characters'
  if (user.trim() !== user) return 'the user name must not start or end with spaces'
  if (user.startsWith('#')) return 'the user name must not start with "#"'
  if (Buffer.byteLength(user) > 65535) return 'the user name is longer than MQTT allows (65535 bytes)'
  return undefined
}

/** The file text with `user`'s hash set: its line replaced where it was, or a new line at the end. */
export function setUser (text: string, user: string, hash: string): { text: string, added: boolean } {
  const lines = splitLines(text)
  const i = lines.findIndex(l => userOf(l) === user)
  if (i >= 0) {
    lines[i] = `${user}:${hash}`
    return { text: joinLines(lines), added: false }
  }
  lines.push(`${user}:${hash}`)
  return { text: joinLines(lines), added: true }
}

/** The file text without `user`'s line; comments and the other lines stay as they were. */
export function deleteUser (text: string, user: string): { text: string, found: boolean } {
  const lines = splitLines(text)
  const kept = lines.filter(l => userOf(l) !== user)
  return { text: joinLines(kept), found: kept.length !== lines.length }
}

function userOf (line: string): string | undefined {
  const t = line.trim()
  if (t === '' || t.startsWith('#')) return undefined
  const colon = t.indexOf(':')
  return colon <= 0 ? undefined : t.slice(0, colon)
}

function splitLines (text: string): string[] {
  const lines = text.split(/\r?\n/)
  if (lines[lines.length - 1] === '') lines.pop()
  return lines
}

function joinLines (lines: string[]): string {
  return lines.length === 0 ? '' : lines.join('\n') + '\n'
}
