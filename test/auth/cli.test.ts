import { spawn } from 'node:child_process'
import { readFile, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parsePasswordFile } from '../../src/auth/password-file.js'
import { verifyPassword } from '../../src/auth/password-hash.js'
import { ensureBuilt, killAllChildren, mainJs, runCli, runTracked, startArgs, startCli, tempDataDir } from '../helpers/cli.js'
import { tempDir, tryConnect } from './support.js'

/** `culex passwd`, and the password file reloading in a running `culex start` on SIGHUP. */
describe('culex passwd and SIGHUP', () => {
  beforeAll(async () => { await ensureBuilt() }, 180_000)
  afterEach(async () => { await killAllChildren() })

  async function checks (file: string, user: string, password: string): Promise<boolean> {
    const r = parsePasswordFile(await readFile(file, 'utf8'))
    if (!r.ok) throw new Error(r.problems.join())
    const entry = r.table.get(user)
    return entry !== undefined && await verifyPassword(Buffer.from(password), entry.parsed)
  }
  const passwd = async (args: string[], input?: string): Promise<{ code: number | null, stdout: string, stderr: string }> => {
    const r = await runTracked('sh', ['-c', `${input === undefined ? '' : `printf '%s' '${input}' | `}"${process.execPath}" "${mainJs}" passwd ${args.map(a => `'${a}'`).join(' ')}${input === undefined ? ' </dev/null' : ''}`])
    return { code: r.code, stdout: r.stdout, stderr: r.stderr }
  }

  it('adds a user from --password-stdin to a new file (mode 600), changes its password, and deletes it', async () => {
    const file = path.join(await tempDir(), 'passwd')
    const add = await passwd([file, 'alice', '--password-stdin'], 'first\n')
    expect(add).toMatchObject({ code: 0, stdout: `added user alice to ${file}\n` })
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(await checks(file, 'alice', 'first')).toBe(true)
    await writeFile(file, '# keep me\n' + await readFile(file, 'utf8'))
    expect((await passwd([file, 'bob', '--password-stdin'], 'bobs')).code).toBe(0)
    const change = await passwd([file, 'alice', '--password-stdin'], 'second')
    expect(change.stdout).toBe(`changed the password of alice in ${file}\n`)
    expect(await checks(file, 'alice', 'second')).toBe(true)
    expect(await checks(file, 'alice', 'first')).toBe(false)
    expect((await passwd([file, 'alice', '--delete'])).stdout).toBe(`deleted user alice from ${file}\n`)
    const text = await readFile(file, 'utf8')
    expect(text.startsWith('# keep me\nbob:$scrypt$')).toBe(true)
    expect(text).not.toContain('alice')
  })

  it('refuses bad usage with exit code 2 and leaves the file alone', async () => {
    const file = path.join(await tempDir(), 'passwd')
    expect((await passwd([file, 'alice', '--password-stdin'], 'pw')).code).toBe(0)
    const before = await readFile(file, 'utf8')
    const noTty = await passwd([file, 'bob'])
    expect(noTty.code).toBe(2)
    expect(noTty.stderr).toMatch(/standard input is not a terminal: pass the password with --password-stdin/)
    expect((await passwd([file, 'zed', '--delete'])).stderr).toMatch(/no user "zed"/)
    expect((await passwd([file, 'a:b', '--password-stdin'], 'x')).code).toBe(2)
    expect((await passwd([file, 'carol', '--password-stdin'], '')).code).toBe(2)
    expect((await passwd([file])).code).toBe(2)
    expect(await readFile(file, 'utf8')).toBe(before)
  })

  it('prompts twice with hidden input on a terminal', async () => {
    const file = path.join(await tempDir(), 'passwd')
    const ok = await typeAtPrompts(file, 'tty-user', ['typed-1', 'typed-1'])
    expect(ok).toMatch(/Password: [\s\S]*Repeat the password: /)
    expect(ok).not.toContain('typed-1')
    expect(await checks(file, 'tty-user', 'typed-1')).toBe(true)
    const mismatch = await typeAtPrompts(file, 'other', ['one', 'two'])
    expect(mismatch).toMatch(/the passwords do not match/)
    expect(await readFile(file, 'utf8')).not.toContain('other:')
  }, 60_000)

  it('a running broker picks up a changed password file on SIGHUP', async () => {
    const dir = await tempDir()
    const file = path.join(dir, 'passwd')
    expect((await passwd([file, 'alice', '--password-stdin'], 'a')).code).toBe(0)
    const cli = await startCli(startArgs(await tempDataDir()), { CULEX_AUTH_PASSWORD_FILE: file, CULEX_AUTH_WATCH_FILES: 'false', CULEX_AUTH_FAILED_LOGIN_DELAY_MS: '0' })
    const url = `mqtt://127.0.0.1:${cli.ports.mqtt}`
    expect((await tryConnect(url, { username: 'alice', password: 'a' })).result).toBe(0)
    expect((await passwd([file, 'bob', '--password-stdin'], 'b')).code).toBe(0)
    expect((await tryConnect(url, { username: 'bob', password: 'b' })).result).toBe(4)
    cli.proc.kill('SIGHUP')
    await cli.waitForLog(l => l.msg === 'password file reloaded' && l.trigger === 'signal', 'the reload')
    expect((await tryConnect(url, { username: 'bob', password: 'b' })).result).toBe(0)
    expect(cli.proc.exit).toBeUndefined()
    expect(await cli.stop()).toBe(0)
  }, 60_000)

  it('exits with code 2 and says what to set when a public listener has no way to authenticate', async () => {
    const r = await runCli(['start', '--mqtt-port', '0', '--ws-port', '0', '--admin-port', '0', '--host', '0.0.0.0', '--data-dir', await tempDataDir(), '--log-format', 'json'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/listeners\.mqtt\.allowAnonymous: is auto and listeners\.mqtt\.host 0\.0\.0\.0 is not a loopback address/)
    expect(r.stderr).toMatch(/listeners\.ws\.allowAnonymous/)
  })
})

/**
 * Runs `culex passwd` on a terminal (`script` gives it one) and types each answer once its prompt has appeared,
 * as a person would; returns everything the terminal showed.
 */
async function typeAtPrompts (file: string, user: string, answers: string[]): Promise<string> {
  const child = spawn('script', ['-qec', `"${process.execPath}" "${mainJs}" passwd '${file}' '${user}'`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  let typed = 0
  const prompts = ['Password: ', 'Repeat the password: ']
  const onOutput = (chunk: Buffer): void => {
    out += chunk.toString()
    if (typed < answers.length && out.includes(prompts[typed])) child.stdin.write(answers[typed++] + '\r')
  }
  child.stdout.on('data', onOutput)
  child.stderr.on('data', onOutput)
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  await new Promise(resolve => child.once('close', resolve))
  clearTimeout(timer)
  return out
}
