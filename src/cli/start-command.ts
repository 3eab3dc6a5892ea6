import { parseArgs } from 'node:util'
import { loadConfig } from '../config/load.js'
import { createLogger } from '../log/logger.js'
import { startBroker } from '../broker.js'
import { exitCodes } from '../errors.js'
import { configFlagOptions, configFlagsHelp, flagsToConfig } from './config-flags.js'
import { missingNodeFlags, NODE_FLAGS } from './node-flags.js'

export const startHelp = `culex [start] [options]    start the broker

${configFlagsHelp}`

/** Runs the broker until SIGTERM or SIGINT; resolves with the exit code. */
export async function startCommand (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: configFlagOptions, strict: true, allowPositionals: false })
  const { config, unknownEnv } = await loadConfig({ file: values.config, env: process.env, flags: flagsToConfig(values) })
  const log = createLogger({ level: config.log.level, format: config.log.format })
  for (const u of unknownEnv) log.warn({ variable: u.name, closest: u.closest }, 'unknown environment variable ignored')
  const missing = missingNodeFlags()
  if (missing.length > 0) log.warn({ missing, command: `node ${NODE_FLAGS.join(' ')} dist/main.js start` }, 'node started without the entry point\'s flags')
  const broker = await startBroker(config, log)

  return await new Promise<number>(resolve => {
    let stopping = false
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal, exiting now')
        process.exit(exitCodes.failure)
      }
      stopping = true
      log.info({ signal, timeoutMs: config.shutdown.timeoutMs }, 'shutting down')
      const timer = setTimeout(() => {
        log.error({ code: 'ERR_SHUTDOWN_TIMEOUT', timeoutMs: config.shutdown.timeoutMs }, 'shutdown timed out, exiting')
        resolve(exitCodes.failure)
      }, config.shutdown.timeoutMs)
      timer.unref()
      broker.close().then(() => {
        clearTimeout(timer)
        resolve(exitCodes.ok)
      }, (err: unknown) => {
        log.error({ err }, 'shutdown failed')
        resolve(exitCodes.failure)
      })
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  })
}

