import { mkdtemp, writeFile, readFile, readdir } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfig, schemaEntries, envName } from '../../src/config/load.js'
import { renderMarkdownReference, renderYamlReference } from '../../src/config/reference.js'
import { isCulexError } from '../../src/errors.js'
import { dlqHelp } from '../../src/cli/dlq-command.js'
import { startHelp } from '../../src/cli/start-command.js'
import { checkConfigHelp } from '../../src/cli/check-config-command.js'
import { passwdHelp } from '../../src/cli/passwd-command.js'
import { storeHelp } from '../../src/cli/store-command.js'
import { sessionsHelp } from '../../src/cli/sessions-command.js'

async function configFile (text: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'culex-config-'))
  const file = path.join(dir, 'culex.yaml')
  await writeFile(file, text)
  return file
}

async function problemsOf (sources: Parameters<typeof loadConfig>[0]): Promise<string[]> {
  try {
    await loadConfig(sources)
  } catch (err) {
    if (isCulexError(err)) return [err.code, ...err.details]
    throw err
  }
  return []
}

describe('config loading', () => {
  it('gives the documented defaults with no sources', async () => {
    const { config } = await loadConfig()
    expect(config.listeners.mqtt.port).toBe(1883)
    expect(config.listeners.ws.port).toBe(8083)
    expect(config.listeners.ws.path).toBe('/mqtt')
    expect(config.admin).toEqual({ enabled: true, host: '127.0.0.1', port: 18083, authToken: '', sysIntervalMs: 10_000 })
    expect(config.dataDir).toBe('./data')
    expect(Object.isFrozen(config.listeners.mqtt)).toBe(true)
  })

  it('applies flag > env > file > default', async () => {
    const file = await configFile('listeners:\n  mqtt:\n    port: 1000\n  ws:\n    port: 2000\nadmin:\n  port: 3000\n')
    const { config, origins } = await loadConfig({
      file,
      env: { CULEX_LISTENERS_MQTT_PORT: '1001', CULEX_LISTENERS_WS_PORT: '2001' },
      flags: { 'listeners.mqtt.port': '1002' }
    })
    expect(config.listeners.mqtt.port).toBe(1002)
    expect(origins['listeners.mqtt.port']).toBe('flag')
    expect(config.listeners.ws.port).toBe(2001)
    expect(origins['listeners.ws.port']).toBe('env')
    expect(config.admin.port).toBe(3000)
    expect(origins['admin.port']).toBe('file')
    expect(origins['listeners.mqtts.port']).toBe('default')
  })

  it('reports every problem at once, naming the key and its source', async () => {
    const file = await configFile('listeners:\n  mqtt:\n    port: 70000\n    colour: red\nlog:\n  level: loud\n')
    const problems = await problemsOf({ file, env: { CULEX_ADMIN_PORT: 'abc' } })
    expect(problems[0]).toBe('ERR_CONFIG_INVALID')
    expect(problems).toContain(`listeners.mqtt.port: must be between 0 and 65535, got 70000 (from ${file})`)
    expect(problems).toContain(`listeners.mqtt.colour: unknown setting (from ${file})`)
    expect(problems.some(p => p.startsWith('log.level: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"'))).toBe(true)
    expect(problems).toContain('admin.port: must be an integer, got "abc" (from environment CULEX_ADMIN_PORT)')
  })

  it('ignores an unknown CULEX_* variable, reporting it with the nearest known name when it is close to one', async () => {
    const { config, unknownEnv } = await loadConfig({ env: { CULEX_ADMIN_TOKEN: 's3cret', CULEX_NOPE: '1', CULEX_LOG_LEVLE: 'debug', CULEX_ADMIN_PORT: '9000' } })
    expect(config.admin.port).toBe(9000)
    expect(config.admin.authToken).toBe('')
    expect(unknownEnv).toEqual([
      { name: 'CULEX_ADMIN_TOKEN', closest: 'CULEX_ADMIN_AUTH_TOKEN' },
      { name: 'CULEX_NOPE' },
      { name: 'CULEX_LOG_LEVLE', closest: 'CULEX_LOG_LEVEL' }
    ])
  })

  it('refuses an enabled TLS listener without certificate files, and unreadable files', async () => {
    const problems = await problemsOf({ flags: { 'listeners.mqtts.enabled': true, 'listeners.wss.enabled': true, 'listeners.wss.certFile': '/no/such.pem', 'listeners.wss.keyFile': '/no/key.pem' } })
    expect(problems).toContain('listeners.mqtts.certFile: required when listeners.mqtts.enabled is true (from command line)')
    expect(problems).toContain('listeners.mqtts.keyFile: required when listeners.mqtts.enabled is true (from command line)')
    expect(problems).toContain('listeners.wss.certFile: cannot read file /no/such.pem (from command line)')
  })

  it('takes mqtt.retryIntervalMs as 0 (off, the default) or at least 100 ms', async () => {
    expect((await loadConfig()).config.mqtt.retryIntervalMs).toBe(0)
    expect((await loadConfig({ env: { CULEX_MQTT_RETRY_INTERVAL_MS: '0' } })).config.mqtt.retryIntervalMs).toBe(0)
    expect((await loadConfig({ env: { CULEX_MQTT_RETRY_INTERVAL_MS: '100' } })).config.mqtt.retryIntervalMs).toBe(100)
    const problems = await problemsOf({ flags: { 'mqtt.retryIntervalMs': 50 } })
    expect(problems).toContain('mqtt.retryIntervalMs: must be 0 or at least 100, got 50 (from command line)')
    expect(await problemsOf({ flags: { 'mqtt.retryIntervalMs': -1 } })).toHaveLength(2)
  })

  it('refuses two listeners on one port', async () => {
    const problems = await problemsOf({ flags: { 'listeners.ws.port': 1883 } })
    expect(problems).toContain('listeners.ws.port: 1883 (from command line) is already used by listeners.mqtt.port (from default)')
  })

  it('says which line of a broken YAML file is wrong', async () => {
    const file = await configFile('listeners:\n  mqtt:\n    port: [1\n')
    const problems = await problemsOf({ file })
    expect(problems[0]).toBe('ERR_CONFIG_FILE')
  })

  it('accepts the shipped config/culex.yaml, which documents every key at its default', async () => {
    const shipped = await readFile('config/culex.yaml', 'utf8')
    expect(shipped).toBe(renderYamlReference())
    const { origins } = await loadConfig({ file: 'config/culex.yaml' })
    expect(Object.values(origins).every(o => o === 'default')).toBe(true)
    for (const e of schemaEntries()) expect(shipped).toContain(`# ${e.path[e.path.length - 1]}:`)
  })

  it('keeps the README config reference in step with the schema', async () => {
    const readme = await readFile('README.md', 'utf8')
    expect(readme).toContain(renderMarkdownReference())
    for (const e of schemaEntries()) expect(readme).toContain(`\`${e.key}\``)
  })

  it('names in the docs and the CLI help only CULEX_* variables that exist', async () => {
    const known = schemaEntries().map(e => e.env)
    // Variables of the test suite itself, not of culex.
    const testSuite = new Set(['CULEX_STORE_DIST', 'CULEX_UPDATE_SCREENSHOT', 'CULEX_CHURN_SEEDS', 'CULEX_FAILOVER_SEEDS', 'CULEX_EXPIRY_RACE_SEED', 'CULEX_EXPIRY_RACE_ROUNDS'])
    const docs = ['README.md', 'Dockerfile', ...(await readdir('docs')).filter(f => f.endsWith('.md')).map(f => path.join('docs', f))]
    const texts = [
      ...await Promise.all(docs.map(async f => [f, await readFile(f, 'utf8')] as const)),
      ['culex --help texts', [dlqHelp, startHelp, checkConfigHelp, passwdHelp, sessionsHelp, storeHelp].join('\n')] as const
    ]
    // `CULEX_LISTENERS_*_HOST` stands for several; a name followed by "` → `" is a misspelling shown being corrected.
    const exists = (name: string): boolean => {
      const pattern = new RegExp(`^${name.replaceAll('*', '[A-Z0-9_]+')}$`)
      return testSuite.has(name) || known.some(k => pattern.test(k))
    }
    const unknown = texts.flatMap(([f, text]) => [...text.matchAll(/CULEX_[A-Z0-9_*]*[A-Z0-9](?![A-Z0-9_*]|` → `)/g)]
      .map(m => m[0]).filter(name => !exists(name)).map(name => `${f}: ${name}`))
    expect(unknown).toEqual([])
  })

  it('names environment variables after the key path', () => {
    expect(envName(['sessions', 'maxQueuedMessages'])).toBe('CULEX_SESSIONS_MAX_QUEUED_MESSAGES')
    expect(envName(['listeners', 'mqtts', 'requireClientCert'])).toBe('CULEX_LISTENERS_MQTTS_REQUIRE_CLIENT_CERT')
  })
})
