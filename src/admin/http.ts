import type http from 'node:http'

/** The error codes of the admin API, in `{ error: { code, message } }` bodies. */
export type ApiErrorCode = 'bad_request' | 'unauthorized' | 'not_found' | 'method_not_allowed' | 'internal'

const statusOf: Record<ApiErrorCode, number> = {
  bad_request: 400,
  unauthorized: 401,
  not_found: 404,
  method_not_allowed: 405,
  internal: 500
}

/** Thrown by a route handler to answer with a JSON error. */
export class ApiError extends Error {
  readonly status: number
  constructor (readonly code: ApiErrorCode, message: string) {
    super(message)
    this.status = statusOf[code]
  }
}

const commonHeaders = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff'
}

export function sendJson (res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { ...commonHeaders, 'content-type': 'application/json; charset=utf-8' })
  res.end(JSON.stringify(body))
}

export function sendText (res: http.ServerResponse, status: number, contentType: string, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...commonHeaders, 'content-type': contentType, ...headers })
  res.end(body)
}

export function sendError (res: http.ServerResponse, err: ApiError, headers: Record<string, string> = {}): void {
  res.writeHead(err.status, { ...commonHeaders, 'content-type': 'application/json; charset=utf-8', ...headers })
  res.end(JSON.stringify({ error: { code: err.code, message: err.message } }))
}

/** An integer query parameter within [min, max]; `def` when absent; 400 otherwise. */
export function intParam (query: URLSearchParams, name: string, def: number, min: number, max: number): number {
  const raw = query.get(name)
  if (raw === null || raw === '') return def
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min || n > max) throw new ApiError('bad_request', `${name} must be an integer between ${min} and ${max}, got ${JSON.stringify(raw)}`)
  return n
}

export interface Page<T> { items: T[], total: number, offset: number, limit: number }

/** ?limit= (1..1000, default 100) and ?offset= (default 0) applied to a list. */
export function paginate<T> (all: T[], query: URLSearchParams): Page<T> {
  const limit = intParam(query, 'limit', 100, 1, 1000)
  const offset = intParam(query, 'offset', 0, 0, Number.MAX_SAFE_INTEGER)
  return { items: all.slice(offset, offset + limit), total: all.length, offset, limit }
}

/** A payload as JSON: text when it is valid UTF-8, base64 otherwise. */
export function payloadJson (payload: unknown): { payload: string, encoding: 'utf8' | 'base64', bytes: number } {
  const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : payload instanceof Uint8Array ? payload : '')
  const text = buf.toString('utf8')
  return Buffer.from(text, 'utf8').equals(buf)
    ? { payload: text, encoding: 'utf8', bytes: buf.length }
    : { payload: buf.toString('base64'), encoding: 'base64', bytes: buf.length }
}
