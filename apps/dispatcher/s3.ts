/**
 * Reads objects from an S3-compatible store (AWS S3, MinIO, Ceph, Garage …) with AWS
 * Signature Version 4 and path-style URLs (`{url}/{bucket}/{key}`), the form every
 * S3-compatible server accepts. Only GET is needed: commands name files to upload.
 */
import { createHash, createHmac } from 'node:crypto'
import { request } from 'undici'
import { ApiError } from './api-client.ts'
import { CommandError } from './selectors.ts'

export interface S3Options {
  /** e.g. `http://localhost:9000` or `https://s3.eu-west-1.amazonaws.com`. */
  url: string
  accessKey: string
  secretKey: string
  /** Default `us-east-1` (what MinIO expects unless configured otherwise). */
  region?: string
  /** Longest one GET may take, ms. Default 60 000. */
  timeout?: number
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex')
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest()

/** RFC 3986 encoding as SigV4 wants it: unreserved characters stay, everything else is %XX. */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`
  )
}

export interface SignInput {
  method: string
  url: URL
  headers: Record<string, string>
  payloadHash: string
  accessKey: string
  secretKey: string
  region: string
  service: string
  /** `YYYYMMDD'T'HHMMSS'Z'` */
  amzDate: string
}

/** The `Authorization` header of a SigV4-signed request (every given header is signed). */
export function signV4(input: SignInput): string {
  const date = input.amzDate.slice(0, 8)
  const headers = Object.entries(input.headers)
    .map(([name, value]) => [name.toLowerCase(), value.trim().replace(/\s+/g, ' ')] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const signedHeaders = headers.map(([name]) => name).join(';')
  const query = [...input.url.searchParams]
    .map(([k, v]) => [encodeSegment(k), encodeSegment(v)])
    .sort(([a, av], [b, bv]) => (a! < b! ? -1 : a! > b! ? 1 : av! < bv! ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&')
  const canonical = [
    input.method,
    input.url.pathname || '/',
    query,
    headers.map(([name, value]) => `${name}:${value}\n`).join(''),
    signedHeaders,
    input.payloadHash
  ].join('\n')
  const scope = `${date}/${input.region}/${input.service}/aws4_request`
  const toSign = ['AWS4-HMAC-SHA256', input.amzDate, scope, sha256(canonical)].join('\n')
  const key = hmac(
    hmac(hmac(hmac(`AWS4${input.secretKey}`, date), input.region), input.service),
    'aws4_request'
  )
  const signature = createHmac('sha256', key).update(toSign).digest('hex')
  return `AWS4-HMAC-SHA256 Credential=${input.accessKey}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`
}

export class S3Reader {
  readonly #options: Required<S3Options>

  constructor(options: S3Options) {
    this.#options = { region: 'us-east-1', timeout: 60_000, ...options }
  }

  /**
   * The object's bytes. A missing bucket or key is a `CommandError` (`s3_object_missing`,
   * dead-lettered); anything else (unreachable, refused, 5xx) is a retryable `ApiError`.
   */
  async get(bucket: string, key: string, signal?: AbortSignal): Promise<Buffer> {
    const base = this.#options.url.replace(/\/+$/, '')
    const url = new URL(`${base}/${encodeSegment(bucket)}/${key.split('/').map(encodeSegment).join('/')}`)
    const amzDate = new Date()
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d{3}/, '')
    const payloadHash = sha256('')
    const headers = { host: url.host, 'x-amz-content-sha256': payloadHash, 'x-amz-date': amzDate }
    const authorization = signV4({
      method: 'GET',
      url,
      headers,
      payloadHash,
      accessKey: this.#options.accessKey,
      secretKey: this.#options.secretKey,
      region: this.#options.region,
      service: 's3',
      amzDate
    })
    const target = `s3://${bucket}/${key}`
    let response: Awaited<ReturnType<typeof request>>
    try {
      response = await request(url, {
        method: 'GET',
        headers: { ...headers, authorization },
        signal: AbortSignal.any([
          signal ?? new AbortController().signal,
          AbortSignal.timeout(this.#options.timeout)
        ])
      })
    } catch (error) {
      signal?.throwIfAborted()
      throw new ApiError({
        method: 'GET',
        target,
        reason: 'unreachable',
        retryable: true,
        detail: `the object store is unreachable: ${(error as { code?: string }).code ?? (error as Error).message}`,
        cause: error
      })
    }
    const body = Buffer.from(await response.body.arrayBuffer())
    if (response.statusCode === 200) return body
    const text = body
      .toString('utf8')
      .replace(/\s*\n\s*/g, ' ')
      .trim()
    if (response.statusCode === 404)
      throw new CommandError('s3_object_missing', `GET ${target} → 404: ${text.slice(0, 500)}`)
    throw new ApiError({
      method: 'GET',
      target,
      status: response.statusCode,
      body: text,
      retryable: true,
      reason: response.statusCode >= 500 ? 'server_error' : 's3_refused'
    })
  }
}
