import type { ParseArgsConfig } from 'node:util'

/** Flags shared by the commands that read the configuration, and the config keys each one sets. */
export const configFlagOptions = {
  config: { type: 'string', short: 'c' },
  'mqtt-port': { type: 'string' },
  'ws-port': { type: 'string' },
  'admin-port': { type: 'string' },
  host: { type: 'string' },
  'data-dir': { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' }
} as const satisfies ParseArgsConfig['options']

type FlagValues = { [K in keyof typeof configFlagOptions]?: string }

export function flagsToConfig (values: FlagValues): Record<string, unknown> {
  const out: Record<string, unknown> = {
    'listeners.mqtt.port': values['mqtt-port'],
    'listeners.ws.port': values['ws-port'],
    'admin.port': values['admin-port'],
    dataDir: values['data-dir'],
    'log.level': values['log-level'],
    'log.format': values['log-format']
  }
  if (values.host !== undefined) {
    for (const l of ['mqtt', 'mqtts', 'ws', 'wss']) out[`listeners.${l}.host`] = values.host
  }
  return out
}

export const configFlagsHelp = `Configuration (precedence: flag > CULEX_* environment variable > config file > default):
  -c, --config <file>     YAML config file (see config/culex.yaml for every key)
      --mqtt-port <n>     listeners.mqtt.port (0 picks a free port; the chosen one is logged)
      --ws-port <n>       listeners.ws.port
      --admin-port <n>    admin.port
      --host <address>    host of every MQTT listener (mqtt, mqtts, ws, wss)
      --data-dir <dir>    dataDir
      --log-level <lvl>   log.level: fatal, error, warn, info, debug, trace, silent
      --log-format <f>    log.format: auto, json, pretty`
