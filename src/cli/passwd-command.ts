import { randomBytes } from 'node:crypto'
import { chmod, chown, open, readFile, rename, rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { deleteUser, parsePasswordFile, setUser, usernameProblem } from '../auth/password-file.js'
import { hashPassword } from '../auth/password-hash.js'
import { CulexError, exitCodes } from '../errors.js'

export const passwdHelp = `culex passwd <file> <user> [--password-stdin | --delete]    add a user or change its password; --delete removes it

  The password is asked twice, hidden, on a terminal; --password-stdin reads it from standard input instead (the
  whole input, one trailing newline removed). The file is created (mode 600) when it does not exist and replaced
  in one step, so a running broker reloads it whole (auth.passwordFile reloads on change and on SIGHUP).
  Exit codes: 0 done, 1 the file cannot be read or written, 2 bad usage or the passwords do not match.`

export interface PasswdIo {
  stdin: NodeJS.ReadStream
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
}

export async function passwdCommand (args: string[], io: PasswdIo = process): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { 'password-stdin': { type: 'boolean' }, delete: { type: 'boolean' } },
    strict: true,
    allowPositionals: true
  })
  if (positionals.length !== 2) throw new CulexError('ERR_USAGE', 'usage: culex passwd <file> <user> [--password-stdin | --delete]')
  const [file, user] = positionals
  const bad = usernameProblem(user)
  if (bad !== undefined) throw new CulexError('ERR_USAGE', bad)
  if (values.delete === true && values['password-stdin'] === true) throw new CulexError('ERR_USAGE', '--delete and --password-stdin do not go together')

  const before = await readExisting(file, values.delete === true)
  let after: string
  let done: string
  if (values.delete === true) {
    const r = deleteUser(before ?? '', user)
    if (!r.found) throw new CulexError('ERR_USAGE', `no user ${JSON.stringify(user)} in ${file}`)
    after = r.text
    done = `deleted user ${user} from ${file}`
  } else {
    const password = values['password-stdin'] === true ? await readStdinPassword(io.stdin) : await promptTwice(io)
    const r = setUser(before ?? '', user, await hashPassword(password))
    after = r.text
    done = r.added ? `added user ${user} to ${file}` : `changed the password of ${user} in ${file}`
  }
  await writeAtomically(file, after)
  io.stdout.write(done + '\n')
  const check = parsePasswordFile(after)
  if (!check.ok) {
    io.stderr.write(`culex: warning: ${file} still has lines the broker will refuse:\n`)
    for (const p of check.problems) io.stderr.write(`  - ${p}\n`)
  }
  return exitCodes.ok
}

async function readExisting (file: string, mustExist: boolean): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' && !mustExist) return undefined
    throw new CulexError('ERR_AUTH_FILE', `cannot read password file ${file}: ${code ?? String(err)}`, { cause: err })
  }
}

async function readStdinPassword (stdin: NodeJS.ReadStream): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer))
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
  if (password === '') throw new CulexError('ERR_USAGE', 'no password on standard input')
  return password
}

async function promptTwice (io: PasswdIo): Promise<string> {
  if (io.stdin.isTTY !== true) throw new CulexError('ERR_USAGE', 'standard input is not a terminal: pass the password with --password-stdin')
  const tty = new HiddenLines(io)
  try {
    const first = await tty.read('Password: ')
    if (first === '') throw new CulexError('ERR_USAGE', 'the password must not be empty')
    const second = await tty.read('Repeat the password: ')
    if (first !== second) throw new CulexError('ERR_USAGE', 'the passwords do not match; nothing was changed')
    return first
  } finally {
    tty.close()
  }
}

/** Lines read from the terminal in raw mode, so nothing typed is echoed; keystrokes typed ahead are kept. */
class HiddenLines {
  private pending = ''
  private waiter: (() => void) | undefined
  private readonly onData = (chunk: string): void => {
    this.pending += chunk
    this.waiter?.()
  }

  constructor (private readonly io: PasswdIo) {
    io.stdin.setRawMode(true)
    io.stdin.setEncoding('utf8')
    io.stdin.on('data', this.onData)
    io.stdin.resume()
  }

  async read (prompt: string): Promise<string> {
    this.io.stderr.write(prompt)
    let value = ''
    for (;;) {
      while (this.pending === '') await new Promise<void>(resolve => { this.waiter = resolve })
      const chars = [...this.pending]
      this.pending = ''
      for (let i = 0; i < chars.length; i++) {
        const ch = chars[i]
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          // "\r\n" from a paste is one line end.
          const rest = chars.slice(ch === '\r' && chars[i + 1] === '\n' ? i + 2 : i + 1)
          this.pending = rest.join('')
          this.io.stderr.write('\n')
          return value
        }
        if (ch === '\u0003') {
          this.io.stderr.write('\n')
          throw new CulexError('ERR_USAGE', 'cancelled; nothing was changed')
        }
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('')
        else value += ch
      }
    }
  }

  close (): void {
    this.io.stdin.off('data', this.onData)
    this.io.stdin.setRawMode(false)
    this.io.stdin.pause()
  }
}

/**
 * Writes a temporary file next to the target and renames it over: readers (the broker's reload) see the old file
 * or the new one, never half of it. An existing file keeps its mode and, when run as root, its owner, so the
 * broker's user can still read it.
 */
async function writeAtomically (file: string, text: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  const old = await stat(file).catch(() => undefined)
  try {
    const handle = await open(tmp, 'wx', 0o600)
    try {
      await handle.writeFile(text)
      await handle.sync()
    } finally {
      await handle.close()
    }
    if (old !== undefined) {
      await chmod(tmp, old.mode & 0o777)
      if (process.getuid?.() === 0) await chown(tmp, old.uid, old.gid)
    }
    await rename(tmp, file)
  } catch (err) {
    await rm(tmp, { force: true })
    throw new CulexError('ERR_AUTH_FILE', `cannot write password file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err })
  }
}
