import { parseArgs } from 'node:util'
import { loadConfig } from '../config/load.js'
import { describeUnknownEnv } from '../config/env-names.js'
import { exitCodes } from '../errors.js'
import { assertAuthConfig, createAuthHooks } from '../auth/hooks.js'
import { createLogger } from '../log/logger.js'
import { readTlsOptions } from '../listeners/tls-options.js'
import { assertClusterConfig } from '../cluster/index.js'
import { configFlagOptions, configFlagsHelp, flagsToConfig } from './config-flags.js'
import { checkRedis } from '../store/redis/connection.js'
import { redisConnectOptions } from '../store/index.js'

export const checkConfigHelp = `culex check-config [options]    validate the configuration and exit (0 = valid, 2 = invalid)

${configFlagsHelp}`

export async function checkConfigCommand (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: configFlagOptions, strict: true, allowPositionals: false })
  const { config, origins, unknownEnv } = await loadConfig({ file: values.config, env: process.env, flags: flagsToConfig(values) })
  for (const u of unknownEnv) process.stderr.write(`culex: warning: ${describeUnknownEnv(u)}\n`)
  // The same start-up checks the broker makes: who may log in on each listener, the password and ACL files, and
  // that each TLS listener's certificate, key and CA load together.
  assertAuthConfig(config)
  const auth = await createAuthHooks({ ...config, auth: { ...config.auth, watchFiles: false } }, createLogger({ level: 'silent', format: 'json' }))
  auth.close()
  for (const name of ['mqtts', 'wss'] as const) {
    if (config.listeners[name].enabled) await readTlsOptions(name, config.listeners[name])
  }
  // Cluster mode: the settings work together, and the URL (or Sentinels) reach a Redis that answers.
  const redis = redisConnectOptions(config.cluster)
  if (redis !== undefined) {
    assertClusterConfig(config.cluster)
    await checkRedis(redis)
  }
  const changed = Object.entries(origins).filter(([, origin]) => origin !== 'default')
  process.stdout.write(`configuration is valid (${changed.length} setting${changed.length === 1 ? '' : 's'} changed from the defaults)\n`)
  for (const [key, origin] of changed) process.stdout.write(`  ${key} (from ${origin})\n`)
  return exitCodes.ok
}
