export { type Codec, DecodeError, jsonCodec } from './codec/json.ts'
export {
  type AssignmentListener,
  type CommitStrategy,
  type ConsumerOptions,
  type ConsumerState,
  type ConsumerStatus,
  ConveyorConsumer,
  createConsumer,
  groupOffsets,
  type Ordering,
  type PartitionStart,
  type RetryWait,
  type TransactionalOptions
} from './consumer/consumer.ts'
export {
  type Envelope,
  EnvelopeHeaders,
  type EnvelopeInput,
  envelopeHeaders,
  type HeaderValue,
  newEnvelope,
  readEnvelope
} from './core/envelope.ts'
export {
  BatchError,
  ConveyorError,
  type ConveyorErrorOptions,
  type ErrorCode,
  ErrorCodes,
  isNonRetryable,
  NonRetryableError
} from './core/errors.ts'
export {
  type BatchHandler,
  compose,
  type Handler,
  type HandlerContext,
  type Message,
  type Middleware
} from './core/message.ts'
export { DeadLetterHeaders } from './dead-letter/record.ts'
export { Channels } from './instrumentation/channels.ts'
export {
  clientOptions,
  type KafkaConnection,
  type SaslMechanism,
  translateKafkaError,
  type VerifyOptions,
  verifyConnection
} from './kafka/connection.ts'
export type { FetchSettings } from './kafka/subscription.ts'
export { type Compression, KafkaTransport, type KafkaTransportOptions } from './kafka/transport.ts'
export {
  ConveyorProducer,
  createProducer,
  type MessageTypes,
  type ProducerOptions,
  type SendOptions
} from './producer/producer.ts'
export {
  type PooledClient,
  type PostgresSink,
  type PostgresSinkOptions,
  postgresSink,
  type SqlClient,
  type SqlPool
} from './replicator/postgres.ts'
export {
  createReplicator,
  type RecordToDecode,
  Replicator,
  type ReplicatorOptions
} from './replicator/replicator.ts'
export {
  type Acquired,
  FencedError,
  type FencedSink,
  type ReplicaEvent,
  type SkipRequests
} from './replicator/sink.ts'
export {
  type BoundedRetry,
  backoff,
  bounded,
  decide,
  forever,
  type RetryDecision,
  type RetryForever,
  type RetryPolicy
} from './retry/policy.ts'
export type { BatchOptions, BatchRoute, MessageRoute, Route, Routes, TypeSource } from './routing/routes.ts'
export { withTimeout } from './routing/timeout.ts'
export type {
  AvroSchema,
  EnumSchema,
  FieldSchema,
  FixedSchema,
  Named,
  PrimitiveName,
  RecordSchema
} from './schema/avro/model.ts'
export { AvroCodec, type AvroCodecOptions, type SubjectNameStrategy } from './schema/avro-codec.ts'
export { type CatalogEntry, loadCatalog, registerCatalog, type SubjectOf } from './schema/catalog.ts'
export { type CompatibilityLevel, CompatibilityLevels } from './schema/compatibility.ts'
export { JsonSchemaCodec, type JsonSchemaCodecOptions } from './schema/json-schema-codec.ts'
export {
  type RegisteredSchema,
  type RegistryClientOptions,
  RegistryError,
  type SchemaInput,
  type SchemaReference,
  SchemaRegistryClient,
  type SchemaType,
  type SubjectVersion
} from './schema/registry-client.ts'
export { type Stoppable, stopOnSignals } from './service/signals.ts'
export type * from './transport/types.ts'
export { type WaitForOptions, waitFor } from './util/wait.ts'
