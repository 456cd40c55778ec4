import { randomUUID } from 'node:crypto'

/**
 * The envelope every Conveyor message carries in its Kafka headers, in the CloudEvents
 * Kafka binding's binary mode (`ce_*` headers), so other CloudEvents tools read it too.
 */
export interface Envelope {
  /** Unique per message; the DLQ, deduplication and causation refer to it. */
  id: string
  /** The message type. */
  type: string
  /** Schema version of the payload. */
  version: number | undefined
  /** Who produced it, e.g. `urn:service:billing`. */
  source: string | undefined
  /** When it was produced, ISO 8601. */
  time: string | undefined
  /** The id of the message that started the whole exchange. */
  correlationId: string | undefined
  /** The id of the message whose handling produced this one. */
  causationId: string | undefined
  /** The tenant the message belongs to; messages it causes keep it. */
  tenantId: string | undefined
}

/** The header that carries each envelope field (`ce_*`, CloudEvents Kafka binary mode). */
export const EnvelopeHeaders = {
  specVersion: 'ce_specversion',
  id: 'ce_id',
  type: 'ce_type',
  source: 'ce_source',
  time: 'ce_time',
  version: 'ce_version',
  correlationId: 'ce_correlationid',
  causationId: 'ce_causationid',
  tenantId: 'ce_tenantid'
} as const

/** A header value as the envelope functions read it: bytes, text, or absent. */
export type HeaderValue = Buffer | string | undefined

function text(headers: ReadonlyMap<string, HeaderValue>, name: string): string | undefined {
  const value = headers.get(name)
  if (value === undefined) return undefined
  return typeof value === 'string' ? value : value.toString('utf8')
}

/**
 * Reads the envelope of a delivered record. A record without `ce_id` (produced by
 * another tool) gets its coordinates as id, so causation still points somewhere real.
 */
export function readEnvelope(
  headers: ReadonlyMap<string, HeaderValue>,
  fallback: { id: string; type: string; version: number | undefined }
): Envelope {
  const version = text(headers, EnvelopeHeaders.version)
  return {
    id: text(headers, EnvelopeHeaders.id) ?? fallback.id,
    type: text(headers, EnvelopeHeaders.type) ?? fallback.type,
    version: version !== undefined && /^\d+$/.test(version) ? Number(version) : fallback.version,
    source: text(headers, EnvelopeHeaders.source),
    time: text(headers, EnvelopeHeaders.time),
    correlationId: text(headers, EnvelopeHeaders.correlationId),
    causationId: text(headers, EnvelopeHeaders.causationId),
    tenantId: text(headers, EnvelopeHeaders.tenantId)
  }
}

/** The fields of a new envelope (see `newEnvelope`); only `type` is required. */
export interface EnvelopeInput {
  /** The message type. */
  type: string
  /** Unique message id. Default: a random UUID. */
  id?: string
  /** Schema version of the payload. */
  version?: number
  /** Who produces it, e.g. `urn:service:billing`. */
  source?: string
  /** When it was produced: a `Date` or ISO 8601 text. Default: now. */
  time?: Date | string
  /** Id of the message that started the exchange. Default: the parent's correlation id, else its id. */
  correlationId?: string
  /** The id of the message whose handling produces this one. Default: the parent's id. */
  causationId?: string
  /** The tenant the message belongs to. Default: the parent's tenant. */
  tenantId?: string
}

/**
 * A new envelope. When `parent` is given (the message being handled), the new one
 * inherits its correlation id (or takes the parent's id as correlation) and names the
 * parent as its cause, and keeps the parent's tenant unless told otherwise.
 */
export function newEnvelope(input: EnvelopeInput, parent?: Envelope): Envelope {
  const time = input.time ?? new Date()
  return {
    id: input.id ?? randomUUID(),
    type: input.type,
    version: input.version,
    source: input.source,
    time: typeof time === 'string' ? time : time.toISOString(),
    correlationId: input.correlationId ?? parent?.correlationId ?? parent?.id,
    causationId: input.causationId ?? parent?.id,
    tenantId: input.tenantId ?? parent?.tenantId
  }
}

/** The `ce_*` headers of an envelope (absent fields are left out). */
export function envelopeHeaders(envelope: Envelope): Map<string, string> {
  const headers = new Map<string, string>([[EnvelopeHeaders.specVersion, '1.0']])
  for (const [field, header] of envelopeFields) {
    const value = envelope[field]
    if (value !== undefined) headers.set(header, String(value))
  }
  return headers
}

const envelopeFields = Object.entries(EnvelopeHeaders).filter(([field]) => field !== 'specVersion') as Array<
  [keyof Envelope, string]
>
